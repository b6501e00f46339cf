"""The application's error rate, read from a real Prometheus, throttles and then pauses a migration;
a Prometheus that stops answering holds the migration instead of letting it run blind."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from adapters.postgres.target import PostgresTarget
from adapters.postgres.workload import create_accounts
from adapters.signals.prometheus import PrometheusQuerySource
from adapters.slack import NullNotifier
from adapters.statestore.store import SqlStateStore
from orchestrator.domain.plan import Stage
from orchestrator.domain.run import EventType
from orchestrator.domain.states import RunStatus
from orchestrator.domain.throttle import Threshold, ThrottlePolicy
from orchestrator.engine.clock import SystemClock
from orchestrator.engine.policy import PolicyEnforcer
from orchestrator.engine.throttler import Throttler
from orchestrator.service import MigrationService, TargetRegistry
from tests.support.pg import connect, eventually, fresh_database, settle
from tests.support.prometheus import MetricsExporter, PrometheusServer, metrics_exporter, prometheus_server

__all__ = ["metrics_exporter", "prometheus_server"]

pytestmark = pytest.mark.integration

METRIC = "shop_requests_total"
QUERY = f'sum({METRIC}{{code="500"}}) / sum({METRIC})'
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


async def test_error_rate_throttles_then_pauses_and_a_silent_prometheus_holds(
    tmp_path: Path, metrics_exporter: MetricsExporter, prometheus_server: PrometheusServer
) -> None:
    with metrics_exporter.update():
        metrics_exporter.set(METRIC, 1000, code="200")
        metrics_exporter.set(METRIC, 0, code="500")
    async with fresh_database() as pair:
        async with connect(pair.primary) as conn:
            await create_accounts(conn, rows=30_000)
        throttler = Throttler(SystemClock())
        source = PrometheusQuerySource(prometheus_server.url, QUERY, name="error-rate", timeout=1.0)
        throttler.add_signal("app", source, Threshold(hold_at=0.1, resume_below=0.05, stale_after_s=5))
        store = SqlStateStore(f"sqlite+aiosqlite:///{tmp_path / 'state.db'}")
        service = MigrationService(
            store,
            TargetRegistry({"app": ("postgres", lambda: PostgresTarget(pair.primary))}),
            NullNotifier(),
            throttle=throttler,
        )
        service.add_companion(throttler)
        service.add_companion(
            PolicyEnforcer(service, throttler, {"app": ThrottlePolicy(pause_after_s=2)}, check_seconds=0.2)
        )
        await service.start()
        try:
            run = await service.create(SPEC)
            await service.start_stage(run.id, Stage.EXPAND)
            await settle(service, run.id, RunStatus.AWAITING_DEPLOY)
            await service.approve_deploy(run.id)
            await eventually(_reads_clear(throttler), what="Prometheus to report a healthy error rate")
            await service.start_stage(run.id, Stage.BACKFILL)
            await eventually(_rows_at_least(service, run.id, 1000), what="the backfill to be under way")

            # The application starts failing: a third of its requests now end in a 500.
            with metrics_exporter.update():
                metrics_exporter.add(METRIC, 500, code="500")
            paused = await settle(service, run.id, RunStatus.PAUSED, timeout=60)
            events = await service.list_events(run.id)
            throttled = [e.message for e in events if e.type is EventType.THROTTLED]
            assert throttled and throttled[0].startswith("error-rate 0.333 >= 0.1"), throttled
            policy = [e.message for e in events if e.type is EventType.POLICY]
            assert policy and policy[0].startswith("pause: throttled for"), policy
            assert paused.paused_from is RunStatus.BACKFILLING

            # Recovered: a human resumes, and the backfill moves again.
            with metrics_exporter.update():
                metrics_exporter.add(METRIC, 20000, code="200")
            await eventually(_reads_clear(throttler), what="the error rate to fall")
            before = await _rows(service, run.id)
            await service.resume(run.id)
            await eventually(_rows_at_least(service, run.id, before + 1000), what="progress after the resume")

            # Prometheus goes away: no reading means hold, never pass.
            prometheus_server.stop()
            await eventually(_holding(service, run.id), timeout=30, what="the backfill to hold")
            reason = (await service.get(run.id)).progress.backfill.throttled  # type: ignore[union-attr]
            assert reason is not None and reason.startswith("error-rate unknown"), reason
            held = await _rows(service, run.id)
            for _ in range(5):
                assert throttler.reason("app") is not None
                await eventually(_another_reading(throttler), timeout=5, what="another decision")
            assert await _rows(service, run.id) == held
        finally:
            await service.stop()


def _reads_clear(throttler: Throttler) -> Any:
    async def clear() -> bool:
        return throttler.reason("app") is None

    return clear


def _another_reading(throttler: Throttler) -> Any:
    before = throttler.snapshot("app")["signals"]

    async def changed() -> bool:
        return throttler.snapshot("app")["signals"] != before

    return changed


def _rows_at_least(service: MigrationService, run_id: str, rows: int) -> Any:
    async def enough() -> bool:
        return await _rows(service, run_id) >= rows

    return enough


def _holding(service: MigrationService, run_id: str) -> Any:
    async def holding() -> bool:
        backfill = (await service.get(run_id)).progress.backfill
        return backfill is not None and backfill.throttled is not None

    return holding


async def _rows(service: MigrationService, run_id: str) -> int:
    backfill = (await service.get(run_id)).progress.backfill
    return backfill.rows_done if backfill is not None else 0
