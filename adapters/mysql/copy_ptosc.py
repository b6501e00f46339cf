"""pt-online-schema-change's side of a copy step: a dry run to confirm how it reads a rename (only
when there is one), the copy-only run with its triggers left to keep the copy in sync, the verification
(range by range, each in a consistent snapshot of its own: the triggers write both tables in the
application's transaction, so any snapshot sees them agree; most of it while the tool still copies,
see ptosc_verify.py), and osctl's own swap: ANALYZE, one RENAME under lock_timeout, the triggers and
old table gone."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import replace
from typing import TYPE_CHECKING

import structlog

from adapters import ptosc
from adapters.copy_errors import CopyRefusedError, CopyToolError
from adapters.mysql import copy_sql
from adapters.mysql.copy_state import LIVE, CopyFiles, LiveCopy
from adapters.mysql.keyset import quote
from adapters.mysql.ptosc_verify import RangeVerification
from adapters.mysql.verify import Comparison
from adapters.process import Stream, ToolProcess
from adapters.ptosc import PtOscRun, PtOscState
from orchestrator.domain.copy_tools import CopyTool, CopyWork
from orchestrator.domain.plan import Step

if TYPE_CHECKING:
    from adapters.mysql.copy import CopyDriver

log = structlog.get_logger(__name__)


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
        work, dsn = self._work, self._driver._dsn
        files = self._driver._files(work.table)
        files.prepare()
        files.write_private(files.credentials, ptosc.option_file_text(dsn.user, dsn.password))
        files.remove(files.pause)
        binary = self._driver._settings.ptosc_binary
        expected = {old: new for old, new in work.facts.renamed_columns}
        run = self._run(files, execute=True)
        if expected:
            await self._confirm_renames(binary, replace(run, execute=False), expected)
            run = replace(run, renames_confirmed=True)
        # Without a rename there is no dry run: --execute makes the same checks before it creates
        # anything (its --check-alter refuses a rename it reads but osctl does not), and a failure then
        # leaves nothing the cleanup does not remove.
        state = PtOscState()
        process = await ToolProcess.start(
            ptosc.ptosc_argv(binary, run),
            on_line=lambda stream, line: ptosc.feed(state, stream is Stream.STDERR, line),
            pid_file=files.pid,
        )
        live = LiveCopy(CopyTool.PT_OSC, process, files, ptosc_state=state)
        LIVE[self._driver._key(work.table)] = live
        return await self.finish(live)

    async def _confirm_renames(self, binary: str, dry_run: PtOscRun, expected: dict[str, str]) -> None:
        """A rename is copied only under --no-check-alter, which also silences pt-osc's other checks:
        first a dry run (which changes nothing) must show it reads exactly the renames osctl reads."""
        step = self._step
        dry = PtOscState()
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
        if dry.renames != expected:
            raise CopyRefusedError(
                step.id,
                step.description,
                f"pt-osc reads the ALTER as renaming {dry.renames or 'nothing'}, but it renames "
                f"{expected or 'nothing'}: its copy would lose data; use gh-ost or rewrite the clause",
            )

    async def finish(self, live: LiveCopy) -> LiveCopy:
        """Supervise the copy to its end, then verify it: the tool's own exit is not proof enough. The
        verification follows the copy while it runs (ptosc_verify.py) and completes after it."""
        step, work = self._step, self._work
        stop = asyncio.Event()
        following = asyncio.create_task(self._follow(live, stop)) if work.verify else None
        try:
            await self._driver.supervise(step, live, "copying")
        finally:
            stop.set()  # the follower finishes the range it is comparing, no more
            followed = await asyncio.gather(following, return_exceptions=True) if following else [None]
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
            verification = followed[0] if isinstance(followed[0], RangeVerification) else None
            if isinstance(followed[0], BaseException):
                log.warning("ptosc_verify_follow_failed", step_id=step.id, error=repr(followed[0]))
            await self.verify(verification)
        live.verified = True
        await self._driver._report(step, live, "copied")
        return live

    async def _follow(self, live: LiveCopy, stop: asyncio.Event) -> RangeVerification | None:
        """Compare the ranges the copy has passed while it runs (None: it ended before it began)."""
        state = live.ptosc_state
        assert state is not None

        def copying() -> bool:
            return live.process.running and not stop.is_set()

        # The copy table exists, altered and with its triggers, once pt-osc starts copying rows.
        while copying() and state.phase not in (ptosc.Phase.COPYING, ptosc.Phase.COPIED):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=0.1)
        if not copying():
            return None
        verification = await self._verification()
        await verification.follow(lambda: state.percent, lambda: live.process.running, stop)
        return verification

    async def _verification(self) -> RangeVerification:
        work = self._work
        copy = ptosc.new_table_name(work.table)
        columns, skipped, key = await self._driver.comparable_columns(work, copy)
        verification = await RangeVerification.plan(self._call, work.table, copy, columns, key)
        verification.skipped = skipped
        return verification

    async def verify(self, verification: RangeVerification | None = None) -> Comparison:
        """pt-osc's copy: range by range, each in a snapshot of its own; what `verification` already
        found equal while the tool was copying is not compared again."""
        step, work = self._step, self._work
        verification = verification or await self._verification()
        started = time.monotonic()
        comparison = await verification.finish()
        await self._driver.judge(
            step,
            work,
            comparison,
            ptosc.new_table_name(work.table),
            time.monotonic() - started,
            tool=CopyTool.PT_OSC,
            extra={
                "ranges": verification.ranges,
                "compared_during_copy": verification.compared_during_copy,
                "compare_seconds": round(verification.seconds, 3),
            },
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
