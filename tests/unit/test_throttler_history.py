"""The throttler keeps a bounded recent history per signal for the status page's chart."""

from __future__ import annotations

import asyncio

from orchestrator.domain.throttle import Sample, Threshold
from orchestrator.engine import throttler as module
from orchestrator.engine.throttler import HISTORY_SECONDS, HISTORY_SNAPSHOT_POINTS, Throttler


class StepClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def now(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.t += seconds


class Ticking:
    """Each reading moves the clock on by `step` seconds; every fifth reading has no value."""

    name = "lag"
    unit = "s"

    def __init__(self, clock: StepClock, step: float) -> None:
        self.clock = clock
        self.step = step
        self.readings = 0
        self.enough = asyncio.Event()
        self.wanted = 0

    async def sample(self) -> Sample:
        self.clock.t += self.step
        self.readings += 1
        if self.readings >= self.wanted:
            self.enough.set()
        value = None if self.readings % 5 == 0 else float(self.readings)
        return Sample(value=value, at=self.clock.t, error=None if value is not None else "down")

    async def close(self) -> None:
        return None


async def run(readings: int, step: float) -> tuple[Throttler, StepClock]:
    clock = StepClock()
    source = Ticking(clock, step)
    source.wanted = readings
    throttler = Throttler(clock, poll_seconds=0)
    throttler.add_signal("app", source, Threshold(hold_at=5))
    await throttler.start()
    await asyncio.wait_for(source.enough.wait(), 10)
    await throttler.stop()
    return throttler, clock


async def test_history_keeps_only_the_last_minutes_with_gaps_as_none() -> None:
    throttler, _clock = await run(readings=400, step=1.0)
    history = throttler.history("app", "lag")
    ages = [ago for ago, _value in history]
    assert max(ages) <= HISTORY_SECONDS and ages == sorted(ages, reverse=True)
    assert ages[-1] == 0.0  # the newest reading is always there
    assert None in [value for _ago, value in history]
    snapshot = throttler.snapshot("app")
    assert snapshot["history"] == {"lag": history}


async def test_history_is_capped_in_length_and_thinned_in_a_snapshot() -> None:
    throttler, _clock = await run(readings=module.HISTORY_MAX_POINTS + 200, step=0.001)
    kept = throttler._targets["app"].history["lag"]  # the bound itself is what is tested
    assert len(kept) == module.HISTORY_MAX_POINTS
    history = throttler.history("app", "lag")
    assert len(history) <= HISTORY_SNAPSHOT_POINTS
    assert history[-1][0] == 0.0


def test_an_unknown_target_has_an_empty_history() -> None:
    throttler = Throttler(StepClock())
    assert throttler.history("nope", "lag") == []
    assert throttler.snapshot("nope")["history"] == {}
