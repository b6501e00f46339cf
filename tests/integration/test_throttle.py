"""Real replica lag throttles a running backfill: no chunk while it holds, and it goes on afterwards."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from adapters.mysql.target import MysqlTarget
from adapters.mysql.workload import create_accounts as create_mysql_accounts
from adapters.postgres.target import PostgresTarget
from adapters.postgres.workload import create_accounts
from adapters.signals.mysql_replica_lag import MysqlReplicaLagSource
from adapters.signals.pg_replica_lag import PgReplicaLagSource
from adapters.slack import NullNotifier
from adapters.statestore.store import SqlStateStore
from orchestrator.domain.plan import Stage
from orchestrator.domain.run import EventType
from orchestrator.domain.states import RunStatus
from orchestrator.domain.throttle import Threshold
from orchestrator.engine.clock import SystemClock
from orchestrator.engine.throttler import Throttler
from orchestrator.ports import SignalSource, TargetDatabase
from orchestrator.service import MigrationService, TargetRegistry
from tests.support import mysql as my
from tests.support.pg import connect, eventually, fresh_database, settle

pytestmark = pytest.mark.integration

SPEC: dict[str, Any] = {
    "name": "accounts-band",
    "target": "app",
    "operations": [
        {"add_column": {"table": "accounts", "column": {"name": "band", "type": "text"}}},
        {
            "backfill": {
                "table": "accounts",
                "column": "band",
                "expression": "CASE WHEN score >= 50 THEN 'high' ELSE 'low' END",
                "batch_size": 200,
                "adaptive": False,
                "pause_ms": 20,
            }
        },
    ],
}


@asynccontextmanager
async def throttled_service(
    tmp_path: Path, engine: str, target: Callable[[], TargetDatabase], source: SignalSource
) -> AsyncIterator[tuple[MigrationService, Throttler]]:
    throttler = Throttler(SystemClock())
    throttler.add_signal("app", source, Threshold(hold_at=0.5, resume_below=0.3))
    await throttler.start()
    store = SqlStateStore(f"sqlite+aiosqlite:///{tmp_path / 'state.db'}")
    service = MigrationService(
        store, TargetRegistry({"app": (engine, target)}), NullNotifier(), throttle=throttler
    )
    await service.start()
    try:
        yield service, throttler
    finally:
        await service.stop()
        await throttler.stop()


async def hold_and_release(
    service: MigrationService,
    throttler: Throttler,
    breach: Callable[[], Awaitable[None]],
    recover: Callable[[], Awaitable[None]],
) -> tuple[str, int, int]:
    """Start the backfill, breach, see it hold without progress, recover, see it finish."""
    run = await service.create(SPEC)
    await service.start_stage(run.id, Stage.EXPAND)
    await settle(service, run.id, RunStatus.AWAITING_DEPLOY)
    await service.approve_deploy(run.id)
    await eventually(_clear(throttler), what="the replica to be in step before the backfill")
    await service.start_stage(run.id, Stage.BACKFILL)

    async def some_rows_done() -> bool:
        backfill = (await service.get(run.id)).progress.backfill
        return backfill is not None and backfill.rows_done >= 1000

    await eventually(some_rows_done, what="the backfill to be under way")
    await breach()
    try:

        async def holding() -> bool:
            backfill = (await service.get(run.id)).progress.backfill
            return backfill is not None and backfill.throttled is not None

        await eventually(holding, timeout=30, what="the backfill to hold")
        held_at = await _rows(service, run.id)
        # Several more throttle decisions while the breach lasts: progress must not move.
        for _ in range(5):
            decided = throttler.decide("app")
            assert decided is not None and decided.hold
            await eventually(_polled(throttler), timeout=5, what="another reading")
        still = await _rows(service, run.id)
        reason = (await service.get(run.id)).progress.backfill.throttled  # type: ignore[union-attr]
    finally:
        await recover()
    await settle(service, run.id, RunStatus.AWAITING_CONTRACT, timeout=120)
    events = await service.list_events(run.id)
    assert [e.type for e in events].count(EventType.THROTTLED) >= 1
    assert [e.type for e in events].count(EventType.UNTHROTTLED) >= 1
    assert reason is not None
    return reason, held_at, still


def _clear(throttler: Throttler) -> Callable[[], Awaitable[bool]]:
    async def clear() -> bool:
        return throttler.reason("app") is None

    return clear


def _polled(throttler: Throttler) -> Callable[[], Awaitable[bool]]:
    before = throttler.snapshot("app")["signals"]

    async def changed() -> bool:
        return throttler.snapshot("app")["signals"] != before

    return changed


async def _rows(service: MigrationService, run_id: str) -> int:
    backfill = (await service.get(run_id)).progress.backfill
    assert backfill is not None
    return backfill.rows_done


async def test_paused_wal_replay_holds_a_postgres_backfill(tmp_path: Path) -> None:
    async with fresh_database() as pair:
        async with connect(pair.primary) as conn:
            await create_accounts(conn, rows=30_000)
        source = PgReplicaLagSource(pair.primary, pair.replica)
        async with throttled_service(tmp_path, "postgres", lambda: PostgresTarget(pair.primary), source) as (
            service,
            throttler,
        ):

            async def pause() -> None:
                async with connect(pair.replica) as replica:
                    await replica.execute("SELECT pg_wal_replay_pause()")

            async def resume() -> None:
                async with connect(pair.replica) as replica:
                    await replica.execute("SELECT pg_wal_replay_resume()")

            reason, held_at, still = await hold_and_release(service, throttler, pause, resume)
        assert reason.startswith("replica-lag ")
        assert still == held_at, "no chunk may run while the replica lags"
        async with connect(pair.primary) as conn:
            assert await conn.fetchval("SELECT count(*) FROM accounts WHERE band IS NULL") == 0


async def test_a_stopped_replica_sql_thread_holds_a_mysql_backfill(tmp_path: Path) -> None:
    async with my.fresh_database() as pair:
        await create_mysql_accounts(pair.primary, rows=30_000)
        source = MysqlReplicaLagSource(pair.primary, pair.replica)
        async with throttled_service(tmp_path, "mysql", lambda: MysqlTarget(pair.primary), source) as (
            service,
            throttler,
        ):

            async def stop_sql_thread() -> None:
                await my.query(pair.replica, "STOP SLAVE SQL_THREAD")

            async def start_sql_thread() -> None:
                await my.query(pair.replica, "START SLAVE SQL_THREAD")

            reason, held_at, still = await hold_and_release(
                service, throttler, stop_sql_thread, start_sql_thread
            )
        assert "SQL thread stopped" in reason
        assert still == held_at
        assert await my.scalar(pair.primary, "SELECT count(*) FROM accounts WHERE band IS NULL") == 0
