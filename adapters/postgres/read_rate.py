"""A read rate measured on the target for the plan's duration estimates: one bounded read of a table's
rows, timed, in a read-only transaction under a statement timeout. Nothing is written."""

from __future__ import annotations

import time

import asyncpg

from orchestrator.domain.identifiers import quote_ident
from orchestrator.lint.live import ReadRate

APPLICATION_NAME = "osctl-preflight"
TIMEOUT_MS = 5_000


class PgReadRateProbe:
    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self._conn: asyncpg.Connection | None = None

    async def _connection(self) -> asyncpg.Connection:
        if self._conn is None:
            self._conn = await asyncpg.connect(
                self._dsn,
                server_settings={"application_name": APPLICATION_NAME, "statement_timeout": str(TIMEOUT_MS)},
            )
        return self._conn

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None

    async def sample_read(self, table: str, rows: int) -> ReadRate | None:
        conn = await self._connection()
        # Every column of every row is read (pg_column_size of the whole row detoasts nothing it need
        # not, but touches each tuple), on the server: the network is not what a backfill waits on.
        rows_sql = f"SELECT * FROM {quote_ident(table)} LIMIT $1"  # noqa: S608 - a quoted identifier
        totals = "count(*)::bigint AS n, coalesce(sum(pg_column_size(s.*)), 0)::bigint AS bytes"
        sql = f"SELECT {totals} FROM ({rows_sql}) AS s"  # noqa: S608 - built from the quoted text above
        async with conn.transaction(readonly=True):
            started = time.perf_counter()
            row = await conn.fetchrow(sql, rows)
            seconds = time.perf_counter() - started
        if row is None or not row["n"]:
            return None
        return ReadRate(table=table, rows=int(row["n"]), bytes=int(row["bytes"]), seconds=seconds)
