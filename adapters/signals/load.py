"""Database load: statements running now, the oldest open transaction, MySQL's Threads_running.

PostgreSQL only shows another role's sessions (and the server's own processes) in full to superusers
and members of pg_read_all_stats (pg_monitor). Without that privilege their state, database and
backend type read NULL and the counts would be silently low, so the PostgreSQL sources refuse (no
value, the missing privilege as the error) instead: the role they use needs pg_monitor.
"""

from __future__ import annotations

import time
from typing import Any

from adapters.mysql.dsn import MysqlDsn
from adapters.signals.base import (
    DEFAULT_TIMEOUT,
    Clock,
    GuardedSource,
    SignalReadError,
    as_number,
    pg_endpoint,
    pg_secrets,
)
from adapters.signals.connections import MysqlSession, PgSession
from orchestrator.domain.throttle import Sample

# Client sessions other than this one, optionally in this database only ($1). `hidden` counts the
# sessions (of any kind, anywhere) whose details this role may not see: their backend_type, datname and
# state all read NULL, so no filter can place them.
_ACTIVE_SQL = """
    SELECT count(*) FILTER (WHERE mine AND state = 'active') AS active,
           count(*) FILTER (WHERE mine) AS sessions,
           count(*) FILTER (WHERE backend_type IS NULL) AS hidden
    FROM (
        SELECT state, backend_type,
               backend_type = 'client backend' AND pid <> pg_backend_pid()
               AND (NOT $1::bool OR datname = current_database()) AS mine
        FROM pg_stat_activity
    ) AS sessions
"""

_OLDEST_SQL = """
    SELECT (SELECT count(*) FROM pg_stat_activity WHERE backend_type IS NULL) AS hidden, oldest.*
    FROM (SELECT 1) AS one
    LEFT JOIN LATERAL (
        SELECT pid, datname, state, application_name,
               extract(epoch FROM clock_timestamp() - xact_start)::float8 AS age
        FROM pg_stat_activity
        WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()
          AND (NOT $1::bool OR datname = current_database()) AND xact_start IS NOT NULL
        ORDER BY xact_start LIMIT 1
    ) AS oldest ON true
"""


def _refuse_hidden(row: Any) -> None:
    if row["hidden"]:
        raise SignalReadError(
            f"{row['hidden']} sessions are hidden from this role: grant it pg_monitor (pg_read_all_stats)"
        )


class _PgActivitySource(GuardedSource):
    """A reading of pg_stat_activity through one session of its own, server-wide or for the DSN's
    database only."""

    def __init__(
        self,
        dsn: str,
        *,
        name: str,
        unit: str,
        this_database_only: bool,
        timeout: float,
        clock: Clock,
    ) -> None:
        self._session = PgSession(dsn, timeout=timeout)
        self._this_database_only = this_database_only
        super().__init__(
            name=name,
            unit=unit,
            where=pg_endpoint(dsn),
            timeout=timeout,
            clock=clock,
            secrets=pg_secrets(dsn),
        )

    async def close(self) -> None:
        await self._session.close()


class PgActiveSessionsSource(_PgActivitySource):
    """Statements running now (pg_stat_activity state 'active'), other than this source's own.

    Server-wide by default: load is the server's. `this_database_only` counts the DSN's database only.
    """

    def __init__(
        self,
        dsn: str,
        *,
        name: str = "active-sessions",
        this_database_only: bool = False,
        timeout: float = DEFAULT_TIMEOUT,
        clock: Clock = time.monotonic,
    ) -> None:
        super().__init__(
            dsn, name=name, unit="count", this_database_only=this_database_only, timeout=timeout, clock=clock
        )

    async def _read(self, at: float) -> Sample:
        row = await self._session.fetchrow(_ACTIVE_SQL, self._this_database_only)
        assert row is not None
        _refuse_hidden(row)
        detail = f"{self._where}: {row['active']} active of {row['sessions']} other sessions"
        return Sample(value=float(row["active"]), at=at, detail=detail)


class PgLongestTransactionSource(_PgActivitySource):
    """Age in seconds of the oldest open transaction (idle in transaction included), 0 when none.

    A long transaction holds back vacuum and, during a migration, can hold the very lock a DDL step
    queues behind. The detail names its pid, database, state and application, never its query text.
    """

    def __init__(
        self,
        dsn: str,
        *,
        name: str = "longest-transaction",
        this_database_only: bool = False,
        timeout: float = DEFAULT_TIMEOUT,
        clock: Clock = time.monotonic,
    ) -> None:
        super().__init__(
            dsn, name=name, unit="s", this_database_only=this_database_only, timeout=timeout, clock=clock
        )

    async def _read(self, at: float) -> Sample:
        row = await self._session.fetchrow(_OLDEST_SQL, self._this_database_only)
        assert row is not None
        _refuse_hidden(row)
        if row["pid"] is None:
            return Sample(value=0.0, at=at, detail=f"{self._where}: no open transaction")
        application = f", application {row['application_name']!r}" if row["application_name"] else ""
        detail = f"{self._where}: pid {row['pid']} in database {row['datname']} ({row['state']}{application})"
        return Sample(value=round(max(0.0, float(row["age"])), 6), at=at, detail=detail)


class MysqlThreadsRunningSource(GuardedSource):
    """MySQL's global Threads_running status, as gh-ost's --max-load and pt-osc's --max-load read it.

    The figure is the raw status variable, so it includes the connection reading it (it is never below 1).
    """

    def __init__(
        self,
        dsn: str,
        *,
        name: str = "threads-running",
        timeout: float = DEFAULT_TIMEOUT,
        clock: Clock = time.monotonic,
    ) -> None:
        parsed = MysqlDsn.parse(dsn)
        self._session = MysqlSession(dsn, timeout=timeout)
        super().__init__(
            name=name,
            unit="count",
            where=f"{parsed.host}:{parsed.port}",
            timeout=timeout,
            clock=clock,
            secrets=[parsed.password],
        )

    async def _read(self, at: float) -> Sample:
        status = await self._session.run(_threads)
        if "Threads_running" not in status:
            raise SignalReadError("SHOW GLOBAL STATUS has no Threads_running")
        running = as_number(status["Threads_running"])
        connected = status.get("Threads_connected", "?")
        detail = f"{self._where}: {running:g} running of {connected} connected (this reader included)"
        return Sample(value=running, at=at, detail=detail)

    async def close(self) -> None:
        await self._session.close()


def _threads(cursor: Any) -> dict[str, str]:
    cursor.execute("SHOW GLOBAL STATUS WHERE Variable_name IN ('Threads_running', 'Threads_connected')")
    return {str(row["Variable_name"]): str(row["Value"]) for row in cursor.fetchall()}
