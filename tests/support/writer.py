"""A small concurrent writer for ad-hoc test tables: inserts, updates and deletes through given SQL."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg


@dataclass
class Statement:
    sql: str
    args: Callable[[random.Random], Sequence[Any]]


@dataclass
class Stats:
    statements: int = 0
    errors: int = 0
    worst_latency: float = 0.0
    messages: list[str] = field(default_factory=list)


class SqlWriter:
    """`workers` connections each running a random one of `statements` in a loop until stopped."""

    def __init__(
        self, dsn: str, statements: list[Statement], *, workers: int = 2, pace: float = 0.002
    ) -> None:
        self._dsn = dsn
        self._statements = statements
        self._workers = workers
        self._pace = pace
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.stats = Stats()

    async def start(self) -> None:
        for number in range(self._workers):
            conn = await asyncpg.connect(self._dsn)
            self._tasks.append(asyncio.create_task(self._work(conn, random.Random(number))))

    async def stop(self) -> Stats:
        self._stop.set()
        await asyncio.gather(*self._tasks)
        return self.stats

    async def _work(self, conn: asyncpg.Connection, rng: random.Random) -> None:
        try:
            while not self._stop.is_set():
                statement = rng.choice(self._statements)
                started = time.monotonic()
                try:
                    await conn.execute(statement.sql, *statement.args(rng))
                except (asyncpg.PostgresError, OSError) as error:
                    self.stats.errors += 1
                    self.stats.messages.append(f"{type(error).__name__}: {error}")
                self.stats.statements += 1
                self.stats.worst_latency = max(self.stats.worst_latency, time.monotonic() - started)
                await asyncio.sleep(self._pace)  # pacing, so two cores also serve the backfill
        finally:
            await conn.close()
