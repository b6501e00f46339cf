"""At most N migrations copying rows at once per target; the others wait their turn, in order.

`plan_admission` is the pure decision; `CopySlots` is the leader's in-memory controller around it.
The queue itself is not persisted as such: each waiting run records its place (`Run.waiting`) so every
replica's API shows it, and a new leader rebuilds the queue from the runs it resumes.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from orchestrator.engine.control import StopSignal

# The queue key of a run that was already copying when a new leader resumed it: ahead of every
# run that was still waiting, as it was before the failover.
ALREADY_COPYING = datetime.min.replace(tzinfo=UTC)


@dataclass(frozen=True)
class CopyRequest:
    run_id: str
    target: str
    since: datetime  # when it asked to copy: the queue is first come, first served
    admitted: bool = False


@dataclass(frozen=True)
class AdmissionPlan:
    admit: tuple[str, ...]  # requests that may start copying now
    positions: Mapping[str, int]  # 1-based place in its target's queue of every request still waiting


def plan_admission(requests: Iterable[CopyRequest], limit: Callable[[str], int]) -> AdmissionPlan:
    by_target: dict[str, list[CopyRequest]] = {}
    for request in requests:
        by_target.setdefault(request.target, []).append(request)
    admit: list[str] = []
    positions: dict[str, int] = {}
    for target, group in sorted(by_target.items()):
        free = max(0, limit(target) - sum(1 for request in group if request.admitted))
        waiting = sorted((r for r in group if not r.admitted), key=lambda r: (r.since, r.run_id))
        admit.extend(request.run_id for request in waiting[:free])
        for position, request in enumerate(waiting[free:], start=1):
            positions[request.run_id] = position
    return AdmissionPlan(tuple(admit), positions)


class CopySlots:
    def __init__(self, limit: Callable[[str], int]) -> None:
        self._limit = limit
        self._requests: dict[str, CopyRequest] = {}
        self._positions: dict[str, int] = {}
        self._changed = asyncio.Event()

    def queue_length(self, target: str) -> int:
        return sum(1 for r in self._requests.values() if r.target == target and not r.admitted)

    def copying(self, target: str) -> int:
        return sum(1 for r in self._requests.values() if r.target == target and r.admitted)

    async def acquire(
        self,
        run_id: str,
        target: str,
        since: datetime,
        stop: StopSignal,
        on_wait: Callable[[int], Awaitable[None]],
    ) -> bool:
        """Wait for a slot; True if the run had to queue. `on_wait(position)` runs on each new place.

        A stop request (pause, rollback, shutdown, lost leadership) ends the wait with
        StageInterruptedError and gives the place up.
        """
        if run_id not in self._requests:
            self.reserve(run_id, target, since)
        queued, last = False, None
        try:
            while not self._requests[run_id].admitted:
                queued = True
                position = self._positions.get(run_id)
                if position is not None and position != last:
                    last = position
                    await on_wait(position)
                await self._wait_for_change(stop)
        except BaseException:
            self.release(run_id)
            raise
        return queued

    def reserve(self, run_id: str, target: str, since: datetime) -> None:
        """Take a place in the queue (or a slot) now; `acquire` then waits for it."""
        if run_id not in self._requests:
            self._requests[run_id] = CopyRequest(run_id, target, since)
            self._rebalance()

    def release(self, run_id: str) -> None:
        if self._requests.pop(run_id, None) is not None:
            self._rebalance()

    def _rebalance(self) -> None:
        plan = plan_admission(self._requests.values(), self._limit)
        for run_id in plan.admit:
            self._requests[run_id] = replace(self._requests[run_id], admitted=True)
        self._positions = dict(plan.positions)
        # Wake every waiter: each looks at its own admission and place.
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def _wait_for_change(self, stop: StopSignal) -> None:
        change = asyncio.ensure_future(self._changed.wait())
        halt = asyncio.ensure_future(stop.wait(3600.0))
        try:
            await asyncio.wait({change, halt}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in (change, halt):
                waiter.cancel()
                with contextlib.suppress(BaseException):
                    await waiter
        stop.check()
