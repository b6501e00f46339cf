"""StageRunner and BackfillRunner against in-memory fakes of the ports: retries, resume, stop points."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import pytest

from orchestrator.domain.errors import LockTimeoutExhaustedError, StageInterruptedError, StepFailedError
from orchestrator.domain.plan import Stage, Step, StepAction
from orchestrator.domain.run import BackfillTuning, EventType, Run
from orchestrator.engine.control import StopSignal
from orchestrator.engine.events import EventSink, new_event
from orchestrator.engine.rollback import rollback_steps
from orchestrator.engine.runner import RetryPolicy, StageRunner
from orchestrator.ports import BackfillCheckpoint, Throttle
from tests.unit.fakes import (
    FakeClock,
    InMemoryStateStore,
    RecordingNotifier,
    ScriptedTarget,
    make_run,
    make_spec,
)

ADD_A = {"add_column": {"table": "users", "column": {"name": "a", "type": "text"}}}
ADD_B = {"add_column": {"table": "users", "column": {"name": "b", "type": "text"}}}
A_ID = "expand.00.add_column.a"
B_ID = "expand.01.add_column.b"
NO_WAIT = RetryPolicy(base_seconds=0, max_seconds=0)
# Guard for "returns promptly instead of waiting out a long pause"; far above what the code needs.
PROMPT = 5.0


@dataclass
class Harness:
    run: Run
    store: InMemoryStateStore
    target: ScriptedTarget
    notifier: RecordingNotifier = field(default_factory=RecordingNotifier)
    clock: FakeClock = field(default_factory=FakeClock)
    stop: StopSignal = field(default_factory=StopSignal)
    changed: list[str] = field(default_factory=list)
    retry: RetryPolicy = NO_WAIT
    tuning: BackfillTuning = field(default_factory=BackfillTuning)
    throttle: Throttle | None = None

    def runner(self) -> StageRunner:
        events = EventSink(self.store, self.notifier, self.changed.append)
        return StageRunner(
            self.store,
            self.target,
            events,
            self.clock,
            self.stop,
            self.retry,
            tuning=lambda: self.tuning,
            throttle=self.throttle,
        )

    def steps(self, stage: Stage) -> list[Step]:
        return list(self.run.plan.stage(stage).steps)

    async def run_stage(self, stage: Stage, steps: list[Step] | None = None) -> None:
        await self.runner().run_steps(self.run, stage, self.steps(stage) if steps is None else steps)

    async def state(self, step_id: str) -> str | None:
        checkpoint = (await self.store.step_checkpoints(self.run.id)).get(step_id)
        return checkpoint.state if checkpoint else None

    def event_types(self) -> list[tuple[EventType, str | None]]:
        return [
            (event.type, event.step_id) for event in self.store.events if event.type is not EventType.CREATED
        ]


async def harness(
    *operations: dict[str, Any], target: ScriptedTarget | None = None, **settings: int
) -> Harness:
    store = InMemoryStateStore()
    run = make_run(make_spec(*operations, **settings))
    await store.create_run(run, new_event(run.id, EventType.CREATED, "created"))
    return Harness(run=run, store=store, target=target or ScriptedTarget())


# --- DDL steps ---------------------------------------------------------------------------------


def test_retry_policy_backs_off_exponentially_up_to_a_cap() -> None:
    policy = RetryPolicy(base_seconds=0.25, max_seconds=1.0, jitter=0)
    assert [policy.delay(n) for n in (1, 2, 3, 4, 10)] == [0.25, 0.5, 1.0, 1.0, 1.0]
    assert NO_WAIT.delay(7) == 0.0


async def test_steps_run_in_order_and_are_checkpointed() -> None:
    h = await harness(ADD_A, ADD_B)
    await h.run_stage(Stage.EXPAND)
    assert h.target.applied == [A_ID, B_ID]
    assert await h.state(A_ID) == "done"
    assert await h.state(B_ID) == "done"
    assert h.store.step_marks == [(A_ID, "started"), (A_ID, "done"), (B_ID, "started"), (B_ID, "done")]
    assert h.event_types() == [
        (EventType.STEP_STARTED, A_ID),
        (EventType.STEP_FINISHED, A_ID),
        (EventType.STEP_STARTED, B_ID),
        (EventType.STEP_FINISHED, B_ID),
    ]
    progress = (await h.store.get_run(h.run.id)).progress
    assert (progress.steps_done, progress.steps_total) == (2, 2)
    # Every stored event went to the notifier, in order, and woke the long-polls.
    assert [event for _, event in h.notifier.sent] == h.store.events[1:]
    assert h.changed == [h.run.id] * 4


async def test_lock_timeouts_are_retried_and_the_step_succeeds() -> None:
    h = await harness(ADD_A, ADD_B, target=ScriptedTarget(lock_timeouts={A_ID: 2}), ddl_attempts=5)
    await h.run_stage(Stage.EXPAND)
    assert h.target.attempts == [(A_ID, 1000), (A_ID, 1000), (A_ID, 1000), (B_ID, 1000)]
    assert h.target.applied == [A_ID, B_ID]
    assert await h.state(A_ID) == "done"
    retries = h.store.events_of(EventType.STEP_RETRY)
    assert [(e.step_id, e.stage, e.data["attempt"]) for e in retries] == [
        (A_ID, Stage.EXPAND, 1),
        (A_ID, Stage.EXPAND, 2),
    ]
    assert "attempt 1/5" in retries[0].message
    assert h.event_types() == [
        (EventType.STEP_STARTED, A_ID),
        (EventType.STEP_RETRY, A_ID),
        (EventType.STEP_RETRY, A_ID),
        (EventType.STEP_FINISHED, A_ID),
        (EventType.STEP_STARTED, B_ID),
        (EventType.STEP_FINISHED, B_ID),
    ]
    # One 'started' per step, however many lock attempts it took.
    assert (await h.store.step_checkpoints(h.run.id))[A_ID].attempts == 1


async def test_attempts_exhausted_raise_and_leave_the_step_started() -> None:
    h = await harness(ADD_A, ADD_B, target=ScriptedTarget(lock_timeouts={A_ID: 100}), ddl_attempts=3)
    with pytest.raises(LockTimeoutExhaustedError) as caught:
        await h.run_stage(Stage.EXPAND)
    assert (caught.value.step_id, caught.value.attempts) == (A_ID, 3)
    assert caught.value.retryable is True
    assert h.target.attempts == [(A_ID, 1000)] * 3
    assert h.target.applied == []
    assert await h.state(A_ID) == "started"
    assert await h.state(B_ID) is None
    # Two retries announced; the third timeout is the failure, not a retry.
    assert len(h.store.events_of(EventType.STEP_RETRY)) == 2
    assert h.store.events_of(EventType.STEP_FINISHED) == []


async def test_no_retry_is_announced_after_the_last_attempt() -> None:
    h = await harness(ADD_A, target=ScriptedTarget(lock_timeouts={A_ID: 100}), ddl_attempts=3)
    with pytest.raises(LockTimeoutExhaustedError):
        await h.run_stage(Stage.EXPAND)
    for event in h.store.events_of(EventType.STEP_RETRY):
        if event.data["attempt"] == 3:
            assert "retrying" not in event.message


async def test_lock_timeout_comes_from_the_spec_settings() -> None:
    h = await harness(ADD_A, target=ScriptedTarget(lock_timeouts={A_ID: 1}), lock_timeout_ms=250)
    await h.run_stage(Stage.EXPAND)
    assert h.target.attempts == [(A_ID, 250), (A_ID, 250)]
    assert "within 250 ms" in h.store.events_of(EventType.STEP_RETRY)[0].message


async def test_steps_checkpointed_done_are_skipped_on_resume() -> None:
    h = await harness(ADD_A, ADD_B)
    await h.store.mark_step(h.run.id, A_ID, "started")
    await h.store.mark_step(h.run.id, A_ID, "done")
    await h.run_stage(Stage.EXPAND)
    assert h.target.attempts == [(B_ID, 1000)]
    assert [step_id for _, step_id in h.event_types()] == [B_ID, B_ID]
    progress = (await h.store.get_run(h.run.id)).progress
    assert (progress.steps_done, progress.steps_total) == (2, 2)


async def test_a_step_only_started_is_replayed_on_resume() -> None:
    h = await harness(ADD_A, ADD_B)
    await h.store.mark_step(h.run.id, A_ID, "started")
    await h.run_stage(Stage.EXPAND)
    assert h.target.applied == [A_ID, B_ID]
    assert (await h.store.step_checkpoints(h.run.id))[A_ID].attempts == 2


async def test_a_fully_checkpointed_stage_does_nothing() -> None:
    h = await harness(ADD_A, ADD_B)
    await h.run_stage(Stage.EXPAND)
    attempts = list(h.target.attempts)
    h.stop.request("shutdown")  # nothing left to do, so no stop point is reached
    await h.run_stage(Stage.EXPAND)
    assert h.target.attempts == attempts


async def test_stop_before_a_step_interrupts_without_touching_it() -> None:
    h = await harness(ADD_A, ADD_B)
    h.stop.request("pause")
    with pytest.raises(StageInterruptedError, match="pause"):
        await h.run_stage(Stage.EXPAND)
    assert h.target.attempts == []
    assert h.store.step_marks == []


async def test_stop_takes_effect_between_steps() -> None:
    h = await harness(ADD_A, ADD_B)
    h.target.on_execute = lambda step, attempt: h.stop.request("rollback requested")
    with pytest.raises(StageInterruptedError, match="rollback requested"):
        await h.run_stage(Stage.EXPAND)
    assert h.target.applied == [A_ID]  # the step in flight finishes and is checkpointed
    assert await h.state(A_ID) == "done"
    assert await h.state(B_ID) is None


async def test_stop_during_lock_backoff_interrupts_the_step() -> None:
    h = await harness(ADD_A, target=ScriptedTarget(lock_timeouts={A_ID: 100}), ddl_attempts=10)
    h.retry = RetryPolicy(base_seconds=600, max_seconds=600)  # would hang if the stop were not seen
    h.target.on_execute = lambda step, attempt: h.stop.request("pause")
    async with asyncio.timeout(PROMPT):
        with pytest.raises(StageInterruptedError):
            await h.run_stage(Stage.EXPAND)
    assert len(h.target.attempts) == 1
    assert await h.state(A_ID) == "started"


async def test_stop_signal_wait_zero_still_sees_a_requested_stop() -> None:
    stop = StopSignal()
    stop.request("pause")
    with pytest.raises(StageInterruptedError):
        await stop.wait(0)


async def test_stop_signal_wait_returns_when_nothing_is_requested() -> None:
    stop = StopSignal()
    await stop.wait(0)
    stop.check()
    assert not stop.requested
    stop.request("first")
    stop.request("second")
    assert stop.reason == "first"


async def test_noop_steps_are_checkpointed_without_touching_the_database() -> None:
    h = await harness(ADD_A)
    noop = Step(
        id="expand.00.noop.x",
        stage=Stage.EXPAND,
        operation_index=0,
        action=StepAction.NOOP,
        description="nothing",
        table="users",
    )
    await h.run_stage(Stage.EXPAND, [noop])
    assert h.target.attempts == []
    assert await h.state(noop.id) == "done"


async def test_rollback_stage_checkpoints_as_rolled_back_and_resumes() -> None:
    h = await harness(ADD_A, ADD_B)
    await h.run_stage(Stage.EXPAND)
    inverses = rollback_steps(h.run.plan, await h.store.step_checkpoints(h.run.id))
    assert [step.id for step in inverses] == [f"rollback.{B_ID}", f"rollback.{A_ID}"]

    h.target.on_execute = lambda step, attempt: h.stop.request("shutdown")
    with pytest.raises(StageInterruptedError):
        await h.run_stage(Stage.ROLLBACK, inverses)
    assert await h.state(f"rollback.{B_ID}") == "rolled_back"
    assert await h.state(f"rollback.{A_ID}") is None

    h.stop = StopSignal()
    h.target.on_execute = None
    await h.run_stage(Stage.ROLLBACK, inverses)
    assert h.target.applied == [A_ID, B_ID, f"rollback.{B_ID}", f"rollback.{A_ID}"]
    assert await h.state(f"rollback.{A_ID}") == "rolled_back"
    assert await h.state(A_ID) == "done"  # forward checkpoints are left as they were


# --- backfill ----------------------------------------------------------------------------------

BACKFILL_A = {
    "backfill": {
        "table": "users",
        "column": "a",
        "expression": "lower(email)",
        "batch_size": 3,
        "adaptive": False,
    }
}
BF_ID = "backfill.01.backfill.a"
KEYS = list(range(1, 11))


async def backfill_harness(keys: list[int] = KEYS, **settings: int) -> Harness:
    h = await harness(ADD_A, BACKFILL_A, target=ScriptedTarget(keys=list(keys)), **settings)
    assert [step.id for step in h.steps(Stage.BACKFILL)] == [BF_ID]
    return h


async def test_backfill_walks_every_key_once_in_chunks() -> None:
    h = await backfill_harness()
    await h.run_stage(Stage.BACKFILL)
    assert [call.after for call in h.target.chunk_calls] == [None, [3], [6], [9], [10]]
    assert {call.limit for call in h.target.chunk_calls} == {3}
    assert h.target.scanned == KEYS
    assert h.target.attempts == []  # a backfill never goes through execute_step
    assert [(c.high_water, c.rows_done, c.done) for c in h.store.backfill_saves] == [
        ([3], 3, False),
        ([6], 6, False),
        ([9], 9, False),
        ([10], 10, False),
        ([10], 10, True),
    ]
    assert await h.state(BF_ID) == "done"
    progress = (await h.store.get_run(h.run.id)).progress
    assert (progress.steps_done, progress.steps_total) == (1, 1)
    assert progress.backfill is not None
    assert (
        progress.backfill.step_id,
        progress.backfill.rows_done,
        progress.backfill.rows_total_estimate,
    ) == (
        BF_ID,
        10,
        10,
    )


async def test_backfill_of_an_empty_table() -> None:
    h = await backfill_harness(keys=[])
    await h.run_stage(Stage.BACKFILL)
    assert [call.after for call in h.target.chunk_calls] == [None]
    assert [(c.high_water, c.rows_done, c.done) for c in h.store.backfill_saves] == [(None, 0, True)]


async def test_backfill_resumes_from_the_saved_high_water_mark() -> None:
    h = await backfill_harness()
    await h.store.save_backfill_checkpoint(h.run.id, BackfillCheckpoint(BF_ID, [6], 6, done=False))
    await h.run_stage(Stage.BACKFILL)
    assert h.target.chunk_calls[0].after == [6]
    assert h.target.scanned == [7, 8, 9, 10]
    assert min(h.target.scanned) > 6  # never re-scans keys at or below the mark
    final = await h.store.get_backfill_checkpoint(h.run.id, BF_ID)
    assert final == BackfillCheckpoint(BF_ID, [10], 10, done=True)
    progress = (await h.store.get_run(h.run.id)).progress
    assert progress.backfill is not None
    assert progress.backfill.rows_done == 10


async def test_a_finished_backfill_is_not_rescanned() -> None:
    h = await backfill_harness()
    await h.store.save_backfill_checkpoint(h.run.id, BackfillCheckpoint(BF_ID, [10], 10, done=True))
    await h.run_stage(Stage.BACKFILL)
    assert h.target.chunk_calls == []
    assert await h.state(BF_ID) == "done"


async def test_stop_mid_backfill_interrupts_at_the_next_chunk_with_the_checkpoint_saved() -> None:
    h = await backfill_harness()

    def after_chunk(number: int) -> None:
        if number == 2:
            h.stop.request("pause requested by on-call")

    h.target.on_chunk = after_chunk
    with pytest.raises(StageInterruptedError, match="pause requested by on-call"):
        await h.run_stage(Stage.BACKFILL)
    assert len(h.target.chunk_calls) == 2  # the chunk in flight finished; no third chunk started
    assert h.target.scanned == [1, 2, 3, 4, 5, 6]
    assert await h.store.get_backfill_checkpoint(h.run.id, BF_ID) == BackfillCheckpoint(
        BF_ID, [6], 6, done=False
    )
    assert await h.state(BF_ID) == "started"

    # Resume with a fresh signal (as after a restart): picks up after key 6, each key scanned once overall.
    h.stop = StopSignal()
    h.target.on_chunk = None
    await h.run_stage(Stage.BACKFILL)
    assert h.target.chunk_calls[2].after == [6]
    assert h.target.scanned == KEYS
    assert await h.store.get_backfill_checkpoint(h.run.id, BF_ID) == BackfillCheckpoint(
        BF_ID, [10], 10, done=True
    )
    assert await h.state(BF_ID) == "done"


async def test_stop_cuts_the_pause_between_chunks_short() -> None:
    operations = (ADD_A, {"backfill": {**BACKFILL_A["backfill"], "pause_ms": 60_000}})
    h = await harness(*operations, target=ScriptedTarget(keys=list(KEYS)))
    h.target.on_chunk = lambda number: h.stop.request("pause")
    async with asyncio.timeout(PROMPT):
        with pytest.raises(StageInterruptedError):
            await h.run_stage(Stage.BACKFILL)
    assert len(h.target.chunk_calls) == 1
    checkpoint = await h.store.get_backfill_checkpoint(h.run.id, "backfill.01.backfill.a")
    assert checkpoint == BackfillCheckpoint("backfill.01.backfill.a", [3], 3, done=False)


async def test_backfill_progress_events_follow_the_clock() -> None:
    h = await backfill_harness()

    def after_chunk(number: int) -> None:
        h.clock.advance(6.0)  # each chunk takes 6 s of fake time

    h.target.on_chunk = after_chunk
    await h.run_stage(Stage.BACKFILL)
    progress_events = h.store.events_of(EventType.BACKFILL_PROGRESS)
    assert [e.data["rows_done"] for e in progress_events] == [3, 6, 9, 10]
    first = progress_events[0]
    assert first.step_id == BF_ID and first.stage is Stage.BACKFILL
    assert first.data["rows_per_second"] == 0.5
    assert first.data["eta_seconds"] == 14.0  # 7 rows left at 0.5 rows/s
    assert first.message == "3 of ~10 rows"


async def test_no_progress_chatter_while_the_clock_stands_still() -> None:
    h = await backfill_harness()
    await h.run_stage(Stage.BACKFILL)
    assert h.store.events_of(EventType.BACKFILL_PROGRESS) == []


# --- adaptive size, run-time tuning, throttle, verification -----------------------------------


async def test_a_fixed_batch_size_set_at_run_time_applies_from_the_next_chunk() -> None:
    h = await backfill_harness()

    def after_chunk(number: int) -> None:
        if number == 1:
            h.tuning = BackfillTuning(batch_size=5)

    h.target.on_chunk = after_chunk
    await h.run_stage(Stage.BACKFILL)
    assert [call.limit for call in h.target.chunk_calls][:3] == [3, 5, 5]
    assert h.target.scanned == KEYS


async def test_adaptive_chunks_follow_the_measured_rate() -> None:
    keys = list(range(1, 2001))
    h = await harness(
        ADD_A,
        {"backfill": {**BACKFILL_A["backfill"], "adaptive": True, "batch_size": 100, "chunk_target_ms": 200}},
        target=ScriptedTarget(keys=keys),
    )
    # 1,000 rows/s of fake time: the 200 ms target wants chunks of 200 rows.
    h.target.on_chunk = lambda number: h.clock.advance(h.target.chunk_calls[-1].limit / 1000)
    await h.run_stage(Stage.BACKFILL)
    limits = [call.limit for call in h.target.chunk_calls]
    assert limits[:2] == [100, 200]
    assert set(limits[1:-1]) == {200}
    assert h.target.scanned == keys


async def test_no_chunk_runs_while_the_throttle_holds_and_the_hold_is_two_events() -> None:
    h = await backfill_harness()

    class Gate:
        def __init__(self) -> None:
            self.chunks_seen_while_holding: list[int] = []
            self.asked = 0

        def reason(self, target: str) -> str | None:
            self.asked += 1
            if self.asked >= 4:  # the signal recovers after a few polls
                return None
            self.chunks_seen_while_holding.append(len(h.target.chunk_calls))
            return "replica-lag 2.4s >= 1s"

    gate = Gate()
    h.throttle = gate
    await h.run_stage(Stage.BACKFILL)
    assert gate.chunks_seen_while_holding == [0, 0, 0]
    assert h.target.scanned == KEYS
    assert [event.message for event in h.store.events_of(EventType.THROTTLED)] == ["replica-lag 2.4s >= 1s"]
    assert len(h.store.events_of(EventType.UNTHROTTLED)) == 1


async def test_verification_failure_blocks_the_stage_with_count_and_samples_and_resets_the_walk() -> None:
    h = await backfill_harness()
    h.target.corrupt = {4, 7}
    with pytest.raises(StepFailedError) as failed:
        await h.run_stage(Stage.BACKFILL)
    assert "2 of 10 rows" in str(failed.value)
    assert "[[4], [7]]" in str(failed.value)
    checkpoint = await h.store.get_backfill_checkpoint(h.run.id, BF_ID)
    assert checkpoint is not None and checkpoint.high_water is None and not checkpoint.done
    assert h.store.events_of(EventType.BACKFILL_VERIFIED) == []

    h.target.corrupt = set()
    await h.run_stage(Stage.BACKFILL)
    assert len(h.store.events_of(EventType.BACKFILL_VERIFIED)) == 1
