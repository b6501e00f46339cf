"""pt-online-schema-change's side of a copy step: the dry-run preflight, the copy-only run with its
triggers left to keep the copy in sync, the verification (chunk by chunk, each in a consistent snapshot
of its own: the triggers write both tables in the application's transaction, so any snapshot sees them
agree), and osctl's own swap: ANALYZE, one RENAME under lock_timeout, the triggers and old table gone."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from typing import TYPE_CHECKING

from adapters import ptosc
from adapters.copy_errors import CopyRefusedError, CopyToolError
from adapters.mysql import copy_sql
from adapters.mysql.copy_state import LIVE, CopyFiles, LiveCopy
from adapters.mysql.keyset import quote
from adapters.mysql.verify import Comparison, Range, compare_range, plan_ranges
from adapters.process import Stream, ToolProcess
from adapters.ptosc import PtOscRun, PtOscState
from orchestrator.domain.copy_tools import CopyTool, CopyWork
from orchestrator.domain.plan import Step

if TYPE_CHECKING:
    from adapters.mysql.copy import CopyDriver

VERIFY_PARALLEL = 2


class PtOscCopy:
    def __init__(self, driver: CopyDriver, step: Step, work: CopyWork, lock_wait: int) -> None:
        self._driver = driver
        self._step = step
        self._work = work
        self._lock_wait = lock_wait
        self._call = driver._call

    def _run(self, files: CopyFiles, *, execute: bool) -> PtOscRun:
        work, dsn, settings = self._work, self._driver._dsn, self._driver._settings
        return PtOscRun(
            host=dsn.host,
            port=dsn.port,
            database=dsn.database,
            table=work.table,
            defaults_file=files.credentials,
            alter=work.alter,
            execute=execute,
            replicas=settings.replicas,
            recursion_method=settings.recursion_method,
            max_lag_seconds=work.max_lag_seconds,
            chunk_time_seconds=work.chunk_time_seconds,
            max_load=work.max_load,
            critical_load=work.critical_load,
            pause_file=files.pause,
            unique_key_checked=bool(work.facts.added_unique_keys),
            lock_wait_seconds=self._lock_wait,
        )

    async def copy(self) -> LiveCopy:
        step, work, dsn = self._step, self._work, self._driver._dsn
        files = self._driver._files(work.table)
        files.prepare()
        files.write_private(files.credentials, ptosc.option_file_text(dsn.user, dsn.password))
        files.remove(files.pause)
        binary = self._driver._settings.ptosc_binary
        # Preflight: the tool's own checks and its reading of the ALTER, changing nothing.
        dry = PtOscState()
        dry_run = self._run(files, execute=False)
        process = await ToolProcess.start(
            ptosc.ptosc_argv(binary, dry_run),
            on_line=lambda stream, line: ptosc.feed(dry, stream is Stream.STDERR, line),
        )
        exit_ = await process.wait()
        if exit_.code != 0:
            raise CopyToolError(
                step.id,
                step.description,
                "dry run: " + ptosc.describe_exit(exit_.code, dry, exit_.stderr_tail + exit_.stdout_tail),
                exit_code=exit_.code,
                retryable=exit_.code in ptosc.RETRYABLE_EXITS,
            )
        expected = {old: new for old, new in work.facts.renamed_columns}
        if dry.renames != expected:
            raise CopyRefusedError(
                step.id,
                step.description,
                f"pt-osc reads the ALTER as renaming {dry.renames or 'nothing'}, but it renames "
                f"{expected or 'nothing'}: its copy would lose data; use gh-ost or rewrite the clause",
            )
        state = PtOscState()
        run = replace(dry_run, execute=True, renames_confirmed=bool(expected))
        process = await ToolProcess.start(
            ptosc.ptosc_argv(binary, run),
            on_line=lambda stream, line: ptosc.feed(state, stream is Stream.STDERR, line),
            pid_file=files.pid,
        )
        live = LiveCopy(CopyTool.PT_OSC, process, files, ptosc_state=state)
        LIVE[self._driver._key(work.table)] = live
        return await self.finish(live)

    async def finish(self, live: LiveCopy) -> LiveCopy:
        """Supervise the copy to its end, then verify it: the tool's own exit is not proof enough."""
        step, work = self._step, self._work
        await self._driver.supervise(step, live, "copying")
        exit_ = await live.process.wait()
        live.files.remove(live.files.credentials, live.files.pause)  # the tool is done with them
        state = live.ptosc_state
        assert state is not None
        if exit_.code != 0 or not state.copied:
            cause = ptosc.describe_exit(exit_.code, state, exit_.stderr_tail + exit_.stdout_tail)
            await self._driver._fail_and_clean(step, work)
            raise CopyToolError(
                step.id,
                step.description,
                cause,
                exit_code=exit_.code,
                retryable=exit_.code in ptosc.RETRYABLE_EXITS,
            )
        await self._driver._report(step, live, "verifying")
        if work.verify:
            await self.verify()
        live.verified = True
        await self._driver._report(step, live, "copied")
        return live

    async def verify(self) -> Comparison:
        """pt-osc's copy: chunk by chunk, each in a snapshot of its own, a few at a time."""
        step, work = self._step, self._work
        copy = ptosc.new_table_name(work.table)
        columns, skipped, key = await self._driver.comparable_columns(work, copy)
        ranges: list[Range] = [Range(None, None)]
        if key is not None:
            pk = next(c for c in columns if c.old == key)
            ranges = await self._call(lambda cur: plan_ranges(cur, work.table, [(key, pk.data_type)]))
        semaphore = asyncio.Semaphore(VERIFY_PARALLEL)

        async def one(part: Range) -> tuple[int, int, bool]:
            async with semaphore:
                return await self._call(
                    lambda cur: compare_range(
                        cur, work.table, copy, columns, key or columns[0].old, part, snapshot=True
                    )
                )

        started = time.monotonic()
        results = await asyncio.gather(*(one(part) for part in ranges))
        comparison = Comparison(
            original_rows=sum(r[0] for r in results),
            copy_rows=sum(r[1] for r in results),
            mismatched=[_range_text(key, part) for part, r in zip(ranges, results, strict=True) if not r[2]],
            compared_columns=[c.old for c in columns],
            skipped_columns=skipped,
        )
        await self._driver.judge(
            step, work, comparison, copy, time.monotonic() - started, tool=CopyTool.PT_OSC
        )
        return comparison

    async def swap(self, *, verified: bool) -> bool:
        step, work, lock_wait = self._step, self._work, self._lock_wait
        if work.verify and not verified:
            await self.verify()
        copy, old = ptosc.new_table_name(work.table), ptosc.old_table_name(work.table)
        # As pt-osc does before its own swap: fresh statistics, so plans do not change for the worse.
        await self._call(lambda cur: copy_sql.run_ddl(cur, f"ANALYZE TABLE {quote(copy)}", lock_wait))
        swapped = await self._call(lambda cur: copy_sql.swap_tables(cur, work.table, copy, old, lock_wait))
        if not swapped:
            return False  # the runner backs off and tries again; the copy stays in sync meanwhile
        await self._driver._note(step, f"swapped: {work.table} is the altered copy, {old} the original")
        return await self.finish_swap()

    async def finish_swap(self) -> bool:
        """After the RENAME (or a replay of one): the triggers go, and the old table unless kept."""
        work, lock_wait = self._work, self._lock_wait
        leftovers = await self._call(lambda cur: copy_sql.find_leftovers(cur, work.table))
        triggers = copy_sql.Leftovers(triggers=leftovers.triggers)
        for _ in range(20):  # on the old table now: they fire on nothing, but must go
            if await self._call(lambda cur: copy_sql.drop_leftovers(cur, triggers, lock_wait)):
                break
            await asyncio.sleep(0.5)
        old = ptosc.old_table_name(work.table)
        if not work.keep_old_table:
            await self._call(
                lambda cur: copy_sql.run_ddl(cur, f"DROP TABLE IF EXISTS {quote(old)}", max(lock_wait, 5))
            )
        live = LIVE.pop(self._driver._key(work.table), None)
        files = live.files if live is not None else self._driver._files(work.table)
        files.remove(files.credentials, files.pause, files.pid)
        return True


def _range_text(key: str | None, part: Range) -> str:
    if key is None or (part.low is None and part.high is None):
        return "the whole table"
    return f"{key} {'' if part.low is None else part.low}..{'' if part.high is None else part.high}"
