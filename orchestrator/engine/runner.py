"""Walks one stage's steps: stop check, skip if checkpointed, execute through the target, checkpoint."""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import structlog

from orchestrator.domain.errors import LockTimeoutExhaustedError
from orchestrator.domain.plan import Stage, Step, StepAction
from orchestrator.domain.run import BackfillTuning, EventType, Progress, Run
from orchestrator.domain.sessions import SessionInfo, describe_sessions
from orchestrator.engine.backfill import BackfillRunner
from orchestrator.engine.control import StopSignal
from orchestrator.engine.copy_controls import RunStepControls
from orchestrator.engine.events import EventSink
from orchestrator.ports import (
    Clock,
    StateStore,
    StepCheckpoint,
    SupportsStepControls,
    TargetDatabase,
    Throttle,
)

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class RetryPolicy:
    """Backoff between lock-timeout attempts: the pause is what lets queued application writes through.

    The pause doubles per attempt up to `max_seconds`, and a `jitter` fraction of it is drawn at
    random, so migrations blocked by the same session do not all queue again in the same instant.
    `draw` (uniform in [0, 1)) is injectable so tests can pin it.
    """

    base_seconds: float = 0.25
    max_seconds: float = 10.0
    jitter: float = 0.5
    draw: Callable[[], float] = field(default=random.random, compare=False, repr=False)

    def delay(self, attempt: int) -> float:
        ceiling = min(self.max_seconds, self.base_seconds * 2 ** (attempt - 1))
        return float(ceiling * (1 - self.jitter * self.draw()))


class StageRunner:
    def __init__(
        self,
        store: StateStore,
        target: TargetDatabase,
        events: EventSink,
        clock: Clock,
        stop: StopSignal,
        retry: RetryPolicy | None = None,
        *,
        tuning: Callable[[], BackfillTuning] | None = None,
        throttle: Throttle | None = None,
    ) -> None:
        self._store = store
        self._target = target
        self._events = events
        self._clock = clock
        self._stop = stop
        self._retry = retry or RetryPolicy()
        self._throttle = throttle
        self._backfill = BackfillRunner(store, target, events, clock, stop, tuning=tuning, throttle=throttle)

    async def run_steps(self, run: Run, stage: Stage, steps: list[Step]) -> None:
        """Run `steps` in order; a step already checkpointed as done is skipped (that is resume)."""
        done_state = "rolled_back" if stage is Stage.ROLLBACK else "done"
        checkpoints = await self._store.step_checkpoints(run.id)
        done = sum(1 for step in steps if _state(checkpoints, step.id) == done_state)
        await self._store.set_progress(run.id, Progress(steps_done=done, steps_total=len(steps)))
        total = len(steps)
        if isinstance(self._target, SupportsStepControls):  # copy tools: pause, throttle, progress
            self._target.attach_controls(
                RunStepControls(
                    run, stage, self._store, self._events, self._clock, self._stop, self._throttle
                )
            )
        for step in steps:
            if _state(checkpoints, step.id) == done_state:
                continue
            self._stop.check()
            structlog.contextvars.bind_contextvars(step=step.id)
            try:
                await self._store.mark_step(run.id, step.id, "started")
                await self._events.emit(
                    run.id, EventType.STEP_STARTED, step.description, stage=stage, step_id=step.id
                )
                started = self._clock.now()
                await self._execute(
                    run, step, lock_timeout_ms=step.lock_timeout_ms or run.plan.lock_timeout_ms
                )
                await self._store.mark_step(run.id, step.id, done_state)
                done += 1
                # Keep the backfill figures the step may have left in the progress.
                progress = (await self._store.get_run(run.id)).progress
                await self._store.set_progress(
                    run.id, progress.model_copy(update={"steps_done": done, "steps_total": total})
                )
                await self._events.emit(
                    run.id,
                    EventType.STEP_FINISHED,
                    step.description,
                    stage=stage,
                    step_id=step.id,
                    data={"seconds": round(self._clock.now() - started, 3)},
                )
            finally:
                structlog.contextvars.unbind_contextvars("step")

    async def _execute(self, run: Run, step: Step, *, lock_timeout_ms: int) -> None:
        if step.action is StepAction.NOOP:
            return
        if step.action is StepAction.BACKFILL:
            assert step.backfill is not None
            await self._backfill.run(run, step, step.backfill)
            return
        attempts = run.plan.ddl_attempts
        statement_timeout_ms = run.spec.settings.statement_timeout_for(lock_timeout_ms)
        # The sessions seen blocking the latest attempt that saw any: what the failure names.
        blockers: tuple[SessionInfo, ...] = ()
        for attempt in range(1, attempts + 1):
            outcome = await self._target.execute_step(
                step, lock_timeout_ms=lock_timeout_ms, statement_timeout_ms=statement_timeout_ms
            )
            if not outcome.lock_timed_out:
                return
            blockers = outcome.blockers or blockers
            if attempt == attempts:
                break
            delay = self._retry.delay(attempt)
            behind = (
                f"; waiting behind {describe_sessions(outcome.blockers, limit=2)}" if outcome.blockers else ""
            )
            await self._events.emit(
                run.id,
                EventType.STEP_RETRY,
                f"lock not granted within {lock_timeout_ms} ms (attempt {attempt}/{attempts}); "
                f"retrying in {delay:.2f} s{behind}",
                stage=step.stage,
                step_id=step.id,
                data={
                    "attempt": attempt,
                    "waited_seconds": round(outcome.seconds, 3),
                    "backoff": delay,
                    "blockers": [session.as_data() for session in outcome.blockers],
                },
            )
            await self._stop.wait(delay)
        error = LockTimeoutExhaustedError(step.id, attempts, blockers)
        await self._events.emit(
            run.id,
            EventType.STEP_FAILED,
            str(error),
            stage=step.stage,
            step_id=step.id,
            data={"attempts": attempts, "blockers": [session.as_data() for session in blockers]},
        )
        raise error


def _state(checkpoints: Mapping[str, StepCheckpoint], step_id: str) -> str | None:
    checkpoint = checkpoints.get(step_id)
    return checkpoint.state if checkpoint else None
