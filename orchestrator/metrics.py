"""Prometheus metrics, and the small API the engine and service call to feed them.

The functions are the contract: callers never touch a metric object, so names and labels can change
here alone. Labels stay low-cardinality (target, stage, state); a migration id is never a label.
Everything goes to prometheus-client's default registry, which `/metrics` renders.
"""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest

from orchestrator.domain.states import RunStatus

CONTENT_TYPE = CONTENT_TYPE_LATEST

MIGRATIONS = Gauge("osctl_migrations", "Migrations in the state store, by state.", ["state"])
STAGE_SECONDS = Histogram(
    "osctl_stage_duration_seconds",
    "Wall time of a stage run on this replica, by stage and outcome.",
    ["stage", "outcome"],
    buckets=(0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 24 * 3600),
)
ROWS_COPIED = Counter("osctl_backfill_rows_total", "Rows processed by backfill chunks.", ["target"])
CHUNK_SECONDS = Histogram(
    "osctl_backfill_chunk_seconds",
    "Duration of one backfill chunk (one short transaction on the target).",
    ["target"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
THROTTLED = Gauge("osctl_throttled", "1 while work on the target is held by the throttler.", ["target"])
THROTTLE_REASON = Gauge(
    "osctl_throttle_reason",
    "1 for the signal holding the target now (e.g. replica-lag), 0 once it clears.",
    ["target", "signal"],
)
REPLICA_LAG = Gauge(
    "osctl_replica_lag_seconds", "Replica lag last seen by the throttler.", ["target", "replica"]
)
API_SECONDS = Histogram(
    "osctl_api_request_seconds",
    "HTTP API latency by method, route template and status class.",
    ["method", "route", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10, 60, 300),
)
LEADER = Gauge("osctl_leader", "1 while this replica is the leader (runs migrations).")
LEADER_EPOCH = Gauge("osctl_leader_epoch", "Fencing epoch this replica last led with.")
FENCED_WRITES = Counter(
    "osctl_fenced_writes_total", "State writes refused because this replica's leader epoch was stale."
)
COPY_QUEUE = Gauge("osctl_copy_queue_length", "Migrations waiting for a copy slot, by target.", ["target"])
WEBHOOKS = Counter("osctl_webhook_deliveries_total", "Outgoing webhook deliveries by outcome.", ["outcome"])

_throttle_signals: dict[str, str] = {}


# -- for the engine (backfill, throttler) ----------------------------------------------------------


def chunk_done(target: str, rows: int, seconds: float) -> None:
    """One backfill chunk committed: `rows` scanned in `seconds`."""
    ROWS_COPIED.labels(target).inc(rows)
    CHUNK_SECONDS.labels(target).observe(seconds)


def throttle_changed(target: str, reason: str | None) -> None:
    """The throttler's decision for a target changed; `reason` like 'replica-lag 12.4s >= 5s' or None."""
    THROTTLED.labels(target).set(0 if reason is None else 1)
    previous = _throttle_signals.pop(target, None)
    if previous is not None:
        THROTTLE_REASON.labels(target, previous).set(0)
    if reason is not None:
        # The signal's name (the reason's first word) is the label; the figures would explode cardinality.
        signal = reason.split()[0] if reason.split() else "unknown"
        _throttle_signals[target] = signal
        THROTTLE_REASON.labels(target, signal).set(1)


def replica_lag_seen(target: str, replica: str, seconds: float) -> None:
    REPLICA_LAG.labels(target, replica).set(seconds)


# -- for the service and the API -------------------------------------------------------------------


def stage_finished(stage: str, outcome: str, seconds: float) -> None:
    STAGE_SECONDS.labels(stage, outcome).observe(seconds)


def migrations_by_state(counts: Mapping[RunStatus, int]) -> None:
    for status in RunStatus:
        MIGRATIONS.labels(status.value).set(counts.get(status, 0))


def leadership(leading: bool, epoch: int | None = None) -> None:
    LEADER.set(1 if leading else 0)
    if epoch is not None:
        LEADER_EPOCH.set(epoch)


def fenced_write() -> None:
    FENCED_WRITES.inc()


def copy_queue(target: str, length: int) -> None:
    COPY_QUEUE.labels(target).set(length)


def webhook_delivery(outcome: str) -> None:
    WEBHOOKS.labels(outcome).inc()


def api_request(method: str, route: str, status: int, seconds: float) -> None:
    API_SECONDS.labels(method, route, f"{status // 100}xx").observe(seconds)


def render() -> bytes:
    return generate_latest()
