"""The leader's stage tasks: one per running run, stopped at safe points, never two at once for a run.

A task runs its stage with the store and event sink of the leadership term it was started in (fenced
with that term's epoch), takes one of its target's copy slots first when the stage copies rows, and
turns whatever ends the stage into the next status: finished, failed, interrupted (pause, rollback,
shutdown, lost leadership), superseded (moved on by another command) or fenced (another replica
leads now). The service decides what to start and stop; this module only runs it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import structlog

from orchestrator import metrics
from orchestrator.admission import ALREADY_COPYING, CopySlots
from orchestrator.domain.errors import (
    ConflictError,
    FencedError,
    IllegalTransitionError,
    OrchestratorError,
    StageInterruptedError,
)
from orchestrator.domain.plan import Stage
from orchestrator.domain.run import BackfillTuning, EventType, Run, Waiting, WaitKind
from orchestrator.domain.states import RUNNING, STAGE_OF_RUNNING_STATUS, Action, RunStatus
from orchestrator.engine.control import StopSignal
from orchestrator.engine.events import EventSink
from orchestrator.engine.rollback import rollback_steps
from orchestrator.engine.runner import RetryPolicy, StageRunner
from orchestrator.ports import Clock, ServiceStore, TargetDatabase, Throttle
from orchestrator.schedules import StageScheduler

log = structlog.get_logger(__name__)


@dataclass
class Term:
    """One leadership term: the epoch, the store and event sink fenced with it, and its timers."""

    epoch: int
    store: ServiceStore
    events: EventSink
    scheduler: StageScheduler
    reconciler: asyncio.Task[None] | None = None
    started: datetime = field(default_factory=lambda: datetime.now(UTC))


class Transition(Protocol):
    async def __call__(
        self, run: Run, action: Action, *, actor: str | None = None, term: Term | None = None, **changes: Any
    ) -> Run: ...


class Targets(Protocol):
    def open(self, name: str) -> TargetDatabase: ...


class RollbackRunbooks(Protocol):
    async def execute(
        self,
        run: Run,
        runner: StageRunner,
        target: TargetDatabase,
        store: ServiceStore,
        events: EventSink,
        stop: StopSignal,
    ) -> None: ...


class StageTasks:
    def __init__(
        self,
        store: ServiceStore,
        targets: Targets,
        *,
        clock: Clock,
        retry: RetryPolicy | None,
        throttle: Throttle | None,
        slots: CopySlots,
        copy_limit: Callable[[str], int],
        tuning: Callable[[str], BackfillTuning],
        set_tuning: Callable[[str, BackfillTuning], None],
        transition: Transition,
        wake: Callable[[str], None],
        runbooks: RollbackRunbooks | None = None,
    ) -> None:
        # Set when rollback runbooks are configured: a rollback runs the run's runbook instead of
        # the plain inverse steps.
        self._runbooks = runbooks
        self._store = store
        self._targets = targets
        self._clock = clock
        self._retry = retry
        self._throttle = throttle
        self._slots = slots
        self._copy_limit = copy_limit
        self._tuning = tuning
        self._set_tuning = set_tuning
        self._transition = transition
        self._wake = wake
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._signals: dict[str, StopSignal] = {}
        # The status each task drives and when it was spawned (loop time), for the reconciler.
        self._driving: dict[str, tuple[RunStatus, float]] = {}

    def stop_all(self, reason: str) -> None:
        for signal in self._signals.values():
            signal.request(reason)

    async def wait_all(self, timeout: float) -> None:
        """Wait for every task to reach a safe point; cancel those that do not within `timeout`."""
        tasks = [task for task in self._tasks.values() if not task.done()]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=timeout)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    async def reconcile(self, running: dict[str, Run], term: Term, began: float) -> None:
        """Stop tasks whose run another replica moved on; start tasks for runs it started."""
        for run_id, (status, spawned) in list(self._driving.items()):
            task = self._tasks.get(run_id)
            if task is None or task.done() or spawned > began:
                continue  # spawned after we read: our read may predate the write that made it
            current = running.get(run_id) or await self._store.get_run(run_id)
            if current.status is not status and run_id in self._signals:
                self._signals[run_id].request(f"moved on to {current.status.value} elsewhere")
        for run in running.values():
            self._set_tuning(run.id, run.tuning)  # a tuning taken by another replica
            task = self._tasks.get(run.id)
            driving = self._driving.get(run.id)
            if (
                task is None
                or task.done()
                or (driving is not None and driving[0] is not run.status and driving[1] <= began)
            ):
                self.spawn(run, term)

    async def interrupt(self, run_id: str, reason: str) -> None:
        signal = self._signals.get(run_id)
        task = self._tasks.get(run_id)
        if signal is None or task is None or task.done():
            return
        signal.request(reason)
        await asyncio.gather(task, return_exceptions=True)

    def spawn(self, run: Run, term: Term) -> None:
        if run.status not in RUNNING:
            return
        # A task that just reported its stage's outcome may still be closing its connections: the new
        # one waits for it, so one run never has two stages executing at once.
        previous = self._tasks.get(run.id)
        if previous is not None and not previous.done():
            self._signals[run.id].request(f"superseded by {run.status.value}")
        self._set_tuning(run.id, run.tuning)
        if run.status is RunStatus.BACKFILLING:
            # Take the place in the copy queue now, in spawn order (resumed runs are spawned in their
            # old queue order): the task's first awaits would otherwise decide who queues first.
            self._slots.reserve(run.id, run.target, queue_since(run))
        signal = StopSignal()
        self._signals[run.id] = signal
        self._driving[run.id] = (run.status, asyncio.get_running_loop().time())
        task = asyncio.create_task(self._drive(run.id, signal, previous, term), name=f"migration-{run.id}")
        self._tasks[run.id] = task

    async def _drive(
        self, run_id: str, signal: StopSignal, previous: asyncio.Task[None] | None, term: Term
    ) -> None:
        if previous is not None:
            await asyncio.gather(previous, return_exceptions=True)
        try:
            run = await self._store.get_run(run_id)
            if run.status not in RUNNING or signal.requested:
                return
            await self._drive_stage(run, signal, term)
        finally:
            self._slots.release(run_id)
            if self._tasks.get(run_id) is asyncio.current_task():  # not superseded: forget the run
                del self._tasks[run_id]
                self._signals.pop(run_id, None)
                self._driving.pop(run_id, None)

    async def _drive_stage(self, run: Run, signal: StopSignal, term: Term) -> None:
        run_id = run.id
        stage = (
            Stage.ROLLBACK if run.status is RunStatus.ROLLING_BACK else STAGE_OF_RUNNING_STATUS[run.status]
        )
        self._driving[run_id] = (run.status, self._driving.get(run_id, (run.status, 0.0))[1])
        structlog.contextvars.bind_contextvars(migration_id=run_id, stage=stage.value, epoch=term.epoch)
        started = self._clock.now()
        outcome = "failed"
        try:
            await self._run_stage(run, stage, signal, term)
            await term.events.emit(run_id, EventType.STAGE_FINISHED, f"{stage.value} finished", stage=stage)
            # No per-run lock here: pause/rollback hold it while they wait for this task to end. The
            # store's compare-and-set on status settles any race with them.
            await self._transition(await self._store.get_run(run_id), Action.STAGE_SUCCEEDED, term=term)
            outcome = "succeeded"
        except StageInterruptedError as stop:
            outcome = "interrupted"
            log.info("stage_interrupted", reason=str(stop))
        except FencedError as fenced:
            # Another replica leads now and resumes this run from its checkpoints; we must not act.
            outcome = "fenced"
            metrics.fenced_write()
            log.warning("fenced_write_refused", error=str(fenced))
        except (ConflictError, IllegalTransitionError) as error:
            # Someone else (pause, rollback, another replica) moved the run on meanwhile: theirs stands.
            outcome = "superseded"
            log.warning("stage_outcome_superseded", error=str(error))
        except asyncio.CancelledError:
            outcome = "cancelled"
            log.warning("stage_cancelled")
            raise
        except Exception as error:  # any failure must become a visible FAILED state
            try:
                await self._fail(run_id, stage, error, term)
            except (ConflictError, IllegalTransitionError) as superseded:
                log.warning("stage_failure_superseded", error=str(superseded))
            except FencedError as fenced:
                outcome = "fenced"
                metrics.fenced_write()
                log.warning("fenced_write_refused", error=str(fenced))
        finally:
            metrics.stage_finished(stage.value, outcome, self._clock.now() - started)
            structlog.contextvars.unbind_contextvars("migration_id", "stage", "epoch")

    async def _run_stage(self, run: Run, stage: Stage, signal: StopSignal, term: Term) -> None:
        if stage is Stage.BACKFILL:
            await self._take_copy_slot(run, signal, term)
        database = self._targets.open(run.target)
        try:
            runner = StageRunner(
                term.store,
                database,
                term.events,
                self._clock,
                signal,
                self._retry,
                tuning=lambda: self._tuning(run.id),
                throttle=self._throttle,
            )
            if stage is Stage.ROLLBACK and self._runbooks is not None:
                await term.events.emit(run.id, EventType.STAGE_STARTED, f"{stage.value} started", stage=stage)
                await self._runbooks.execute(run, runner, database, term.store, term.events, signal)
                return
            if stage is Stage.ROLLBACK:
                steps = rollback_steps(run.plan, await term.store.step_checkpoints(run.id))
            else:
                steps = run.plan.stage(stage).steps
            await term.events.emit(run.id, EventType.STAGE_STARTED, f"{stage.value} started", stage=stage)
            await runner.run_steps(run, stage, steps)
        finally:
            self._slots.release(run.id)
            metrics.copy_queue(run.target, self._slots.queue_length(run.target))
            await database.close()

    async def _take_copy_slot(self, run: Run, signal: StopSignal, term: Term) -> None:
        """Wait for one of the target's copy slots; while queued, the run shows its place."""
        limit = self._copy_limit(run.target)
        since = queue_since(run)
        first = True

        async def queued(position: int) -> None:
            nonlocal first
            reason = (
                f"{self._slots.copying(run.target)} of {limit} copy slots on target {run.target} are "
                f"taken; place {position} in the queue"
            )
            waiting = Waiting(
                kind=WaitKind.QUEUE, stage=Stage.BACKFILL, reason=reason, since=since, position=position
            )
            await term.store.set_waiting(run.id, waiting, expected_status=RunStatus.BACKFILLING)
            metrics.copy_queue(run.target, self._slots.queue_length(run.target))
            if first:
                first = False
                await term.events.emit(
                    run.id,
                    EventType.WAITING,
                    reason,
                    stage=Stage.BACKFILL,
                    data={"kind": WaitKind.QUEUE.value, "position": position},
                )
            else:
                self._wake(run.id)

        waited = await self._slots.acquire(run.id, run.target, since, signal, queued)
        metrics.copy_queue(run.target, self._slots.queue_length(run.target))
        if waited or run.waiting is not None:
            await term.store.set_waiting(run.id, None, expected_status=RunStatus.BACKFILLING)
            self._wake(run.id)

    async def _fail(self, run_id: str, stage: Stage, error: Exception, term: Term) -> None:
        if isinstance(error, OrchestratorError):
            reason = str(error)
            log.error("stage_failed", error=reason)
        else:
            reason = f"{error.__class__.__name__}: {error}"
            log.exception("stage_failed_unexpectedly", error=reason)
        await term.events.emit(
            run_id,
            EventType.STAGE_FAILED,
            reason,
            stage=stage,
            data={"retryable": getattr(error, "retryable", False)},
        )
        current = await self._store.get_run(run_id)
        await self._transition(current, Action.STAGE_FAILED, error=reason, term=term)


def queue_since(run: Run) -> datetime:
    """A run's key in its target's copy queue: when it first asked to copy."""
    if run.waiting is not None and run.waiting.kind is WaitKind.QUEUE:
        return run.waiting.since
    if run.progress.backfill is not None and run.progress.backfill.rows_done > 0:
        return ALREADY_COPYING
    return datetime.now(UTC)


def resume_order(run: Run) -> tuple[int, datetime]:
    waiting = run.waiting
    if waiting is not None and waiting.kind is WaitKind.QUEUE:
        return (1, waiting.since)
    return (0, run.created_at)
