"""A custom scalar SQL query as a signal, on PostgreSQL or MySQL/MariaDB (chosen by the DSN's scheme).

The query must return one row of one column holding a number (a boolean reads as 1 or 0). Anything else
(no row, several rows or columns, NULL, text, NaN) has no value and says why. It runs read-only and is
bounded by `timeout` on both sides: the source stops waiting, and the server stops the statement
(PostgreSQL `statement_timeout`; MariaDB `max_statement_time`, MySQL `max_execution_time` for SELECT).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

from adapters.mysql.dsn import SCHEMES as MYSQL_SCHEMES
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

PG_SCHEMES = ("postgres", "postgresql")


def scalar_of(columns: int, rows: Sequence[Sequence[Any]]) -> float:
    """The one value of a one-row, one-column result."""
    if columns != 1:
        raise SignalReadError(f"the query returned {columns} columns, not one")
    if not rows:
        raise SignalReadError("the query returned no row")
    if len(rows) > 1:
        raise SignalReadError(f"the query returned {len(rows)} rows, not one")
    try:
        return as_number(rows[0][0])
    except SignalReadError as error:
        raise SignalReadError(f"the query returned {error}") from None


class CustomSqlSource(GuardedSource):
    """`CustomSqlSource("queue-depth", dsn, "SELECT count(*) FROM jobs WHERE state = 'ready'")`.

    The detail is the query. The DSN's scheme picks the driver: postgres(ql):// or mysql:// (mariadb://).
    """

    def __init__(
        self,
        name: str,
        dsn: str,
        query: str,
        *,
        unit: str = "",
        timeout: float = DEFAULT_TIMEOUT,
        clock: Clock = time.monotonic,
    ) -> None:
        if not query.strip():
            raise ValueError("a custom SQL signal needs a query")
        self.query = query
        scheme = dsn.partition("://")[0].lower()
        self._pg: PgSession | None = None
        self._mysql: MysqlSession | None = None
        if scheme in PG_SCHEMES:
            self._pg = PgSession(dsn, timeout=timeout, settings={"default_transaction_read_only": "on"})
            where, secrets = pg_endpoint(dsn), pg_secrets(dsn)
        elif scheme in MYSQL_SCHEMES:
            parsed = MysqlDsn.parse(dsn)
            self._mysql = MysqlSession(
                dsn,
                timeout=timeout,
                on_connect=["SET SESSION TRANSACTION READ ONLY"],
                optional=[
                    f"SET SESSION max_statement_time = {timeout:g}",  # MariaDB, seconds
                    f"SET SESSION max_execution_time = {max(1, math.ceil(timeout * 1000))}",  # MySQL, ms
                ],
            )
            where, secrets = f"{parsed.host}:{parsed.port}", [parsed.password]
        else:
            raise ValueError("a custom SQL signal needs a postgresql://, mysql:// or mariadb:// DSN")
        super().__init__(name=name, unit=unit, where=query, timeout=timeout, clock=clock, secrets=secrets)
        self.endpoint = where

    async def _read(self, at: float) -> Sample:
        if self._pg is not None:
            records = await self._pg.fetch(self.query)
            rows: list[Sequence[Any]] = [tuple(record.values()) for record in records]
            columns = len(rows[0]) if rows else 1
        else:
            assert self._mysql is not None
            columns, rows = await self._mysql.run(self._mysql_rows)
        return Sample(value=scalar_of(columns, rows), at=at, detail=self.query)

    def _mysql_rows(self, cursor: Any) -> tuple[int, list[Sequence[Any]]]:
        cursor.execute(self.query)
        columns = [column[0] for column in cursor.description or ()]
        # A DictCursor keys rows by column name: with one column there is exactly one value per row.
        return len(columns), [tuple(row.values()) for row in cursor.fetchall()]

    async def close(self) -> None:
        if self._pg is not None:
            await self._pg.close()
        if self._mysql is not None:
            await self._mysql.close()
