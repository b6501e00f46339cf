"""gh-ost's side of a copy step: start it with its cut-over postponed, wait until it holds the cut-over
with the copy complete, verify the copy, and later cut over through the flag file and `unpostpone`.

Verifying an asynchronously applied copy needs one moment at which both tables must agree: the
original is read-locked (bounded by lock_timeout), gh-ost is waited for until its binlog streamer has
passed the position the server reported under the lock with nothing left in its backlog, a consistent
snapshot is opened on a second connection and the lock released; the comparison then runs in the
snapshot while the application writes again. Writes wait at most for the catch-up (milliseconds when
gh-ost keeps up); if it does not catch up in time the lock is released and the attempt repeated.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import TYPE_CHECKING

import pymysql
from pymysql.connections import Connection

from adapters import ghost
from adapters.copy_errors import CopyToolError
from adapters.mysql import copy_sql
from adapters.mysql.copy_state import LIVE, LiveCopy
from adapters.mysql.dsn import MysqlDsn
from adapters.mysql.keyset import quote
from adapters.mysql.pool import error_code
from adapters.mysql.verify import Column, Comparison, Range, compare_range
from adapters.process import ToolProcess
from orchestrator.domain.copy_tools import CopyTool, CopyWork
from orchestrator.domain.errors import StepFailedError
from orchestrator.domain.plan import Step

if TYPE_CHECKING:
    from adapters.mysql.copy import CopyDriver

VERIFY_ATTEMPTS = 3
CATCH_UP_POLL_SECONDS = 0.05


def _connect(dsn: MysqlDsn) -> Connection:
    return pymysql.connect(**dsn.connect_args())


def _lock_read(conn: Connection, table: str, seconds: int) -> bool:
    with conn.cursor() as cur:
        cur.execute("SET SESSION lock_wait_timeout = %s", (max(1, seconds),))
        try:
            cur.execute(f"LOCK TABLES {quote(table)} READ")
        except pymysql.MySQLError as error:
            if error_code(error)[0] in copy_sql.LOCK_CODES:
                return False
            raise
    return True


def _unlock(conn: Connection) -> None:
    with conn.cursor() as cur:
        cur.execute("UNLOCK TABLES")


def _begin_snapshot(conn: Connection) -> None:
    with conn.cursor() as cur:
        cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        cur.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT")


def _compare_in_snapshot(
    conn: Connection, table: str, copy: str, columns: list[Column], key: str
) -> tuple[int, int, bool]:
    try:
        with conn.cursor() as cur:
            return compare_range(cur, table, copy, columns, key, Range(None, None), snapshot=False)
    finally:
        conn.commit()


def _position(conn: Connection) -> tuple[int, int] | None:
    with conn.cursor() as cur:
        found = copy_sql.master_position(cur)
    return ghost.binlog_position(*found) if found else None


def _replica_position(
    primary: Connection, replica_dsn: MysqlDsn, mariadb: bool, timeout: int
) -> tuple[int, int] | None:
    """The replica's own binlog position once it has applied everything the primary had (gh-ost reads
    the replica's binary log when it inspects a replica)."""
    with primary.cursor() as cur:
        cur.execute("SELECT @@GLOBAL.gtid_binlog_pos" if mariadb else "SELECT @@GLOBAL.gtid_executed")
        row = cur.fetchone()
    gtid = str(row[0]) if row else ""
    replica = _connect(replica_dsn)
    try:
        with replica.cursor() as cur:
            wait = (
                "SELECT MASTER_GTID_WAIT(%s, %s)" if mariadb else "SELECT WAIT_FOR_EXECUTED_GTID_SET(%s, %s)"
            )
            cur.execute(wait, (gtid, timeout))
            waited = cur.fetchone()
            if waited is None or int(waited[0]) != 0:
                return None
        return _position(replica)
    finally:
        replica.close()


class GhostCopy:
    def __init__(self, driver: CopyDriver, step: Step, work: CopyWork, lock_wait: int) -> None:
        self._driver = driver
        self._step = step
        self._work = work
        self._lock_wait = lock_wait

    # -- copy ---------------------------------------------------------------------------------------

    async def copy(self) -> LiveCopy:
        driver, work = self._driver, self._work
        settings, dsn = driver._settings, driver._dsn
        assert settings.ghost_binary is not None
        files = driver._files(work.table)
        files.prepare()
        files.write_private(files.credentials, ghost.conf_text(dsn.user, dsn.password))
        files.write_private(files.postpone, "osctl holds the cut-over until it is verified (and gated)\n")
        files.remove(files.socket, files.throttle)
        instrumented = await driver._call(copy_sql.performance_schema_mdl)
        inspect_replica = settings.ghost_inspect_replica and bool(settings.replicas)
        inspected = settings.replicas[0] if inspect_replica else None
        run = ghost.GhostRun(
            host=inspected.host if inspected else dsn.host,
            port=inspected.port if inspected else dsn.port,
            database=dsn.database,
            table=work.table,
            conf_file=files.credentials,
            alter=work.alter,
            socket_file=files.socket,
            postpone_flag_file=files.postpone,
            allow_on_master=not inspect_replica,
            throttle_control_replicas=settings.replicas,
            gtid=settings.ghost_gtid,
            skip_metadata_lock_check=not instrumented,
            max_lag_millis=int(work.max_lag_seconds * 1000),
            chunk_size=work.chunk_size,
            max_load=work.max_load,
            critical_load=work.critical_load,
            approve_renamed_columns=bool(work.facts.renamed_columns),
            cut_over_lock_timeout_seconds=self._lock_wait,
            throttle_flag_file=files.throttle,
        )
        state = ghost.GhostState()
        try:
            argv = ghost.ghost_argv(
                settings.ghost_binary, run, await ghost.supported_flags(settings.ghost_binary)
            )
        except ghost.GhostFlagUnsupportedError as error:
            raise StepFailedError(self._step.id, self._step.description, str(error)) from error
        process = await ToolProcess.start(
            argv,
            on_line=lambda _stream, line: ghost.feed(state, line),
            pid_file=files.pid,
        )
        live = LiveCopy(CopyTool.GH_OST, process, files, ghost_state=state)
        LIVE[driver._key(work.table)] = live
        return await self._until_ready(live)

    async def adopt(self, live: LiveCopy) -> LiveCopy | None:
        if not live.process.running:
            return None
        live.parked = False
        await self._driver._note(self._step, "adopting the gh-ost copy an earlier step left running")
        if self._ready(live) and (live.verified or not self._work.verify):
            await self._driver.hold(live, None)
            return live
        return await self._until_ready(live)

    @staticmethod
    def _ready(live: LiveCopy) -> bool:
        status = live.ghost_state.status if live.ghost_state else None
        return status is not None and status.postponing

    async def _until_ready(self, live: LiveCopy) -> LiveCopy:
        driver = self._driver
        await driver.supervise(self._step, live, "copying", until=lambda: self._ready(live))
        if not live.process.running:
            await self._failed(live)
        await driver.hold(live, None)
        await driver._report(self._step, live, "postponed")
        if self._work.verify and not live.verified:
            await self._verify(live)
        live.verified = True
        await driver._report(self._step, live, "postponed")
        return live

    async def _failed(self, live: LiveCopy) -> None:
        exit_ = await live.process.wait()
        assert live.ghost_state is not None
        cause = ghost.describe_exit(exit_.code, live.ghost_state, exit_.stdout_tail + exit_.stderr_tail)
        await self._driver._fail_and_clean(self._step, self._work)
        raise CopyToolError(
            self._step.id, self._step.description, cause, exit_code=exit_.code, retryable=False
        )

    # -- verification -------------------------------------------------------------------------------

    async def _verify(self, live: LiveCopy) -> None:
        driver, work = self._driver, self._work
        copy = ghost.ghost_table_name(work.table)
        columns, skipped, key = await driver.comparable_columns(work, copy)
        started = time.monotonic()
        comparison: Comparison | None = None
        for attempt in range(1, VERIFY_ATTEMPTS + 1):
            result = await self._snapshot_compare(live, copy, columns, key or columns[0].old)
            if result is not None:
                comparison = Comparison(
                    original_rows=result[0],
                    copy_rows=result[1],
                    mismatched=[] if result[2] else ["the whole table"],
                    compared_columns=[c.old for c in columns],
                    skipped_columns=skipped,
                )
                if comparison.equal:
                    break
            await asyncio.sleep(0.5 * attempt)  # let gh-ost drain, or the lock holders finish
        if comparison is None:
            raise CopyToolError(
                self._step.id,
                self._step.description,
                f"could not verify the copy: the read lock on {work.table} was not granted, or gh-ost did "
                "not catch up with the binary log in time; retry the stage",
                exit_code=0,
                retryable=True,
            )
        await driver.judge(
            self._step, work, comparison, copy, time.monotonic() - started, tool=CopyTool.GH_OST
        )

    async def _snapshot_compare(
        self, live: LiveCopy, copy: str, columns: list[Column], key: str
    ) -> tuple[int, int, bool] | None:
        driver, table = self._driver, self._work.table
        dsn, settings = driver._dsn, driver._settings
        lock_conn = await asyncio.to_thread(_connect, dsn)
        snap_conn = await asyncio.to_thread(_connect, dsn)
        try:
            if not await asyncio.to_thread(_lock_read, lock_conn, table, self._lock_wait):
                return None
            try:
                if settings.ghost_inspect_replica and settings.replicas:
                    first = settings.replicas[0]
                    replica = MysqlDsn(
                        host=first.host,
                        port=first.port,
                        user=dsn.user,
                        password=dsn.password,
                        database=dsn.database,
                    )
                    version = await driver._version()
                    position = await asyncio.to_thread(
                        _replica_position,
                        lock_conn,
                        replica,
                        version.flavour.value == "mariadb",
                        self._lock_wait,
                    )
                else:
                    position = await asyncio.to_thread(_position, lock_conn)
                if not await self._caught_up(live, position, timeout=max(2.0, float(self._lock_wait))):
                    return None
                await asyncio.to_thread(_begin_snapshot, snap_conn)
            finally:
                await asyncio.to_thread(_unlock, lock_conn)
            return await asyncio.to_thread(_compare_in_snapshot, snap_conn, table, copy, columns, key)
        finally:
            for conn in (lock_conn, snap_conn):
                with contextlib.suppress(Exception):
                    await asyncio.to_thread(conn.close)

    async def _caught_up(self, live: LiveCopy, position: tuple[int, int] | None, *, timeout: float) -> bool:
        """gh-ost has read the binary log past `position` and applied its backlog (twice in a row
        empty, when it reports no file coordinates, e.g. with --gtid)."""
        deadline = time.monotonic() + timeout
        empty_before = False
        while time.monotonic() < deadline and live.process.running:
            with contextlib.suppress(OSError, TimeoutError):
                answer = await ghost.send(live.files.socket, ghost.socket_command("status"), timeout=1.0)
                status = ghost.status_from_answer(answer)
                if status is not None and status.backlog == 0:
                    streamer = status.binlog_position
                    if streamer is not None and position is not None:
                        if streamer >= position:
                            return True
                    elif empty_before:
                        return True
                    empty_before = True
            await asyncio.sleep(CATCH_UP_POLL_SECONDS)
        return False

    # -- cut-over -----------------------------------------------------------------------------------

    async def cut_over(self, live: LiveCopy) -> bool:
        driver, work, step = self._driver, self._work, self._step
        if work.verify and not live.verified:
            await self._until_ready(live)
        await driver.hold(live, None)
        live.files.remove(live.files.postpone)
        with contextlib.suppress(OSError, TimeoutError):
            await ghost.send(live.files.socket, ghost.socket_command("unpostpone"))
        await driver._note(step, "gh-ost cut-over released")
        waiter = asyncio.ensure_future(live.process.wait())
        while not waiter.done():  # the cut-over itself is short; a stop request waits for it
            await driver._report(step, live, "cut_over")
            await asyncio.wait({waiter}, timeout=driver._settings.poll_seconds)
        exit_ = waiter.result()
        assert live.ghost_state is not None
        if exit_.code != 0 or not live.ghost_state.done:
            await self._failed(live)
        LIVE.pop(driver._key(work.table), None)
        old = ghost.old_table_name(work.table)
        if not work.keep_old_table:
            await driver._call(
                lambda cur: copy_sql.run_ddl(
                    cur, f"DROP TABLE IF EXISTS {quote(old)}", max(self._lock_wait, 5)
                )
            )
        live.files.remove(live.files.credentials, live.files.socket, live.files.throttle, live.files.pid)
        await driver._note(step, f"cut over by gh-ost; {old} {'kept' if work.keep_old_table else 'dropped'}")
        return True
