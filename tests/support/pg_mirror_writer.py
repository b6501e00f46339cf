"""A concurrent PostgreSQL writer whose every change is made twice in one transaction: to the table under
migration and to an untouched mirror of it. Whatever a rewrite loses, duplicates or mangles shows as a
difference between the two afterwards. Each transaction's wall-clock start and duration are kept, so a
test can find the worst wait during any window (a swap, say)."""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field

import asyncpg

# New rows take their id from the table's own sequence first, so both copies get the same one and no
# statement returns the column being rewritten (a client's cached plan would change result type).
MIRRORED_COLUMNS = "id, email, score, note"


@dataclass(frozen=True)
class Sample:
    started: float  # time.time() at the start of the transaction
    seconds: float
    kind: str


@dataclass
class MirrorStats:
    samples: list[Sample] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def count(self, kind: str) -> int:
        return sum(1 for sample in self.samples if sample.kind == kind)

    def during(self, start: float, end: float) -> list[Sample]:
        """Transactions that were running at some point between `start` and `end` (wall clock)."""
        return [s for s in self.samples if s.started <= end and s.started + s.seconds >= start]


class PgMirroredWriter:
    def __init__(
        self,
        dsn: str,
        table: str,
        mirror: str,
        sequence: str,
        *,
        workers: int = 3,
        pace_seconds: float = 0.003,
    ) -> None:
        self._dsn, self._table, self._mirror, self._sequence = dsn, table, mirror, sequence
        self._workers, self._pace = workers, pace_seconds
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._max_id = 1
        self.stats = MirrorStats()

    async def start(self) -> None:
        for number in range(self._workers):
            conn = await asyncpg.connect(self._dsn)
            if number == 0:
                self._max_id = int(await conn.fetchval(f"SELECT coalesce(max(id), 1) FROM {self._table}"))
            self._tasks.append(asyncio.create_task(self._work(conn, random.Random(number))))

    async def stop(self) -> MirrorStats:
        self._stop.set()
        await asyncio.gather(*self._tasks)
        return self.stats

    async def _work(self, conn: asyncpg.Connection, rng: random.Random) -> None:
        try:
            while not self._stop.is_set():
                draw = rng.random()
                kind = "insert" if draw < 0.4 else "update" if draw < 0.8 else "delete"
                started_wall, started = time.time(), time.monotonic()
                try:
                    await self._transaction(conn, kind, rng)
                except (asyncpg.PostgresError, OSError) as error:
                    self.stats.errors.append(f"{kind}: {type(error).__name__}: {error}")
                self.stats.samples.append(Sample(started_wall, time.monotonic() - started, kind))
                await asyncio.sleep(self._pace)
        finally:
            await conn.close()

    async def _transaction(self, conn: asyncpg.Connection, kind: str, rng: random.Random) -> None:
        row_id = rng.randrange(1, self._max_id + 1)
        async with conn.transaction():
            if kind == "insert":
                new_id = int(await conn.fetchval("SELECT nextval($1::regclass)", self._sequence))
                values = (new_id, f"w{new_id}@example.com", rng.randrange(100), f"new {rng.randrange(10**6)}")
                for table in (self._table, self._mirror):
                    await conn.execute(
                        f"INSERT INTO {table} ({MIRRORED_COLUMNS}) VALUES ($1, $2, $3, $4)", *values
                    )
                self._max_id = max(self._max_id, new_id)
            elif kind == "update":
                score, note = rng.randrange(100), f"touched {rng.randrange(10**6)}"
                for table in (self._table, self._mirror):
                    await conn.execute(
                        f"UPDATE {table} SET score = $1, note = $2 WHERE id = $3", score, note, row_id
                    )
            else:
                for table in (self._table, self._mirror):
                    await conn.execute(f"DELETE FROM {table} WHERE id = $1", row_id)
