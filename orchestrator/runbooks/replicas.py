"""wait_for_replicas: the target's replica-lag readings, and whether they say the replicas caught up.

The readings are the throttler's (its replica-lag signals poll each replica on their own tasks), so a
runbook reads the same numbers the status page shows. The verdict is pure and fails closed: a
missing, failed or stale reading is not "caught up".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from orchestrator.engine.throttler import Throttler
from orchestrator.ports import Throttle

# A reading older than this says nothing about now (the signals poll several times a second).
STALE_AFTER_SECONDS = 10.0
SIGNAL_PREFIX = "replica-lag"


@dataclass(frozen=True)
class LagReading:
    seconds: float | None
    age_seconds: float | None
    error: str | None = None


def replica_readings(throttle: Throttle | None, target: str) -> dict[str, LagReading] | None:
    """The target's replica-lag signals in seconds; None when nothing measures its replicas."""
    if not isinstance(throttle, Throttler) or target not in throttle.targets():
        return None
    signals = throttle.snapshot(target).get("signals")
    readings: dict[str, LagReading] = {}
    if isinstance(signals, dict):
        for name, signal in signals.items():
            if not str(name).startswith(SIGNAL_PREFIX) or signal.get("unit") != "s":
                continue
            readings[str(name)] = LagReading(signal.get("value"), signal.get("age_s"), signal.get("error"))
    return readings or None


def caught_up(readings: Mapping[str, LagReading], max_lag_seconds: float) -> tuple[bool, str]:
    """Whether every replica lags less than `max_lag_seconds` now, and the reading that says why not."""
    for name, reading in sorted(readings.items()):
        if reading.seconds is None:
            return False, f"{name}: no reading ({reading.error or 'not read yet'})"
        if reading.age_seconds is None or reading.age_seconds > STALE_AFTER_SECONDS:
            return False, f"{name}: the last reading is {reading.age_seconds} s old"
        if reading.seconds >= max_lag_seconds:
            return False, f"{name} {reading.seconds:.1f}s >= {max_lag_seconds:g}s"
    lags = ", ".join(f"{name} {reading.seconds:.2f}s" for name, reading in sorted(readings.items()))
    return True, lags
