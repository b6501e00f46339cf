"""The copy queue: at most N copying per target, first come first served, visible places."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import pytest

from orchestrator.admission import ALREADY_COPYING, CopyRequest, CopySlots, plan_admission
from orchestrator.domain.errors import StageInterruptedError
from orchestrator.engine.control import StopSignal

T0 = datetime(2024, 5, 1, tzinfo=UTC)


def request(run_id: str, minute: int, *, target: str = "app", admitted: bool = False) -> CopyRequest:
    return CopyRequest(run_id, target, T0 + timedelta(minutes=minute), admitted)


def test_free_slots_go_to_the_oldest_requests_and_the_rest_get_places() -> None:
    plan = plan_admission(
        [request("c", 3), request("a", 1), request("running", 0, admitted=True), request("b", 2)],
        limit=lambda target: 2,
    )
    assert plan.admit == ("a",)
    assert plan.positions == {"b": 1, "c": 2}


def test_limits_are_per_target() -> None:
    plan = plan_admission(
        [request("a1", 1, target="a"), request("a2", 2, target="a"), request("b1", 3, target="b")],
        limit=lambda target: {"a": 1, "b": 1}[target],
    )
    assert set(plan.admit) == {"a1", "b1"}
    assert plan.positions == {"a2": 1}


def test_a_run_already_copying_before_a_failover_goes_first() -> None:
    resumed = CopyRequest("resumed", "app", ALREADY_COPYING)
    plan = plan_admission([request("early", 0), resumed], limit=lambda target: 1)
    assert plan.admit == ("resumed",)
    assert plan.positions == {"early": 1}


def test_ties_are_broken_by_id_so_every_replica_agrees() -> None:
    plan = plan_admission([request("b", 1), request("a", 1)], limit=lambda target: 1)
    assert plan.admit == ("a",)


class Places:
    """Records each waiter's places; lets a test wait until a waiter has reported a given one."""

    def __init__(self) -> None:
        self.seen: dict[str, list[int]] = {}
        self._changed = asyncio.Condition()

    def recorder(self, run_id: str) -> Callable[[int], Awaitable[None]]:
        async def record(position: int) -> None:
            async with self._changed:
                self.seen.setdefault(run_id, []).append(position)
                self._changed.notify_all()

        return record

    async def reached(self, run_id: str, places: list[int]) -> None:
        async with self._changed:
            await self._changed.wait_for(lambda: self.seen.get(run_id) == places)


async def test_slots_admit_in_order_and_report_places_as_they_change() -> None:
    slots = CopySlots(lambda target: 1)
    places = Places()
    assert await slots.acquire("a", "app", T0, StopSignal(), places.recorder("a")) is False
    b = asyncio.create_task(slots.acquire("b", "app", T0 + timedelta(1), StopSignal(), places.recorder("b")))
    c = asyncio.create_task(slots.acquire("c", "app", T0 + timedelta(2), StopSignal(), places.recorder("c")))
    await places.reached("c", [2])
    assert slots.queue_length("app") == 2 and slots.copying("app") == 1

    slots.release("a")
    assert await b is True  # it had to queue
    await places.reached("c", [2, 1])
    assert not c.done()
    slots.release("b")
    assert await c is True
    assert places.seen == {"b": [1], "c": [2, 1]}


async def test_a_stop_ends_the_wait_and_gives_the_place_up() -> None:
    slots = CopySlots(lambda target: 1)
    places = Places()
    await slots.acquire("a", "app", T0, StopSignal(), places.recorder("a"))
    stop = StopSignal()
    waiting = asyncio.create_task(slots.acquire("b", "app", T0 + timedelta(1), stop, places.recorder("b")))
    await places.reached("b", [1])
    assert slots.queue_length("app") == 1
    stop.request("paused by request")
    with pytest.raises(StageInterruptedError, match="paused"):
        await waiting
    assert slots.queue_length("app") == 0
