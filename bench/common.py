"""What the benches share: latency-recording writers (for async and for blocking clients) and percentiles."""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

Statement = Callable[[random.Random], Awaitable[object]]
Conn = TypeVar("Conn")


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


class Writer(Protocol):
    """What a bench needs of a writer: start it, stop it for the latencies, count its failures."""

    errors: int

    def start(self) -> None: ...

    async def stop(self) -> list[float]: ...


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


@dataclass
class ThreadedLatencyWriter(Generic[Conn]):
    """LatencyWriter for a blocking client (PyMySQL): each worker is a thread with a connection of its
    own, and each latency is measured on that thread, so the event loop's scheduling (the service runs
    on it) is not counted as database time."""

    connect: Callable[[], Conn]
    statement: Callable[[Conn, random.Random], object]
    close: Callable[[Conn], object]
    workers: int = 2
    pace: float = 0.002
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> None:
        self._stop.clear()
        self.latencies = []
        self._threads = [
            threading.Thread(target=self._loop, args=(n,), name=f"bench-writer-{n}", daemon=True)
            for n in range(self.workers)
        ]
        for thread in self._threads:
            thread.start()

    async def stop(self) -> list[float]:
        self._stop.set()
        for thread in self._threads:
            await asyncio.to_thread(thread.join)
        return self.latencies

    def _loop(self, worker: int) -> None:
        rng = random.Random(worker)
        try:
            conn = self.connect()
        except Exception:  # the bench sees it as a writer that failed everything
            with self._lock:
                self.errors += 1
            return
        try:
            while not self._stop.is_set():
                started = time.monotonic()
                failed = False
                try:
                    self.statement(conn, rng)
                except Exception:  # a bench counts failures rather than dying on them
                    failed = True
                elapsed = time.monotonic() - started
                with self._lock:
                    self.latencies.append(elapsed)
                    self.errors += int(failed)
                time.sleep(self.pace)
        finally:
            self.close(conn)
