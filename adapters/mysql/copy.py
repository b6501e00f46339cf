"""MysqlTarget's copy steps: pt-online-schema-change and gh-ost driven as subprocesses.

One `CopyDriver.execute(step)` per attempt of a COPY_TABLE step, by phase:
- copy: clean up what an earlier attempt left, choose the tool on the live table, run it until the
  copy is complete and in sync, verify it. pt-osc runs copy-only and exits, its triggers keeping the
  copy in sync; gh-ost keeps running, holding its cut-over on the postpone flag file.
- cut_over: pt-osc: osctl's own RENAME under lock_timeout, then the triggers and (unless kept) the old
  table go; gh-ost: the flag file is removed and `unpostpone` sent, and its exit 0 + `# Done` awaited.
- cleanup (a rollback): the tool is stopped and its copy, triggers and changelog table dropped.
- drop_old (contract): the pre-change table kept as a revert window goes.

While a tool runs, the runner's controls are polled: a stop request (pause, rollback, shutdown) holds
the tool (pt-osc's pause file, gh-ost's `throttle`) and leaves it parked for the next attempt to adopt;
the throttle's hold does the same without stopping the step. A tool's process belongs to the service
process, not to the target instance: gh-ost's postponed copy outlives the expand stage that started it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

import structlog
from pymysql.cursors import Cursor

from adapters import ghost, ptosc
from adapters.copy_errors import CopyRefusedError, CopyVerificationError
from adapters.mysql import copy_sql
from adapters.mysql.algorithms import ServerVersion
from adapters.mysql.copy_ghost import GhostCopy
from adapters.mysql.copy_ptosc import PtOscCopy
from adapters.mysql.copy_state import LIVE, CopyFiles, CopySettings, LiveCopy
from adapters.mysql.dsn import MysqlDsn
from adapters.mysql.keyset import quote
from adapters.mysql.verify import Column, Comparison
from adapters.process import stop_survivor
from orchestrator.domain.copy_tools import CopyPhase, CopyTool, CopyWork, choose_tool, shared_columns
from orchestrator.domain.errors import StageInterruptedError, StepFailedError
from orchestrator.domain.plan import Step
from orchestrator.ports import Attempt, StepControls

log = structlog.get_logger(__name__)
T = TypeVar("T")
GHOST_POLL_SECONDS = 2.0


class CursorCall(Protocol):
    """The target's way to run blocking work on a pooled connection, off the event loop."""

    def __call__(self, work: Callable[[Cursor], T], /) -> Awaitable[T]: ...


class CopyDriver:
    def __init__(
        self,
        dsn: MysqlDsn,
        call: CursorCall,
        settings: CopySettings,
        controls: Callable[[], StepControls | None],
        version: Callable[[], Awaitable[ServerVersion]],
    ) -> None:
        self._dsn = dsn
        self._call = call
        self._settings = settings
        self._controls = controls
        self._version = version

    # -- entry --------------------------------------------------------------------------------------

    async def execute(self, step: Step, *, lock_timeout_ms: int) -> Attempt:
        work = step.copy_work
        assert work is not None
        started = time.monotonic()
        lock_wait = max(1, -(-lock_timeout_ms // 1000))
        match work.phase:
            case CopyPhase.CLEANUP:
                done = await self.cleanup(step, work, lock_wait, reason="rollback")
                return Attempt(lock_timed_out=not done, seconds=time.monotonic() - started)
            case CopyPhase.DROP_OLD:
                olds = (ptosc.old_table_name(work.table), ghost.old_table_name(work.table))
                sql = "DROP TABLE IF EXISTS " + ", ".join(quote(name) for name in olds)
                done = await self._call(lambda cur: copy_sql.run_ddl(cur, sql, lock_wait))
                return Attempt(lock_timed_out=not done, seconds=time.monotonic() - started)
            case CopyPhase.COPY:
                await self._ensure_copy(step, work, lock_wait)
                return Attempt(lock_timed_out=False, seconds=time.monotonic() - started)
            case CopyPhase.CUT_OVER:
                done = await self._cut_over(step, work, lock_wait)
                return Attempt(lock_timed_out=not done, seconds=time.monotonic() - started)
        raise AssertionError(work.phase)

    def _key(self, table: str) -> str:
        return f"{self._dsn.host}:{self._dsn.port}/{self._dsn.database}/{table}"

    def _files(self, table: str) -> CopyFiles:
        # Short and unique per target and table: a unix socket path must stay under 108 bytes.
        digest = hashlib.sha1(self._key(table).encode()).hexdigest()[:10]
        return CopyFiles(self._settings.runtime_dir / f"{table[:24]}-{digest}")

    async def _note(self, step: Step, message: str, **data: Any) -> None:
        log.info("copy_note", step_id=step.id, message=message, **data)
        controls = self._controls()
        if controls is not None:
            await controls.note(step.id, message, data)

    async def _report(self, step: Step, live: LiveCopy, phase: str) -> None:
        controls = self._controls()
        if controls is not None:
            await controls.report(step.id, live.status(phase))

    # -- cleanup ------------------------------------------------------------------------------------

    async def cleanup(self, step: Step, work: CopyWork, lock_wait: int, *, reason: str) -> bool:
        """Stop our tool (or a survivor of an earlier service process) and drop what tools left.
        Never touches the table itself or a kept old table. False if a lock was not granted in time."""
        files = self._files(work.table)
        live = LIVE.pop(self._key(work.table), None)
        if live is not None and live.process.running:
            if live.tool is CopyTool.GH_OST:  # its own abort first: it stops at once, tables left to us
                with contextlib.suppress(OSError, TimeoutError):
                    await ghost.send(live.files.socket, ghost.socket_command("panic"), timeout=2.0)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(live.process.wait()), timeout=3.0)
            await live.process.terminate(self._settings.terminate_grace_seconds)
        survivor = await asyncio.to_thread(
            stop_survivor, files.pid, work.table, self._settings.terminate_grace_seconds
        )
        if survivor is not None:
            await self._note(step, f"stopped a copy tool (pid {survivor}) left running by an earlier process")
        leftovers = await self._call(lambda cur: copy_sql.find_leftovers(cur, work.table))
        if leftovers:
            done = await self._call(lambda cur: copy_sql.drop_leftovers(cur, leftovers, lock_wait))
            if not done:
                return False
            await self._note(
                step, f"removed leftovers ({reason}): {leftovers.describe()}", leftovers=leftovers.describe()
            )
        if files.directory.exists():
            files.remove(files.credentials, files.pause, files.postpone, files.throttle, files.socket)
        return True

    # -- copy ---------------------------------------------------------------------------------------

    async def _ensure_copy(self, step: Step, work: CopyWork, lock_wait: int) -> LiveCopy | None:
        """Make sure a complete, verified copy is in sync (None: deferred to a later step)."""
        live = LIVE.get(self._key(work.table))
        if live is not None and (live.process.running or live.tool is CopyTool.PT_OSC):
            adopted = await self._adopt(step, work, live, lock_wait)
            if adopted is not None:
                return adopted
        if not await self.cleanup(step, work, lock_wait, reason="before copying"):
            raise StepFailedError(
                step.id, step.description, "could not drop the leftovers of an earlier copy: lock not granted"
            )
        facts = await self._call(lambda cur: copy_sql.table_facts(cur, work.table))
        choice = choose_tool(
            work.strategy, work.facts, facts, ghost_available=self._settings.ghost_binary is not None
        )
        if choice.tool is None:
            raise CopyRefusedError(step.id, step.description, choice.why)
        await self._note(step, f"copy tool: {choice.why}", tool=choice.tool.value)
        if choice.tool is CopyTool.PT_OSC and work.deferrable:
            await self._note(step, "pt-osc cannot hold a cut-over: the copy runs after the deploy gate")
            return None
        await self._refuse_collisions(step, work, choice.tool)
        await self._check_duplicates(step, work)
        if choice.tool is CopyTool.PT_OSC:
            return await PtOscCopy(self, step, work, lock_wait).copy()
        return await GhostCopy(self, step, work, lock_wait).copy()

    async def _adopt(self, step: Step, work: CopyWork, live: LiveCopy, lock_wait: int) -> LiveCopy | None:
        """Carry on with a tool an earlier attempt left: a parked one is released and supervised."""
        if live.tool is CopyTool.PT_OSC and not live.process.running:
            return live if live.verified else None  # exited: the cut-over re-checks the tables
        if live.tool is CopyTool.GH_OST:
            return await GhostCopy(self, step, work, lock_wait).adopt(live)
        await self._note(step, "adopting the pt-osc copy an earlier attempt left paused")
        live.parked = False
        return await PtOscCopy(self, step, work, lock_wait).finish(live)

    async def _refuse_collisions(self, step: Step, work: CopyWork, tool: CopyTool) -> None:
        old = (
            ptosc.old_table_name(work.table) if tool is CopyTool.PT_OSC else ghost.old_table_name(work.table)
        )
        found = await self._call(lambda cur: copy_sql.existing_tables(cur, [old]))
        if found:
            raise CopyRefusedError(
                step.id,
                step.description,
                f"table {old} already exists (a revert window kept by an earlier change?); the cut-over "
                "would need its name: drop it or move it first",
            )

    async def _check_duplicates(self, step: Step, work: CopyWork) -> None:
        """Both tools copy with INSERT IGNORE: a new unique key over duplicates would silently lose rows."""
        for columns in work.facts.added_unique_keys:

            def find(cur: Cursor, columns: tuple[str, ...] = columns) -> tuple[object, ...] | None:
                return copy_sql.duplicate_example(cur, work.table, columns)

            duplicate = await self._call(find)
            if duplicate is not None:
                raise CopyRefusedError(
                    step.id,
                    step.description,
                    f"the new unique key ({', '.join(columns)}) has duplicates, e.g. {duplicate!r}: the copy "
                    "would silently drop rows; remove the duplicates first",
                )

    async def _fail_and_clean(self, step: Step, work: CopyWork) -> None:
        with contextlib.suppress(Exception):
            await self.cleanup(step, work, lock_wait=5, reason="the tool failed")

    # -- supervision --------------------------------------------------------------------------------

    async def supervise(
        self, step: Step, live: LiveCopy, phase: str, until: Callable[[], bool] | None = None
    ) -> None:
        """Until the tool exits (or `until()`): stop requests park it, throttle holds it, progress goes
        to the runner. A stop raises StageInterruptedError once the tool is held."""
        waiter = asyncio.ensure_future(live.process.wait())
        polled = time.monotonic()
        try:
            while live.process.running and not (until is not None and until()):
                if live.ghost_state is not None and time.monotonic() - polled >= GHOST_POLL_SECONDS:
                    polled = time.monotonic()  # gh-ost prints its status only every 30 s on long copies
                    with contextlib.suppress(OSError, TimeoutError):
                        answer = await ghost.send(live.files.socket, ghost.socket_command("sup"), timeout=1.0)
                        live.ghost_state.status = ghost.status_from_answer(answer) or live.ghost_state.status
                controls = self._controls()
                stop = controls.stop_reason() if controls is not None else None
                if stop is not None:
                    await self.hold(live, f"osctl: {stop}", acknowledge=True)
                    live.parked = True
                    await self._report(step, live, "parked")
                    raise StageInterruptedError(stop)
                reason = controls.hold_reason() if controls is not None else None
                await self.hold(live, f"osctl throttle: {reason}" if reason else None)
                await self._report(step, live, phase)
                await asyncio.wait({waiter}, timeout=self._settings.poll_seconds)
        finally:
            if not waiter.done():
                waiter.cancel()

    async def hold(self, live: LiveCopy, reason: str | None, *, acknowledge: bool = False) -> None:
        """Hold (reason) or release (None) the tool: pt-osc's pause file, gh-ost's throttle command."""
        if (live.held is None) == (reason is None):
            if reason is not None:
                live.held = reason  # already held; only the reason changed
            return
        if live.tool is CopyTool.PT_OSC:
            if reason:
                live.files.pause.touch(mode=0o600)
            else:
                live.files.remove(live.files.pause)
        else:
            command = "throttle" if reason else "no-throttle"
            with contextlib.suppress(OSError, TimeoutError):
                await ghost.send(live.files.socket, ghost.socket_command(command))
        live.held = reason
        if reason and acknowledge:
            await self._await_hold(live)

    async def _await_hold(self, live: LiveCopy) -> None:
        """Wait (bounded) until the tool shows it holds: pt-osc prints its pause line at its next chunk."""
        deadline = time.monotonic() + self._settings.hold_ack_seconds
        while time.monotonic() < deadline and live.process.running:
            if live.ptosc_state is not None and live.ptosc_state.waiting == "paused by osctl (pause file)":
                return
            if (
                live.ghost_state is not None
                and live.ghost_state.status
                and live.ghost_state.status.throttle_reason
            ):
                return
            await asyncio.sleep(0.05)

    # -- verification -------------------------------------------------------------------------------

    async def comparable_columns(
        self, work: CopyWork, copy: str
    ) -> tuple[list[Column], list[str], str | None]:
        old = await self._call(lambda cur: copy_sql.columns_of(cur, work.table))
        new = await self._call(lambda cur: copy_sql.columns_of(cur, copy))
        pairs, skipped = shared_columns(
            [(name.lower(), _family(type_, data_type)) for name, type_, data_type in old],
            [(name.lower(), _family(type_, data_type)) for name, type_, data_type in new],
            work.facts.renamed_columns,
        )
        types = {name.lower(): data_type for name, _, data_type in old}
        originals = {name.lower(): name for name, _, _ in old}
        copies = {name.lower(): name for name, _, _ in new}
        columns = [Column(originals[a], copies[b], types[a]) for a, b in pairs]
        key = await self._call(lambda cur: copy_sql.primary_key(cur, work.table))
        key_name = key[0][0] if len(key) == 1 and any(c.old == key[0][0] for c in columns) else None
        return columns, skipped, key_name

    async def judge(
        self,
        step: Step,
        work: CopyWork,
        comparison: Comparison,
        copy: str,
        seconds: float,
        *,
        tool: CopyTool,
        extra: dict[str, Any] | None = None,
    ) -> None:
        data = {
            "original_rows": comparison.original_rows,
            "copy_rows": comparison.copy_rows,
            "compared_columns": comparison.compared_columns,
            "skipped_columns": comparison.skipped_columns,
            "seconds": round(seconds, 3),
            **(extra or {}),
        }
        if comparison.equal:
            skipped = (
                f"; not compared (type changed): {', '.join(comparison.skipped_columns)}"
                if comparison.skipped_columns
                else ""
            )
            await self._note(
                step,
                f"copy verified: {comparison.copy_rows} rows, checksums of {len(comparison.compared_columns)} "
                f"columns equal{skipped}",
                **data,
            )
            return
        if tool is CopyTool.PT_OSC:  # stop taxing the application's writes; keep both tables
            prefix_triggers = await self._call(lambda cur: copy_sql.find_leftovers(cur, work.table))
            await self._call(
                lambda cur: copy_sql.drop_leftovers(
                    cur, copy_sql.Leftovers(triggers=prefix_triggers.triggers), 5
                )
            )
            LIVE.pop(self._key(work.table), None)
        await self._note(step, "copy verification failed", **data, mismatched=comparison.mismatched)
        raise CopyVerificationError(
            step.id,
            step.description,
            f"the copy {copy} does not match {work.table}: {comparison.original_rows} rows vs "
            f"{comparison.copy_rows}, checksums differ in {', '.join(comparison.mismatched) or 'no range'}. "
            f"Nothing was swapped; both tables are kept for a human to compare (the copy is no longer "
            "kept in sync). Roll back to drop the copy, or fix the cause and retry the stage.",
        )

    # -- cut-over -----------------------------------------------------------------------------------

    async def _cut_over(self, step: Step, work: CopyWork, lock_wait: int) -> bool:
        key = self._key(work.table)
        live = LIVE.get(key)
        if live is not None and live.tool is CopyTool.GH_OST and live.process.running:
            return await GhostCopy(self, step, work, lock_wait).cut_over(live)
        state = await self._call(lambda cur: copy_sql.find_leftovers(cur, work.table))
        copy = ptosc.new_table_name(work.table)
        # RENAME is atomic: while the copy keeps its own name, nothing has been swapped.
        if copy in state.tables and len(state.triggers) == len(ptosc.TRIGGER_EVENTS):
            return await PtOscCopy(self, step, work, lock_wait).swap(
                verified=live is not None and live.verified
            )
        old = ptosc.old_table_name(work.table)
        swapped = await self._call(lambda cur: copy_sql.existing_tables(cur, [old]))
        if state.triggers and swapped and copy not in state.tables:
            return await PtOscCopy(self, step, work, lock_wait).finish_swap()  # a replay after the RENAME
        if not state and await self._shape_done(work):
            if not work.keep_old_table:  # it may have stopped between the swap and the drop
                await self._call(
                    lambda cur: copy_sql.run_ddl(cur, f"DROP TABLE IF EXISTS {quote(old)}", lock_wait)
                )
            await self._note(step, "the cut-over had already happened (a replay)")
            return True
        # No copy to swap in (deferred pt-osc, or a tool that died with an earlier process): copy now.
        copied = await self._ensure_copy(step, work.model_copy(update={"deferrable": False}), lock_wait)
        if copied is not None and copied.tool is CopyTool.GH_OST:
            return await GhostCopy(self, step, work, lock_wait).cut_over(copied)
        return await PtOscCopy(self, step, work, lock_wait).swap(verified=True)

    async def _shape_done(self, work: CopyWork) -> bool:
        """Whether the table already shows the change's column additions, drops and renames."""
        names = await self._call(lambda cur: copy_sql.column_names(cur, work.table))
        facts = work.facts
        if not facts.parsed or not (facts.added_columns or facts.dropped_columns or facts.renamed_columns):
            return False
        return (
            all(name in names for name in facts.added_columns)
            and not any(name in names for name in facts.dropped_columns)
            and all(new.lower() in names and old not in names for old, new in facts.renamed_columns)
        )


_STRINGS = frozenset({"char", "varchar", "tinytext", "text", "mediumtext", "longtext"})
_INTEGERS = frozenset({"tinyint", "smallint", "mediumint", "int", "bigint"})


def _family(column_type: str, data_type: str) -> str:
    """What must match for a column to be compared as is: strings of one character set and integers
    keep their text across a widening (varchar(32) -> varchar(64), int -> bigint); anything else is
    compared only when its type is unchanged."""
    if data_type in _STRINGS:
        return "string " + column_type.rsplit(" ", 1)[-1]  # the character set
    if data_type in _INTEGERS:
        return "integer"
    return column_type
