"""The metrics API the engine and service call, as /metrics renders it."""

from __future__ import annotations

from prometheus_client import REGISTRY

from orchestrator import metrics
from orchestrator.domain.states import RunStatus


def sample(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


def test_chunks_add_rows_and_durations() -> None:
    before = sample("osctl_backfill_rows_total", target="metrics-test") or 0.0
    metrics.chunk_done("metrics-test", rows=500, seconds=0.12)
    metrics.chunk_done("metrics-test", rows=250, seconds=0.08)
    assert sample("osctl_backfill_rows_total", target="metrics-test") == before + 750
    assert sample("osctl_backfill_chunk_seconds_count", target="metrics-test") == 2


def test_throttle_state_and_the_signal_holding_it() -> None:
    metrics.throttle_changed("metrics-test", "replica-lag 12.4s >= 5s")
    assert sample("osctl_throttled", target="metrics-test") == 1
    assert sample("osctl_throttle_reason", target="metrics-test", signal="replica-lag") == 1
    metrics.throttle_changed("metrics-test", "threads-running 80 >= 50")
    assert sample("osctl_throttle_reason", target="metrics-test", signal="replica-lag") == 0
    assert sample("osctl_throttle_reason", target="metrics-test", signal="threads-running") == 1
    metrics.throttle_changed("metrics-test", None)
    assert sample("osctl_throttled", target="metrics-test") == 0
    assert sample("osctl_throttle_reason", target="metrics-test", signal="threads-running") == 0


def test_replica_lag_and_migrations_by_state() -> None:
    metrics.replica_lag_seen("metrics-test", "replica-1", 2.5)
    assert sample("osctl_replica_lag_seconds", target="metrics-test", replica="replica-1") == 2.5
    metrics.migrations_by_state({RunStatus.BACKFILLING: 3})
    assert sample("osctl_migrations", state="backfilling") == 3
    assert sample("osctl_migrations", state="completed") == 0  # every state is there, zero or not
    text = metrics.render().decode()
    assert 'osctl_migrations{state="backfilling"} 3.0' in text
