"""Load signals on the real servers: PostgreSQL active statements and oldest transaction, MariaDB
Threads_running. Each has a reading at rest and one under load the test creates (statements that sleep
in the server: the load itself, not a wait), and an unreachable server holds."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import pymysql
import pytest

from adapters.mysql.dsn import MysqlDsn
from adapters.signals.load import (
    MysqlThreadsRunningSource,
    PgActiveSessionsSource,
    PgLongestTransactionSource,
)
from tests.support.pg import PgPair, connect, eventually, fresh_database, require_env, with_database

pytestmark = pytest.mark.integration


@pytest.fixture
async def pair() -> AsyncIterator[PgPair]:
    """A database of this test's own, so that other suites' sessions never enter the counts."""
    async with fresh_database() as created:
        yield created


@contextlib.asynccontextmanager
async def sleepers(dsn: str, count: int) -> AsyncIterator[list[int]]:
    """`count` sessions each running pg_sleep in the server; cancelled (not awaited out) on exit."""
    conns = [await asyncpg.connect(dsn) for _ in range(count)]
    tasks = [asyncio.create_task(conn.execute("SELECT pg_sleep(60)")) for conn in conns]
    try:
        yield [conn.get_server_pid() for conn in conns]
    finally:
        async with connect(dsn) as admin:
            await admin.execute(
                "SELECT pg_cancel_backend(pid) FROM unnest($1::int[]) AS pid",
                [conn.get_server_pid() for conn in conns],
            )
        await asyncio.gather(*tasks, return_exceptions=True)
        for conn in conns:
            await conn.close()


async def reading(source: Any, check: Any, what: str) -> Any:
    last: list[Any] = []

    async def ok() -> bool:
        last[:] = [await source.sample()]
        return bool(check(last[0]))

    await eventually(ok, timeout=15, what=f"{what} (last: {last})")
    return last[0]


async def test_pg_active_sessions(pair: PgPair) -> None:
    source = PgActiveSessionsSource(pair.primary, this_database_only=True)
    try:
        idle = await source.sample()
        assert idle.value == 0.0, idle  # this source's own session is never counted
        assert (source.name, source.unit) == ("active-sessions", "count")
        async with sleepers(pair.primary, 3):
            busy = await reading(source, lambda s: s.value == 3.0, "3 active statements")
            assert "3 active of 3 other sessions" in busy.detail
        await reading(source, lambda s: s.value == 0.0, "no active statement after cancel")
    finally:
        await source.close()


async def test_pg_active_sessions_server_wide_counts_other_databases(pair: PgPair) -> None:
    source = PgActiveSessionsSource(require_env("PG_PRIMARY_DSN"))
    try:
        async with sleepers(pair.primary, 2):
            await reading(source, lambda s: s.value is not None and s.value >= 2, "at least 2 active")
    finally:
        await source.close()


async def test_pg_longest_transaction(pair: PgPair) -> None:
    source = PgLongestTransactionSource(pair.primary, this_database_only=True)
    try:
        none = await source.sample()
        assert none.value == 0.0 and "no open transaction" in none.detail, none
        async with connect(pair.primary) as holder:
            transaction = holder.transaction()
            await transaction.start()
            await holder.execute("SELECT 1")
            try:
                old = await reading(
                    source, lambda s: s.value is not None and s.value >= 0.3, "a 0.3 s transaction"
                )
                assert f"pid {holder.get_server_pid()}" in old.detail
                assert "idle in transaction" in old.detail
            finally:
                await transaction.rollback()
            await reading(source, lambda s: s.value == 0.0, "no transaction after rollback")
    finally:
        await source.close()


async def test_pg_sessions_hidden_from_the_role_hold(pair: PgPair) -> None:
    """A role without pg_read_all_stats sees other roles' sessions without state: refuse, not undercount."""
    role = f"osctl_t_{uuid.uuid4().hex[:10]}"
    async with connect(pair.primary) as admin:
        await admin.execute(f"CREATE ROLE {role} LOGIN")
        try:
            dsn = with_database(require_env("PG_PRIMARY_DSN").replace("postgres@", f"{role}@"), pair.database)
            for source in (
                PgActiveSessionsSource(dsn, this_database_only=True),
                PgLongestTransactionSource(dsn, this_database_only=True),
            ):
                try:
                    sample = await source.sample()
                finally:
                    await source.close()
                assert sample.value is None, sample
                assert sample.error is not None and "pg_monitor" in sample.error, sample
            await admin.execute(f"GRANT pg_monitor TO {role}")
            source = PgActiveSessionsSource(dsn, this_database_only=True)
            try:
                granted = await source.sample()
            finally:
                await source.close()
            assert granted.value == 0.0, granted
        finally:
            await admin.execute(f"DROP ROLE {role}")


async def test_pg_unreachable_holds() -> None:
    for source in (
        PgActiveSessionsSource("postgresql://postgres:sw0rdfish@127.0.0.1:1/postgres", timeout=1.0),
        PgLongestTransactionSource("postgresql://postgres:sw0rdfish@127.0.0.1:1/postgres", timeout=1.0),
    ):
        try:
            sample = await source.sample()
        finally:
            await source.close()
        assert sample.value is None and sample.error, sample
        assert "sw0rdfish" not in f"{sample.error} {sample.detail}"
        assert sample.detail == "127.0.0.1:1"


def mysql_connect(dsn: str) -> Any:
    return pymysql.connect(**MysqlDsn.parse(dsn).connect_args())


@contextlib.contextmanager
def mysql_sleepers(dsn: str, count: int) -> Iterator[list[asyncio.Task[None]]]:
    conns = [mysql_connect(dsn) for _ in range(count)]
    ids = [conn.thread_id() for conn in conns]

    def sleep(conn: Any) -> None:
        with contextlib.suppress(pymysql.MySQLError), conn.cursor() as cursor:
            cursor.execute("SELECT SLEEP(60)")

    futures = [asyncio.create_task(asyncio.to_thread(sleep, conn)) for conn in conns]
    try:
        yield futures
    finally:
        killer = mysql_connect(dsn)
        try:
            with killer.cursor() as cursor:
                for thread_id in ids:
                    cursor.execute(f"KILL QUERY {int(thread_id)}")
        finally:
            killer.close()


async def test_mysql_threads_running() -> None:
    dsn = require_env("MYSQL_PRIMARY_DSN")
    source = MysqlThreadsRunningSource(dsn)
    try:
        calm = await source.sample()
        assert calm.value is not None and calm.value >= 1, calm  # the reading connection itself
        assert (source.name, source.unit) == ("threads-running", "count")
        assert "running of" in calm.detail and "connected" in calm.detail
        with mysql_sleepers(dsn, 4) as futures:
            await reading(source, lambda s: s.value is not None and s.value >= 5, "4 sleeping statements")
        await asyncio.gather(*futures)
    finally:
        await source.close()


async def test_mysql_unreachable_holds() -> None:
    source = MysqlThreadsRunningSource("mysql://root:sw0rdfish@127.0.0.1:1/osc", timeout=1.0)
    try:
        sample = await source.sample()
    finally:
        await source.close()
    assert sample.value is None and sample.error is not None and "MySQL 2003" in sample.error, sample
    assert "sw0rdfish" not in f"{sample.error} {sample.detail}"
