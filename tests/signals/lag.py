"""Helpers for the replica-lag tests, whose servers are shared with other suites (whose writes the
replicas may still be replaying): conditions are awaited with deadlines, never assumed."""

from __future__ import annotations

import asyncio

from orchestrator.domain.throttle import Sample
from orchestrator.ports import SignalSource
from tests.support.pg import eventually

CATCH_UP = 60.0


async def lag_below(source: SignalSource, limit: float, timeout: float = CATCH_UP) -> float:
    last: list[Sample] = []

    async def below() -> bool:
        last[:] = [await source.sample()]
        return last[0].value is not None and last[0].value < limit

    await eventually(below, timeout=timeout, what=f"lag below {limit}s (last: {last})")
    assert last[0].value is not None
    return last[0].value


async def idle_readings(
    source: SignalSource, *, gap: float, count: int, limit: float, attempts: int = 5
) -> list[float]:
    """`count` readings `gap` seconds apart, all below `limit`: the figure must not grow with the gap.

    The gap is the condition under test (the throttler polls at intervals, the primary may be idle),
    not a wait for something. Another suite's burst of writes can lag the shared replica for real
    during a series, so a spoilt series is tried again, up to `attempts` series; a figure that grew
    with the gap would spoil every one.
    """
    series: list[float] = []
    for _ in range(attempts):
        await lag_below(source, limit)
        series = []
        for _ in range(count):
            await asyncio.sleep(gap)
            sample = await source.sample()
            assert sample.value is not None, sample
            series.append(sample.value)
        if max(series) < limit:
            return series
    raise AssertionError(f"every series of readings {gap}s apart reached {limit}s; the last: {series}")
