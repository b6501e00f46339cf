"""A stand-in for the application during a migration: the demo's and the tests' concurrent writer.

It owns a small `accounts` schema and writes to it as the old application version (which still
writes `legacy_status`) or the new one (which writes `band` and no longer knows `legacy_status`).
Every statement's outcome and latency is counted, so a run can prove no write failed and none waited
longer than the migration's lock_timeout.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field

import asyncpg

from orchestrator.domain.identifiers import quote_ident

BAND_EXPRESSION = "CASE WHEN score >= 50 THEN 'high' ELSE 'low' END"


def band_of(score: int) -> str:
    """The new application's own computation of what BAND_EXPRESSION gives: they must agree."""
    return "high" if score >= 50 else "low"


async def create_accounts(conn: asyncpg.Connection, table: str = "accounts", rows: int = 10_000) -> None:
    name = quote_ident(table)
    await conn.execute(
        f"""
        CREATE TABLE {name} (
            id bigserial PRIMARY KEY,
            email text NOT NULL,
            score integer NOT NULL,
            legacy_status text,
            created_at timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    await conn.execute(
        f"""
        INSERT INTO {name} (email, score, legacy_status)
        SELECT 'user' || g || '@example.com', (g * 37) % 100, 'active'
        FROM generate_series(1, $1::int) AS g
        """,  # noqa: S608 - the table name is validated and quoted
        rows,
    )
    await conn.execute(f"ANALYZE {name}")


@dataclass
class WriterStats:
    statements: int = 0
    errors: int = 0
    inserts: int = 0
    updates: int = 0
    worst_latency: float = 0.0
    error_messages: list[str] = field(default_factory=list)

    def record(self, seconds: float) -> None:
        self.statements += 1
        self.worst_latency = max(self.worst_latency, seconds)


class AccountsWriter:
    """`workers` connections inserting and updating rows until stopped, as version 1 or 2 of the app."""

    def __init__(
        self, dsn: str, table: str = "accounts", *, workers: int = 3, pace_seconds: float = 0.002
    ) -> None:
        self._dsn = dsn
        self._table = quote_ident(table)
        self._workers = workers
        self._pace = pace_seconds
        self._version = 1
        self._acks: list[asyncio.Event] = []
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._max_id = 1
        self.stats = WriterStats()
        self._random = random.Random(7)

    async def start(self) -> None:
        for number in range(self._workers):
            conn = await asyncpg.connect(self._dsn, server_settings={"application_name": "demo-app"})
            if number == 0:
                self._max_id = int(await conn.fetchval(f"SELECT coalesce(max(id), 1) FROM {self._table}"))  # noqa: S608
            ack = asyncio.Event()
            self._acks.append(ack)
            self._tasks.append(asyncio.create_task(self._work(conn, ack)))

    async def switch_to_new_version(self) -> None:
        """Roll out version 2: returns once no worker can still issue a version-1 statement."""
        self._version = 2
        for ack in self._acks:
            ack.clear()
        await asyncio.gather(*(ack.wait() for ack in self._acks))

    async def stop(self) -> WriterStats:
        self._stop.set()
        await asyncio.gather(*self._tasks)
        return self.stats

    async def _work(self, conn: asyncpg.Connection, ack: asyncio.Event) -> None:
        try:
            while not self._stop.is_set():
                version = self._version
                ack.set()  # from here on this worker writes as `version`
                score = self._random.randrange(100)
                started = time.monotonic()
                try:
                    if self._random.random() < 0.5:
                        await self._insert(conn, version, score)
                        self.stats.inserts += 1
                    else:
                        await self._update(conn, version, score)
                        self.stats.updates += 1
                except (asyncpg.PostgresError, OSError) as error:
                    self.stats.errors += 1
                    self.stats.error_messages.append(f"{type(error).__name__}: {error}")
                self.stats.record(time.monotonic() - started)
                await asyncio.sleep(self._pace)  # pacing, so two cores also serve the migration
        finally:
            await conn.close()

    async def _insert(self, conn: asyncpg.Connection, version: int, score: int) -> None:
        email = f"new{self._random.randrange(10**9)}@example.com"
        if version == 1:
            row_id = await conn.fetchval(
                f"INSERT INTO {self._table} (email, score, legacy_status) VALUES ($1, $2, 'active') RETURNING id",  # noqa: S608
                email,
                score,
            )
        else:
            row_id = await conn.fetchval(
                f"INSERT INTO {self._table} (email, score, band) VALUES ($1, $2, $3) RETURNING id",  # noqa: S608
                email,
                score,
                band_of(score),
            )
        self._max_id = max(self._max_id, int(row_id))

    async def _update(self, conn: asyncpg.Connection, version: int, score: int) -> None:
        row_id = self._random.randrange(1, self._max_id + 1)
        if version == 1:
            await conn.execute(
                f"UPDATE {self._table} SET score = $2, legacy_status = 'touched' WHERE id = $1",  # noqa: S608
                row_id,
                score,
            )
        else:
            await conn.execute(
                f"UPDATE {self._table} SET score = $2, band = $3 WHERE id = $1",  # noqa: S608
                row_id,
                score,
                band_of(score),
            )
