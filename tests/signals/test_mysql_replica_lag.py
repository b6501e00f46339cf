"""MariaDB replica lag on the real primary and GTID replica: heartbeat seconds and replication threads.

The replica's SQL or IO thread is stopped (`STOP SLAVE SQL_THREAD`, as root@127.0.0.1 of the DSN, which
has REPLICATION SLAVE ADMIN) and always restarted in a finally. The servers are shared with other suites,
whose writes the replica may still be applying: "near 0" is awaited with a deadline, not assumed.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import pymysql
import pytest

from adapters.mysql.dsn import MysqlDsn
from adapters.signals.mysql_replica_lag import MysqlReplicaLagSource, threads_error
from tests.signals.lag import idle_readings, lag_below
from tests.support.pg import eventually, require_env

pytestmark = pytest.mark.integration

NEAR_ZERO = 0.25
IDLE_GAP = 0.3


def connect(dsn: str) -> Any:
    return pymysql.connect(**MysqlDsn.parse(dsn).connect_args())


async def execute(dsn: str, sql: str) -> None:
    def run() -> None:
        conn = connect(dsn)
        try:
            with conn.cursor() as cursor:
                cursor.execute(sql)
        finally:
            conn.close()

    await asyncio.to_thread(run)


@pytest.fixture
def dsns() -> tuple[str, str]:
    return require_env("MYSQL_PRIMARY_DSN"), require_env("MYSQL_REPLICA_DSN")


@pytest.fixture
async def table(dsns: tuple[str, str]) -> AsyncIterator[str]:
    name = f"osctl_hb_{uuid.uuid4().hex[:10]}"
    yield name
    await execute(dsns[0], f"DROP TABLE IF EXISTS `{name}`")


@contextmanager
def thread_stopped(replica_dsn: str, thread: str) -> Iterator[None]:
    """`STOP SLAVE <thread>` on the replica, and `START SLAVE <thread>` whatever happens."""
    conn = connect(replica_dsn)
    try:
        with conn.cursor() as cursor:
            cursor.execute(f"STOP SLAVE {thread}")
        try:
            yield
        finally:
            with conn.cursor() as cursor:
                cursor.execute(f"START SLAVE {thread}")
    finally:
        conn.close()


async def test_lag_is_near_zero_on_a_healthy_replica(dsns: tuple[str, str], table: str) -> None:
    source = MysqlReplicaLagSource(*dsns, table=table)
    try:
        readings = await idle_readings(source, gap=IDLE_GAP, count=3, limit=NEAR_ZERO)
        print(f"\nMariaDB lag readings {IDLE_GAP}s apart: {readings}")
        assert (source.name, source.unit) == ("replica-lag", "s")
        sample = await source.sample()
        assert "Seconds_Behind_Master=" in sample.detail and "replica 127.0.0.1:" in sample.detail
    finally:
        await source.close()


@pytest.mark.parametrize(
    ("thread", "error"),
    [("SQL_THREAD", "replication SQL thread stopped"), ("IO_THREAD", "replication IO thread stopped")],
)
async def test_a_stopped_thread_holds_and_recovers(
    dsns: tuple[str, str], table: str, thread: str, error: str
) -> None:
    source = MysqlReplicaLagSource(*dsns, table=table)
    try:
        await lag_below(source, NEAR_ZERO)
        with thread_stopped(dsns[1], thread):
            stopped = await source.sample()
        assert stopped.value is None, stopped
        assert stopped.error == error
        assert "Seconds_Behind_Master=" in stopped.detail
        recovered = await lag_below(source, NEAR_ZERO)
        print(f"\nMariaDB after START SLAVE {thread}: {recovered}")
    finally:
        await source.close()


async def test_lag_rises_while_the_replica_cannot_apply_the_beat(dsns: tuple[str, str], table: str) -> None:
    """A read lock on the heartbeat table, taken on the replica, blocks the SQL thread's write to it:
    the threads still run, and the lag grows second for second until the lock goes. (A locking read,
    SELECT ... FOR UPDATE, is refused on a read_only replica.)"""
    source = MysqlReplicaLagSource(*dsns, table=table)
    try:
        await lag_below(source, NEAR_ZERO)
        blocker = await asyncio.to_thread(connect, dsns[1])
        try:
            with blocker.cursor() as cursor:
                await asyncio.to_thread(cursor.execute, f"LOCK TABLES `{table}` READ")
            readings: list[float] = []

            async def lagging() -> bool:
                sample = await source.sample()
                assert sample.value is not None, sample
                readings.append(sample.value)
                return sample.value >= 1.0

            await eventually(lagging, timeout=15, what="the lag to reach 1 s")
        finally:
            with blocker.cursor() as cursor:
                await asyncio.to_thread(cursor.execute, "UNLOCK TABLES")
            await asyncio.to_thread(blocker.close)
        assert readings == sorted(readings), readings
        await lag_below(source, NEAR_ZERO)
    finally:
        await source.close()


async def test_unreachable_servers_hold_without_showing_the_password(
    dsns: tuple[str, str], table: str
) -> None:
    closed = "mysql://root:sw0rdfish-Secret@127.0.0.1:1/osc"
    for primary, replica in ((closed, dsns[1]), (dsns[0], closed)):
        source = MysqlReplicaLagSource(primary, replica, table=table, timeout=1.0)
        try:
            sample = await source.sample()
        finally:
            await source.close()
        assert sample.value is None and sample.error is not None, sample
        assert "MySQL 2003" in sample.error, sample
        assert "sw0rdfish" not in f"{sample.error} {sample.detail}"


async def test_a_primary_given_as_the_replica_holds(dsns: tuple[str, str], table: str) -> None:
    source = MysqlReplicaLagSource(dsns[0], dsns[0], table=table)
    try:
        sample = await source.sample()
    finally:
        await source.close()
    assert sample.value is None
    assert sample.error == "not a replica (SHOW REPLICA STATUS is empty)"


@pytest.mark.parametrize(
    ("statuses", "error"),
    [
        ([{"Slave_IO_Running": "Yes", "Slave_SQL_Running": "Yes"}], None),
        ([{"Replica_IO_Running": "Yes", "Replica_SQL_Running": "Yes"}], None),
        ([{"Slave_IO_Running": "Yes", "Slave_SQL_Running": "No"}], "replication SQL thread stopped"),
        ([{"Slave_IO_Running": "No", "Slave_SQL_Running": "Yes"}], "replication IO thread stopped"),
        (
            [{"Slave_IO_Running": "Connecting", "Slave_SQL_Running": "Yes"}],
            "replication IO thread connecting",
        ),
        (
            [{"Slave_IO_Running": "No", "Slave_SQL_Running": "No"}],
            "replication SQL thread stopped; replication IO thread stopped",
        ),
        (
            [{"Replica_IO_Running": "Yes", "Replica_SQL_Running": "Yes"}, {"Replica_IO_Running": "Yes"}],
            "replication SQL thread stopped",
        ),
        ([], "not a replica (SHOW REPLICA STATUS is empty)"),
    ],
)
def test_threads_error(statuses: list[dict[str, Any]], error: str | None) -> None:
    assert threads_error(statuses) == error
