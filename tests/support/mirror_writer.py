"""A concurrent writer whose every change is made twice in one transaction: to the table under
migration and to an untouched mirror of it. Whatever a copy tool loses, duplicates or mangles shows as a
difference between the two afterwards. Deadlocks (1213) and lock wait timeouts (1205) roll the
transaction back; it is retried and counted, as an application would."""

from __future__ import annotations

import asyncio
import random
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import pymysql
from pymysql.connections import Connection

from adapters.mysql.workload import connect

RETRY_CODES = frozenset({1205, 1213})
ATTEMPTS = 20


@dataclass
class MirrorStats:
    inserts: int = 0
    updates: int = 0
    deletes: int = 0
    retries: int = 0
    errors: list[str] = field(default_factory=list)
    worst_latency: float = 0.0


def _columns(table: str) -> str:
    return f"SELECT id, email, score, legacy_status, created_at FROM `{table}` WHERE id = %s"


class MirroredWriter:
    def __init__(
        self, dsn: str, table: str, mirror: str, *, workers: int = 3, pace_seconds: float = 0.003
    ) -> None:
        self._dsn, self._table, self._mirror = dsn, table, mirror
        self._workers, self._pace = workers, pace_seconds
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="mirror-writer")
        self._max_id = 1
        self.stats = MirrorStats()

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        for number in range(self._workers):
            conn = await loop.run_in_executor(self._executor, connect, self._dsn)
            if number == 0:
                self._max_id = await loop.run_in_executor(self._executor, self._read_max_id, conn)
            self._tasks.append(asyncio.create_task(self._work(conn, random.Random(number))))

    async def stop(self) -> MirrorStats:
        self._stop.set()
        await asyncio.gather(*self._tasks)
        self._executor.shutdown(wait=True)
        return self.stats

    def _read_max_id(self, conn: Connection) -> int:
        with conn.cursor() as cur:
            cur.execute(f"SELECT COALESCE(MAX(id), 1) FROM `{self._table}`")
            row = cur.fetchone()
        return int(row[0]) if row else 1

    async def _work(self, conn: Connection, rng: random.Random) -> None:
        loop = asyncio.get_running_loop()
        try:
            while not self._stop.is_set():
                draw = rng.random()
                kind = "insert" if draw < 0.45 else "update" if draw < 0.85 else "delete"
                row_id = rng.randrange(1, self._max_id + 1)
                score = rng.randrange(100)
                await loop.run_in_executor(
                    self._executor, self._transaction, conn, kind, row_id, score, rng.randrange(10**9)
                )
                await asyncio.sleep(self._pace)
        finally:
            await loop.run_in_executor(self._executor, conn.close)

    def _transaction(self, conn: Connection, kind: str, row_id: int, score: int, tag: int) -> None:
        started = time.monotonic()
        for _ in range(ATTEMPTS):
            try:
                conn.begin()
                with conn.cursor() as cur:
                    if kind == "insert":
                        cur.execute(
                            f"INSERT INTO `{self._table}` (email, score, legacy_status) VALUES (%s, %s, 'new')",
                            (f"w{tag}@example.com", score),
                        )
                        new_id = int(cur.lastrowid)
                        cur.execute(f"INSERT INTO `{self._mirror}` " + _columns(self._table), (new_id,))
                        self._max_id = max(self._max_id, new_id)
                    elif kind == "update":
                        for table in (self._table, self._mirror):
                            cur.execute(
                                f"UPDATE `{table}` SET score = %s, legacy_status = 'touched' WHERE id = %s",
                                (score, row_id),
                            )
                    else:
                        for table in (self._table, self._mirror):
                            cur.execute(f"DELETE FROM `{table}` WHERE id = %s", (row_id,))
                conn.commit()
                setattr(self.stats, kind + "s", getattr(self.stats, kind + "s") + 1)
                break
            except pymysql.MySQLError as error:
                conn.rollback()
                if error.args and error.args[0] in RETRY_CODES:
                    self.stats.retries += 1
                    continue
                self.stats.errors.append(f"{type(error).__name__}: {error}")
                break
        else:
            self.stats.errors.append(f"{kind} gave up after {ATTEMPTS} attempts")
        self.stats.worst_latency = max(self.stats.worst_latency, time.monotonic() - started)
