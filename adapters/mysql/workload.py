"""A stand-in for the application during a MySQL/MariaDB migration: the tests' concurrent writer.

The same `accounts` shape as the PostgreSQL stand-in. Version 1 of the application writes
`legacy_status`; version 2 writes `band` and no longer knows `legacy_status`. Both insert, update and
delete. PyMySQL blocks, so each worker owns a connection and a thread of the writer's own pool (the
migration's threads never queue behind it), and each statement's latency is measured on that thread.
A deadlock (1213) is retried, as an application would, and counted apart from errors.
"""

from __future__ import annotations

import asyncio
import random
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import pymysql
from pymysql.connections import Connection

from adapters.mysql.dsn import MysqlDsn
from adapters.mysql.keyset import quote
from orchestrator.domain.identifiers import check_identifier

BAND_EXPRESSION = "CASE WHEN score >= 50 THEN 'high' ELSE 'low' END"
ER_LOCK_DEADLOCK = 1213
DEADLOCK_ATTEMPTS = 10
SEED_BATCH = 5_000


def band_of(score: int) -> str:
    """The new application's own computation of what BAND_EXPRESSION gives: they must agree."""
    return "high" if score >= 50 else "low"


def connect(dsn: str) -> Connection:
    return pymysql.connect(**MysqlDsn.parse(dsn).connect_args())


def _create_accounts(dsn: str, table: str, rows: int) -> None:
    name = quote(check_identifier(table))
    conn = connect(dsn)
    try:
        with conn.cursor() as cur:
            cur.execute(
                f"""
                CREATE TABLE {name} (
                    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
                    email VARCHAR(255) NOT NULL,
                    score INT NOT NULL,
                    legacy_status VARCHAR(32) NULL,
                    created_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)
                ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4
                """
            )
            if rows > 0:
                select = "CONCAT('user', seq, '@example.com'), (seq * 37) % 100, 'active'"
                try:
                    # MariaDB's Sequence engine: a million rows in seconds, one statement.
                    cur.execute(
                        f"INSERT INTO {name} (email, score, legacy_status) "  # noqa: S608
                        f"SELECT {select} FROM seq_1_to_{int(rows)}"
                    )
                except pymysql.err.ProgrammingError as error:
                    if error.args[0] != 1146:  # ER_NO_SUCH_TABLE: no Sequence engine (MySQL)
                        raise
                    _insert_in_batches(conn, name, rows)
            cur.execute(f"ANALYZE TABLE {name}")
            cur.fetchall()
    finally:
        conn.close()


def _insert_in_batches(conn: Connection, name: str, rows: int) -> None:
    with conn.cursor() as cur:
        for start in range(1, rows + 1, SEED_BATCH):
            values = [
                (f"user{n}@example.com", (n * 37) % 100, "active")
                for n in range(start, min(start + SEED_BATCH, rows + 1))
            ]
            cur.executemany(
                f"INSERT INTO {name} (email, score, legacy_status) VALUES (%s, %s, %s)",  # noqa: S608
                values,
            )


async def create_accounts(dsn: str, table: str = "accounts", rows: int = 10_000) -> None:
    await asyncio.to_thread(_create_accounts, dsn, table, rows)


@dataclass
class WriterStats:
    statements: int = 0
    errors: int = 0
    inserts: int = 0
    updates: int = 0
    deletes: int = 0
    deadlock_retries: int = 0
    worst_latency: float = 0.0
    error_messages: list[str] = field(default_factory=list)

    def record(self, kind: str, seconds: float, retries: int, error: str | None) -> None:
        self.statements += 1
        self.worst_latency = max(self.worst_latency, seconds)
        self.deadlock_retries += retries
        if error is not None:
            self.errors += 1
            self.error_messages.append(error)
        elif kind == "insert":
            self.inserts += 1
        elif kind == "update":
            self.updates += 1
        else:
            self.deletes += 1


@dataclass(frozen=True)
class _Outcome:
    kind: str
    seconds: float
    retries: int
    error: str | None
    inserted_id: int | None


class AccountsWriter:
    """`workers` connections inserting, updating and deleting rows until stopped, as version 1 or 2."""

    def __init__(
        self, dsn: str, table: str = "accounts", *, workers: int = 3, pace_seconds: float = 0.002
    ) -> None:
        self._dsn = dsn
        self._table = quote(check_identifier(table))
        self._workers = workers
        self._pace = pace_seconds
        self._version = 1
        self._acks: list[asyncio.Event] = []
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="accounts-writer")
        self._max_id = 1
        self._random = random.Random(7)
        self.stats = WriterStats()

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        for number in range(self._workers):
            conn = await loop.run_in_executor(self._executor, connect, self._dsn)
            if number == 0:
                self._max_id = await loop.run_in_executor(self._executor, self._read_max_id, conn)
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
        self._executor.shutdown(wait=True)
        return self.stats

    def _read_max_id(self, conn: Connection) -> int:
        with conn.cursor() as cur:
            cur.execute(f"SELECT COALESCE(MAX(id), 1) FROM {self._table}")  # noqa: S608
            row = cur.fetchone()
        return int(row[0]) if row else 1

    async def _work(self, conn: Connection, ack: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        try:
            while not self._stop.is_set():
                version = self._version
                ack.set()  # from here on this worker writes as `version`
                draw = self._random.random()
                kind = "insert" if draw < 0.45 else "update" if draw < 0.85 else "delete"
                score = self._random.randrange(100)
                row_id = self._random.randrange(1, self._max_id + 1)
                email = f"new{self._random.randrange(10**9)}@example.com"
                outcome = await loop.run_in_executor(
                    self._executor, self._statement, conn, version, kind, score, row_id, email
                )
                self.stats.record(outcome.kind, outcome.seconds, outcome.retries, outcome.error)
                if outcome.inserted_id is not None:
                    self._max_id = max(self._max_id, outcome.inserted_id)
                await asyncio.sleep(self._pace)  # pacing, so two cores also serve the migration
        finally:
            await loop.run_in_executor(self._executor, conn.close)

    def _statement(
        self, conn: Connection, version: int, kind: str, score: int, row_id: int, email: str
    ) -> _Outcome:
        sql, args = self._sql(version, kind, score, row_id, email)
        retries = 0
        started = time.monotonic()
        while True:
            try:
                with conn.cursor() as cur:
                    cur.execute(sql, args)
                    inserted = int(cur.lastrowid) if kind == "insert" else None
                return _Outcome(kind, time.monotonic() - started, retries, None, inserted)
            except pymysql.MySQLError as error:
                if error.args and error.args[0] == ER_LOCK_DEADLOCK and retries < DEADLOCK_ATTEMPTS:
                    retries += 1  # the server rolled the statement back: run it again
                    continue
                message = f"{type(error).__name__}: {error}"
                return _Outcome(kind, time.monotonic() - started, retries, message, None)

    def _sql(
        self, version: int, kind: str, score: int, row_id: int, email: str
    ) -> tuple[str, tuple[object, ...]]:
        table = self._table
        if kind == "delete":
            return f"DELETE FROM {table} WHERE id = %s", (row_id,)  # noqa: S608
        if version == 1:
            if kind == "insert":
                return (
                    f"INSERT INTO {table} (email, score, legacy_status) VALUES (%s, %s, 'active')",  # noqa: S608
                    (email, score),
                )
            return (
                f"UPDATE {table} SET score = %s, legacy_status = 'touched' WHERE id = %s",  # noqa: S608
                (score, row_id),
            )
        if kind == "insert":
            return (
                f"INSERT INTO {table} (email, score, band) VALUES (%s, %s, %s)",  # noqa: S608
                (email, score, band_of(score)),
            )
        return (
            f"UPDATE {table} SET score = %s, band = %s WHERE id = %s",  # noqa: S608
            (score, band_of(score), row_id),
        )
