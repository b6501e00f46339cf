"""What the benches share: a latency-recording writer and percentiles."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

Statement = Callable[[random.Random], Awaitable[object]]


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


@dataclass
class LatencyWriter:
    """Runs `statement` in `workers` loops until stopped, recording every latency and error."""

    statement: Callable[[int, random.Random], Awaitable[object]]
    workers: int = 2
    pace: float = 0.002
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def start(self) -> None:
        self._stop.clear()
        self.latencies = []
        self._tasks = [asyncio.create_task(self._loop(n)) for n in range(self.workers)]

    async def stop(self) -> list[float]:
        self._stop.set()
        await asyncio.gather(*self._tasks)
        return self.latencies

    async def _loop(self, worker: int) -> None:
        rng = random.Random(worker)
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                await self.statement(worker, rng)
            except Exception:  # a bench counts failures rather than dying on them
                self.errors += 1
            self.latencies.append(time.monotonic() - started)
            await asyncio.sleep(self.pace)
