"""PostgreSQL replica lag on the real primary and replica: heartbeat seconds and WAL bytes.

Lag is injected by pausing WAL replay on the replica (`pg_wal_replay_pause()`), always resumed in a
finally. The servers are shared (other suites may write meanwhile), so "near 0" allows a little.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import pytest

from adapters.signals.pg_replica_lag import PgHeartbeat, PgReplicaByteLagSource, PgReplicaLagSource
from tests.signals.lag import idle_readings, lag_below
from tests.support.pg import connect, eventually, require_env

pytestmark = pytest.mark.integration

NEAR_ZERO = 0.25  # seconds; a healthy local replica reads a few milliseconds
IDLE_GAP = 0.5  # seconds between two samples while nothing else writes through this test
BEAT_SPACING = 0.2  # the throttler's default poll interval


@pytest.fixture
async def table() -> AsyncIterator[str]:
    """A heartbeat table of this test's own (created by the source), dropped afterwards."""
    name = f"public.osctl_hb_{uuid.uuid4().hex[:10]}"
    yield name
    async with connect(require_env("PG_PRIMARY_DSN")) as primary:
        await primary.execute(f"DROP TABLE IF EXISTS {name}")


@pytest.fixture
def dsns() -> tuple[str, str]:
    return require_env("PG_PRIMARY_DSN"), require_env("PG_REPLICA_DSN")


async def test_heartbeat_creates_its_table_and_writes_the_primary_clock(
    dsns: tuple[str, str], table: str
) -> None:
    heartbeat = PgHeartbeat(dsns[0], table=table)
    try:
        first = await heartbeat.beat()
        second = await heartbeat.beat()
    finally:
        await heartbeat.close()
    assert second.at >= first.at and second.wal_lsn >= first.wal_lsn
    assert abs(second.at - time.time()) < 5  # the primary's now(), in epoch seconds
    async with connect(dsns[0]) as primary:
        rows = await primary.fetch(f"SELECT id, extract(epoch FROM beat)::float8 AS beat FROM {table}")
    assert [(row["id"], row["beat"]) for row in rows] == [(1, pytest.approx(second.at, abs=1e-6))]


async def test_lag_is_near_zero_and_stays_so_while_the_primary_is_idle(
    dsns: tuple[str, str], table: str
) -> None:
    source = PgReplicaLagSource(*dsns, table=table)
    try:
        first = await source.sample()  # creates the table, waits (bounded) for it on the replica
        assert first.value is not None, first
        assert (source.name, source.unit) == ("replica-lag", "s")
        assert "replica 127.0.0.1:" in first.detail
        # Where `now() - pg_last_xact_replay_timestamp()` and the newest beat's age grow by the gap,
        # the heartbeat figure must not.
        readings = await idle_readings(source, gap=IDLE_GAP, count=3, limit=NEAR_ZERO)
        print(f"\nPostgreSQL idle-primary lag readings {IDLE_GAP}s apart: {readings}")
    finally:
        await source.close()


async def test_lag_rises_while_replay_is_paused_and_recovers(dsns: tuple[str, str], table: str) -> None:
    source = PgReplicaLagSource(*dsns, table=table)
    try:
        await lag_below(source, NEAR_ZERO)
        async with connect(dsns[1]) as replica:
            await replica.execute("SELECT pg_wal_replay_pause()")
            paused_at = time.monotonic()
            try:

                async def paused() -> bool:
                    return bool(await replica.fetchval("SELECT pg_get_wal_replay_pause_state() = 'paused'"))

                await eventually(paused, timeout=10, what="WAL replay to pause")
                readings: list[float] = []

                async def lagging() -> bool:
                    sample = await source.sample()
                    assert sample.value is not None, sample
                    readings.append(sample.value)
                    return sample.value >= 1.0

                await eventually(lagging, timeout=15, what="the lag to reach 1 s while replay is paused")
                reached_after = time.monotonic() - paused_at
                paused_sample = await source.sample()
                assert "WAL replay paused" in paused_sample.detail
            finally:
                await replica.execute("SELECT pg_wal_replay_resume()")
        # It grew second for second: never down while paused, and not ahead of the wall clock (beyond
        # the lag the replica may already have had when paused, under NEAR_ZERO, and a beat spacing).
        assert readings == sorted(readings), readings
        assert readings[-1] <= reached_after + NEAR_ZERO + 0.1, (readings, reached_after)
        recovered = await lag_below(source, NEAR_ZERO)
        print(
            f"\nPostgreSQL paused: lag 1.0 s reached {reached_after:.2f} s after the pause; after resume {recovered}"
        )
    finally:
        await source.close()


async def test_under_writes_the_lag_follows_the_time_since_the_pause(
    dsns: tuple[str, str], table: str
) -> None:
    """With the primary writing between beats, the replica's replay position places the first missed
    write in time: the figure follows the time since the pause instead of trailing it by a beat spacing."""
    source = PgReplicaLagSource(*dsns, table=table)
    load = f"osctl_load_{uuid.uuid4().hex[:10]}"
    stop = asyncio.Event()

    async def write() -> None:
        async with connect(dsns[0]) as writer:
            while not stop.is_set():
                await writer.execute(
                    f"INSERT INTO {load} SELECT g, repeat('x', 200) FROM generate_series(1, 20) g"
                )
                await asyncio.sleep(0.002)

    async with connect(dsns[0]) as primary, connect(dsns[1]) as replica:
        await primary.execute(f"CREATE TABLE {load} (id int, payload text)")
        writer = asyncio.create_task(write())
        try:
            await lag_below(source, 0.05)  # in step when paused, so the time since the pause is the lag
            await replica.execute("SELECT pg_wal_replay_pause()")
            paused_at = time.monotonic()
            try:
                errors = []
                while time.monotonic() - paused_at < 1.2:
                    await asyncio.sleep(BEAT_SPACING)  # the spacing of beats is the condition under test
                    sample = await source.sample()
                    assert sample.value is not None, sample
                    errors.append(round(sample.value - (time.monotonic() - paused_at), 3))
            finally:
                await replica.execute("SELECT pg_wal_replay_resume()")
            print(f"\nPostgreSQL paused under writes: figure minus time since pause {errors}")
            # A lower bound alone would read about one spacing (0.2 s) short from the second beat on.
            assert all(-0.1 < error < 0.3 for error in errors[1:]), errors
        finally:
            stop.set()
            await writer
            await primary.execute(f"DROP TABLE IF EXISTS {load}")
            await source.close()


async def test_byte_lag_grows_while_replay_is_paused_with_writes(dsns: tuple[str, str]) -> None:
    source = PgReplicaByteLagSource(*dsns)
    name = f"osctl_bytes_{uuid.uuid4().hex[:10]}"
    async with connect(dsns[0]) as primary, connect(dsns[1]) as replica:
        await primary.execute(f"CREATE TABLE {name} (id bigint, payload text)")
        try:
            assert (source.name, source.unit) == ("replica-lag-bytes", "bytes")

            async def caught_up() -> bool:
                sample = await source.sample()
                return sample.value is not None and sample.value < 1_000_000

            await eventually(caught_up, timeout=30, what="the replica to catch up")
            await replica.execute("SELECT pg_wal_replay_pause()")
            try:
                insert = f"INSERT INTO {name} SELECT g, repeat('x', 100) FROM generate_series(1, 2000) g"
                await primary.execute(insert)
                first = await source.sample()
                await primary.execute(insert)
                second = await source.sample()
            finally:
                await replica.execute("SELECT pg_wal_replay_resume()")
            assert first.value is not None and second.value is not None, (first, second)
            assert first.value > 200_000, first  # 2,000 rows of 100+ bytes
            assert second.value > first.value + 200_000, (first, second)
            assert "WAL replay paused" in second.detail
            print(f"\nPostgreSQL byte lag while paused: {first.value:.0f} then {second.value:.0f} bytes")
            await eventually(caught_up, timeout=30, what="the replica to catch up after resume")
        finally:
            await primary.execute(f"DROP TABLE IF EXISTS {name}")
            await source.close()


async def test_a_primary_given_as_the_replica_holds(dsns: tuple[str, str], table: str) -> None:
    source = PgReplicaLagSource(dsns[0], dsns[0], table=table)
    byte_source = PgReplicaByteLagSource(dsns[0], dsns[0])
    try:
        for sample in (await source.sample(), await byte_source.sample()):
            assert sample.value is None
            assert sample.error is not None and "is not a replica" in sample.error, sample
    finally:
        await source.close()
        await byte_source.close()


async def test_an_unreachable_server_holds_without_showing_the_password(
    dsns: tuple[str, str], table: str
) -> None:
    closed = "postgresql://postgres:sw0rdfish-Secret@127.0.0.1:1/postgres"
    for source in (
        PgReplicaLagSource(closed, dsns[1], table=table, timeout=1.0),
        PgReplicaLagSource(dsns[0], closed, table=table, timeout=1.0),
        PgReplicaByteLagSource(dsns[0], closed, timeout=1.0),
    ):
        try:
            sample = await source.sample()
        finally:
            await source.close()
        assert sample.value is None and sample.error, sample
        assert "sw0rdfish" not in f"{sample.error} {sample.detail}"


async def test_a_primary_that_refuses_the_beat_holds(dsns: tuple[str, str]) -> None:
    """A heartbeat table in a schema that does not exist: the beat fails, the sample says why."""
    source = PgReplicaLagSource(*dsns, table="osctl_no_such_schema.heartbeat")
    try:
        sample = await source.sample()
    finally:
        await source.close()
    assert sample.value is None
    assert sample.error is not None and "osctl_no_such_schema" in sample.error, sample


def test_table_names_are_checked() -> None:
    with pytest.raises(ValueError, match="valid identifier"):
        PgHeartbeat("postgresql://x@127.0.0.1/db", table="public.heart beat")
    with pytest.raises(ValueError, match=r"schema\.table"):
        PgHeartbeat("postgresql://x@127.0.0.1/db", table="a.b.c")
