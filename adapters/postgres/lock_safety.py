"""Lock safety of one DDL attempt on PostgreSQL.

Two concerns: which steps run under a statement_timeout (those that take a lock that blocks writes:
a statement running long under such a lock stalls the application however short its lock wait was),
and who an attempt waits behind. The latter is read from a second connection while the statement
waits, because once lock_timeout fires the waiting backend is gone from pg_locks and
pg_blocking_pids has nothing left to say.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import asyncpg
import pglast
import structlog
from pglast import ast
from pglast.enums.parsenodes import AlterTableType

from adapters.postgres import activity
from orchestrator.domain.plan import Step, StepAction
from orchestrator.domain.sessions import SessionInfo

log = structlog.get_logger(__name__)

# Statement kinds that take SHARE lock or stronger on an existing table (they block writes), unless
# done CONCURRENTLY.
_STRONG_STATEMENTS = (
    ast.AlterTableStmt,
    ast.RenameStmt,
    ast.DropStmt,
    ast.IndexStmt,
    ast.CreateTrigStmt,
    ast.TruncateStmt,
    ast.LockStmt,
    ast.ClusterStmt,
    ast.ReindexStmt,
    ast.RuleStmt,
    ast.CreatePolicyStmt,
    ast.AlterPolicyStmt,
    ast.AlterObjectSchemaStmt,
    ast.RefreshMatViewStmt,
)
# ALTER TABLE subcommands under SHARE UPDATE EXCLUSIVE: writes go on. VALIDATE CONSTRAINT scans the
# whole table, so bounding it by a statement_timeout sized for catalog changes would fail it on a
# large table for no gain.
_WEAK_ALTERS = frozenset(
    {
        AlterTableType.AT_ValidateConstraint,
        AlterTableType.AT_SetStatistics,
        AlterTableType.AT_ClusterOn,
        AlterTableType.AT_DropCluster,
    }
)


def _strong(statement: ast.Node | None) -> bool:
    if not isinstance(statement, _STRONG_STATEMENTS):
        return False
    if isinstance(statement, ast.IndexStmt | ast.DropStmt) and statement.concurrent:
        return False
    if isinstance(statement, ast.ReindexStmt) and any(
        isinstance(param, ast.DefElem) and param.defname == "concurrently" for param in statement.params or ()
    ):
        return False
    if isinstance(statement, ast.AlterTableStmt):
        return any(
            not isinstance(command, ast.AlterTableCmd) or command.subtype not in _WEAK_ALTERS
            for command in statement.cmds or ()
        )
    return True


def takes_strong_lock(sql: str) -> bool:
    """Whether any statement of `sql` blocks writes to an existing table while it runs. SQL that does
    not parse counts as strong: bounding it is the safe mistake."""
    try:
        statements = pglast.parse_sql(sql)
    except pglast.parser.ParseError:
        return True
    return any(_strong(raw.stmt) for raw in statements)


def statement_timeout_ms(step: Step, bound_ms: int | None) -> int:
    """The statement_timeout of an attempt at `step`; 0 (none) for work that does not block writes,
    such as a concurrent index build, which may rightly take hours."""
    if bound_ms is None or step.sql is None:
        return 0
    if step.action in (StepAction.CREATE_INDEX_CONCURRENTLY, StepAction.DROP_INDEX_CONCURRENTLY):
        return 0
    return int(bound_ms) if takes_strong_lock(step.sql) else 0


class BlockerWatch:
    """What one attempt's polls saw: `latest` is the newest answer, `seen` the newest non-empty one."""

    def __init__(self) -> None:
        self.latest: tuple[SessionInfo, ...] = ()
        self.seen: tuple[SessionInfo, ...] = ()

    def record(self, sessions: tuple[SessionInfo, ...]) -> None:
        self.latest = sessions
        if sessions:
            self.seen = sessions


class BlockerMonitor:
    """Polls pg_blocking_pids of the backend running a DDL attempt, from its own connection.

    Polls start one interval into the statement, so a statement that gets its lock at once costs
    nothing. Watching is best effort: a failed poll is logged and never fails the step.
    """

    def __init__(self, dsn: str, application_name: str) -> None:
        self._dsn = dsn
        self._application_name = application_name
        self._conn: asyncpg.Connection | None = None
        self._lock = asyncio.Lock()

    async def close(self) -> None:
        if self._conn is not None and not self._conn.is_closed():
            await self._conn.close()
        self._conn = None

    @contextlib.asynccontextmanager
    async def watch(self, pid: int, lock_timeout_ms: int) -> AsyncIterator[BlockerWatch]:
        watch = BlockerWatch()
        # Five looks per lock wait: the last one lands shortly before lock_timeout fires.
        interval = min(1.0, max(0.02, lock_timeout_ms / 5000))
        done = asyncio.Event()
        task = asyncio.create_task(self._poll(pid, interval, watch, done))
        try:
            yield watch
        finally:
            # Let a poll in flight finish rather than cancel it: a query cancelled half-way leaves
            # the connection to be reset, and the poll is a few milliseconds.
            done.set()
            await task

    async def _poll(self, pid: int, interval: float, watch: BlockerWatch, done: asyncio.Event) -> None:
        async with self._lock:
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(done.wait(), interval)
                if done.is_set():
                    return
                try:
                    conn = await self._connection()
                    watch.record(await activity.blocking(conn, pid))
                except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
                    log.warning("blocker_poll_failed", error=f"{type(error).__name__}: {error}")
                    await self.close()

    async def _connection(self) -> asyncpg.Connection:
        if self._conn is None or self._conn.is_closed():
            self._conn = await asyncpg.connect(
                self._dsn, server_settings={"application_name": self._application_name}
            )
        return self._conn
