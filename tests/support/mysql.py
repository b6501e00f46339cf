"""MariaDB/MySQL helpers for integration tests: a fresh database per test, replica catch-up by GTID,
schema and row comparisons, and the service wired to a MysqlTarget."""

from __future__ import annotations

import asyncio
import random
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pymysql
from pymysql.connections import Connection

from adapters.mysql.dsn import MysqlDsn
from adapters.mysql.keyset import quote
from adapters.mysql.target import MysqlTarget
from adapters.mysql.workload import connect as connect_sync
from adapters.slack import NullNotifier
from adapters.statestore.store import SqlStateStore
from orchestrator.engine.runner import RetryPolicy
from orchestrator.ports import Notifier
from orchestrator.service import MigrationService, TargetRegistry
from tests.support.pg import eventually as eventually
from tests.support.pg import require_env
from tests.support.pg import settle as settle


def with_database(dsn: str, database: str) -> str:
    """The DSN naming another database (on the text: the password may hold '/' or '?')."""
    scheme, _, rest = dsn.partition("://")
    credentials, at, location = rest.rpartition("@")
    hostport = location.partition("/")[0]
    query = location.partition("?")[2]
    return f"{scheme}://{credentials}{at}{hostport}/{database}" + (f"?{query}" if query else "")


@dataclass(frozen=True)
class MysqlPair:
    primary: str
    replica: str
    database: str


def _run(dsn: str, sql: str, args: Sequence[Any] | None) -> list[tuple[Any, ...]]:
    conn = connect_sync(dsn)
    try:
        with conn.cursor() as cur:
            cur.execute(sql, args)
            return list(cur.fetchall())
    finally:
        conn.close()


async def query(dsn: str, sql: str, args: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
    """Run one statement on a connection of its own (autocommit) and return its rows."""
    return await asyncio.to_thread(_run, dsn, sql, args)


async def scalar(dsn: str, sql: str, args: Sequence[Any] | None = None) -> Any:
    rows = await query(dsn, sql, args)
    return rows[0][0] if rows else None


@asynccontextmanager
async def fresh_database() -> AsyncIterator[MysqlPair]:
    primary = require_env("MYSQL_PRIMARY_DSN")
    replica = require_env("MYSQL_REPLICA_DSN")
    MysqlDsn.parse(primary)  # fail early on a malformed DSN
    name = f"t_{uuid.uuid4().hex[:12]}"
    await query(primary, f"CREATE DATABASE {quote(name)}")
    try:
        yield MysqlPair(with_database(primary, name), with_database(replica, name), name)
    finally:
        await query(primary, f"DROP DATABASE IF EXISTS {quote(name)}")


async def wait_for_replica(pair: MysqlPair, timeout: float = 60.0) -> None:
    """Block until the replica has applied every transaction the primary had binlogged when called."""
    position = await scalar(pair.primary, "SELECT @@GLOBAL.gtid_binlog_pos")
    waited = await scalar(pair.replica, "SELECT MASTER_GTID_WAIT(%s, %s)", (position, timeout))
    assert waited == 0, f"replica did not reach GTID {position} within {timeout} s"


class Session:
    """One connection held across calls (a blocker's open transaction, say)."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    @classmethod
    async def open(cls, dsn: str) -> Session:
        return cls(await asyncio.to_thread(connect_sync, dsn))

    async def execute(self, sql: str, args: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
        def run() -> list[tuple[Any, ...]]:
            with self._conn.cursor() as cur:
                cur.execute(sql, args)
                return list(cur.fetchall())

        return await asyncio.to_thread(run)

    async def close(self) -> None:
        await asyncio.to_thread(self._conn.close)


async def table_shape(dsn: str, table: str) -> dict[str, list[tuple[Any, ...]]]:
    """Columns (name, type, nullability, default) and indexes (name, uniqueness, columns in order)."""
    columns = await query(
        dsn,
        "SELECT COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE, COLUMN_DEFAULT FROM information_schema.COLUMNS "
        "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s ORDER BY ORDINAL_POSITION",
        (table,),
    )
    indexes = await query(
        dsn,
        "SELECT INDEX_NAME, NON_UNIQUE, SEQ_IN_INDEX, COLUMN_NAME FROM information_schema.STATISTICS "
        "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s ORDER BY INDEX_NAME, SEQ_IN_INDEX",
        (table,),
    )
    return {"columns": columns, "indexes": indexes}


def _checksum(dsn: str, table: str) -> tuple[int, str]:
    conn = connect_sync(dsn)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT COLUMN_NAME FROM information_schema.COLUMNS "
                "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s ORDER BY ORDINAL_POSITION",
                (table,),
            )
            columns = [quote(str(row[0])) for row in cur.fetchall()]
            cur.execute(
                "SELECT COLUMN_NAME FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() "
                "AND TABLE_NAME = %s AND INDEX_NAME = 'PRIMARY' ORDER BY SEQ_IN_INDEX",
                (table,),
            )
            key = [quote(str(row[0])) for row in cur.fetchall()]
            cur.execute("SET SESSION group_concat_max_len = 1073741824")
            # QUOTE() spells NULL apart from 'NULL' and keeps full precision of times and decimals.
            row_text = "CONCAT_WS(',', " + ", ".join(f"QUOTE({column})" for column in columns) + ")"
            cur.execute(
                f"SELECT COUNT(*), MD5(COALESCE(GROUP_CONCAT({row_text} ORDER BY {', '.join(key)} "
                f"SEPARATOR '\\n'), '')) FROM {quote(table)}"
            )
            found = cur.fetchone()
            assert found is not None
            return int(found[0]), str(found[1])
    finally:
        conn.close()


async def table_checksum(dsn: str, table: str) -> tuple[int, str]:
    """Row count and an MD5 over every row's every column, in primary-key order."""
    return await asyncio.to_thread(_checksum, dsn, table)


def build_service(
    pair: MysqlPair, state_dir: Path, *, notifier: Notifier | None = None, retry: RetryPolicy | None = None
) -> MigrationService:
    store = SqlStateStore(f"sqlite+aiosqlite:///{state_dir / 'state.db'}")
    targets = TargetRegistry({"app": ("mysql", lambda: MysqlTarget(pair.primary))})
    return MigrationService(store, targets, notifier or NullNotifier(), retry=retry)


ER_LOCK_DEADLOCK = 1213
DEADLOCK_ATTEMPTS = 10


@dataclass(frozen=True)
class Statement:
    """One kind of application write: `args` draws its parameters (PyMySQL's %s placeholders)."""

    kind: str
    sql: str
    args: Callable[[random.Random], Sequence[Any]]


@dataclass
class WriterStats:
    statements: int = 0
    errors: int = 0
    deadlock_retries: int = 0
    worst_latency: float = 0.0
    by_kind: dict[str, int] = field(default_factory=dict)
    rows_affected: dict[str, int] = field(default_factory=dict)
    messages: list[str] = field(default_factory=list)


class SqlWriter:
    """`workers` connections, each on a thread of its own, running a random one of `statements` (each
    its own autocommit transaction) until stopped. A deadlock (1213) is retried, as an application
    would, and counted apart from errors; anything else is an error."""

    def __init__(
        self, dsn: str, statements: Sequence[Statement], *, workers: int = 2, pace: float = 0.002
    ) -> None:
        self._dsn = dsn
        self._statements = list(statements)
        self._workers = workers
        self._pace = pace
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self.stats = WriterStats()

    async def start(self) -> None:
        for number in range(self._workers):
            conn = await asyncio.to_thread(connect_sync, self._dsn)
            thread = threading.Thread(
                target=self._work, args=(conn, random.Random(number)), name=f"sql-writer-{number}"
            )
            thread.start()
            self._threads.append(thread)

    async def stop(self) -> WriterStats:
        self._stop.set()
        for thread in self._threads:
            await asyncio.to_thread(thread.join)
        return self.stats

    def _work(self, conn: Connection, rng: random.Random) -> None:
        try:
            while not self._stop.is_set():
                statement = rng.choice(self._statements)
                self._run(conn, statement, statement.args(rng))
                time.sleep(self._pace)  # pacing, so two cores also serve the backfill
        finally:
            conn.close()

    def _run(self, conn: Connection, statement: Statement, args: Sequence[Any]) -> None:
        retries = 0
        error: str | None = None
        affected = 0
        started = time.monotonic()
        while True:
            try:
                with conn.cursor() as cur:
                    affected = cur.execute(statement.sql, args)
                break
            except pymysql.MySQLError as failure:
                if failure.args and failure.args[0] == ER_LOCK_DEADLOCK and retries < DEADLOCK_ATTEMPTS:
                    retries += 1  # the server rolled the statement back: run it again
                    continue
                error = f"{statement.kind}: {type(failure).__name__}: {failure}"
                break
        seconds = time.monotonic() - started
        with self._lock:
            stats = self.stats
            stats.statements += 1
            stats.deadlock_retries += retries
            stats.worst_latency = max(stats.worst_latency, seconds)
            if error is not None:
                stats.errors += 1
                stats.messages.append(error)
            else:
                stats.by_kind[statement.kind] = stats.by_kind.get(statement.kind, 0) + 1
                stats.rows_affected[statement.kind] = stats.rows_affected.get(statement.kind, 0) + affected
