"""PostgreSQL helpers for integration tests: a fresh database per test, replica catch-up, comparisons."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from adapters.postgres.target import PostgresTarget
from adapters.slack import NullNotifier
from adapters.statestore.store import SqlStateStore
from orchestrator.domain.run import Run
from orchestrator.domain.states import RunStatus
from orchestrator.engine.runner import RetryPolicy
from orchestrator.ports import Notifier
from orchestrator.service import MigrationService, TargetRegistry


def with_database(dsn: str, database: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, f"/{database}", parts.query, parts.fragment))


@dataclass(frozen=True)
class PgPair:
    primary: str
    replica: str
    database: str


def require_env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        pytest.skip(f"{name} is not set: run `make test` (it starts the servers) or source .services/env")
    return value


@asynccontextmanager
async def fresh_database() -> AsyncIterator[PgPair]:
    primary = require_env("PG_PRIMARY_DSN")
    replica = require_env("PG_REPLICA_DSN")
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(primary)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield PgPair(with_database(primary, name), with_database(replica, name), name)
    finally:
        admin = await asyncpg.connect(primary)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


async def wait_for_replica(pair: PgPair, timeout: float = 30.0) -> None:
    """Block until the replica has replayed everything the primary had written when called."""
    async with connect(pair.primary) as primary:
        target_lsn = await primary.fetchval("SELECT pg_current_wal_insert_lsn()")
    deadline = time.monotonic() + timeout
    # The replay position is the cluster's: read it through a database that surely exists there, since
    # a replica lagging by more than the test's age has not created the test's database yet.
    async with connect(with_database(pair.replica, "postgres")) as replica:
        while True:
            caught_up = await replica.fetchval("SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn", target_lsn)
            if caught_up:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"replica did not replay up to {target_lsn} within {timeout} s")
            await asyncio.sleep(0.05)


@asynccontextmanager
async def connect(dsn: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(dsn)
    try:
        yield conn
    finally:
        await conn.close()


async def table_shape(conn: asyncpg.Connection, table: str) -> dict[str, object]:
    """Columns (name, type, nullability) and indexes (name, definition, validity) of a table."""
    columns = await conn.fetch(
        """
        SELECT column_name, data_type, is_nullable FROM information_schema.columns
        WHERE table_schema = 'public' AND table_name = $1 ORDER BY ordinal_position
        """,
        table,
    )
    indexes = await conn.fetch(
        """
        SELECT c.relname, pg_get_indexdef(i.indexrelid) AS definition, i.indisvalid
        FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
        WHERE i.indrelid = to_regclass($1) ORDER BY c.relname
        """,
        table,
    )
    return {
        "columns": [tuple(row) for row in columns],
        "indexes": [tuple(row) for row in indexes],
    }


async def table_checksum(conn: asyncpg.Connection, table: str, columns: str = "*") -> tuple[int, str]:
    row = await conn.fetchrow(
        f"SELECT count(*) AS n, md5(coalesce(string_agg(t::text, ',' ORDER BY t.id), '')) AS digest "
        f"FROM (SELECT {columns} FROM {table}) AS t"
    )
    assert row is not None
    return int(row["n"]), str(row["digest"])


def build_service(
    pair: PgPair,
    state_dir: Path,
    *,
    notifier: Notifier | None = None,
    retry: RetryPolicy | None = None,
    **options: Any,
) -> MigrationService:
    """`options` go to MigrationService as they are: windows, max_copying, leadership, ..."""
    store = SqlStateStore(f"sqlite+aiosqlite:///{state_dir / 'state.db'}")
    targets = TargetRegistry({"app": ("postgres", lambda: PostgresTarget(pair.primary))})
    return MigrationService(store, targets, notifier or NullNotifier(), retry=retry, **options)


async def settle(service: MigrationService, run_id: str, until: RunStatus, timeout: float = 120.0) -> Run:
    run, reached = await service.wait(run_id, {until}, timeout)
    assert reached, f"expected {until.value}, migration is {run.status.value}: {run.error}"
    return run


async def eventually(
    check: Callable[[], Awaitable[bool]], timeout: float = 60.0, what: str = "condition"
) -> None:
    """Poll an observable condition with a deadline (synchronising on state, not on elapsed time)."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.05)
