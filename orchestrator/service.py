"""MigrationService: the one facade the API, the CLI and (later) Slack actions call.

It owns the background task of every running stage. Each state change is written to the store
(compare-and-set on status) before it is acted on, so a restarted service finds running stages in
the store and resumes them from their checkpoints.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

import structlog
from pydantic import ValidationError

from orchestrator.domain.errors import (
    ConflictError,
    IllegalTransitionError,
    IrreversibleError,
    OrchestratorError,
    SpecError,
    StageInterruptedError,
)
from orchestrator.domain.plan import Stage
from orchestrator.domain.run import BackfillTuning, EventType, MigrationEvent, Run
from orchestrator.domain.spec import MigrationSpec, parse_spec, spec_problems
from orchestrator.domain.states import (
    RUNNING,
    STAGE_OF_RUNNING_STATUS,
    STAGE_START,
    TERMINAL,
    Action,
    RunStatus,
    next_status,
)
from orchestrator.engine.clock import SystemClock
from orchestrator.engine.control import StopSignal
from orchestrator.engine.events import EventSink, new_event
from orchestrator.engine.planner import plan_migration
from orchestrator.engine.preflight import preflight
from orchestrator.engine.rollback import rollback_steps
from orchestrator.engine.runner import RetryPolicy, StageRunner
from orchestrator.ports import Clock, Notifier, StateStore, TargetDatabase, Throttle

log = structlog.get_logger(__name__)

TargetFactory = Callable[[str], TargetDatabase]

# Statuses a long-poll stops waiting at: nothing will move the run on without a human.
SETTLED = TERMINAL | {RunStatus.FAILED}

# How long shutdown waits for running stages to reach a safe point before cancelling them.
DRAIN_SECONDS = 20.0


class TargetRegistry:
    """Configured targets by name. Only the engine name and a factory are kept; DSNs stay inside."""

    def __init__(self, targets: dict[str, tuple[str, Callable[[], TargetDatabase]]]) -> None:
        self._targets = targets

    def names(self) -> list[str]:
        return sorted(self._targets)

    def engine(self, name: str) -> str:
        return self._targets[name][0]

    def open(self, name: str) -> TargetDatabase:
        return self._targets[name][1]()

    def __contains__(self, name: object) -> bool:
        return name in self._targets


class MigrationService:
    def __init__(
        self,
        store: StateStore,
        targets: TargetRegistry,
        notifier: Notifier,
        *,
        clock: Clock | None = None,
        retry: RetryPolicy | None = None,
        run_stages: bool = True,
        throttle: Throttle | None = None,
    ) -> None:
        self._store = store
        self._throttle = throttle
        self._targets = targets
        self._notifier = notifier
        self._clock = clock or SystemClock()
        self._retry = retry
        # False for a replica that only serves the API (the leader runs migrations).
        self._run_stages = run_stages
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._stops: dict[str, StopSignal] = {}
        self._changed: dict[str, asyncio.Event] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._tuning: dict[str, BackfillTuning] = {}
        self.events = EventSink(store, notifier, self._wake)

    # -- lifecycle ----------------------------------------------------------------------------------

    async def start(self) -> None:
        await self._store.initialize()
        if not self._run_stages:
            return
        for run in await self._store.runs_in_status(sorted(RUNNING)):
            log.info("resuming_migration", migration_id=run.id, status=run.status.value)
            self._spawn(run)

    async def stop(self) -> None:
        """Ask every stage to stop at its next safe point; its status stays 'running' for the next start."""
        for signal in self._stops.values():
            signal.request("service shutting down")
        tasks = list(self._tasks.values())
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=DRAIN_SECONDS)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        await self._notifier.close()
        await self._store.close()

    # -- queries ------------------------------------------------------------------------------------

    async def get(self, run_id: str) -> Run:
        return await self._store.get_run(run_id)

    async def list_runs(self, limit: int = 100) -> list[Run]:
        return await self._store.list_runs(limit=limit)

    async def list_events(self, run_id: str, after_id: int = 0) -> list[MigrationEvent]:
        await self._store.get_run(run_id)  # 404 for an unknown id rather than an empty list
        return await self._store.list_events(run_id, after_id=after_id)

    async def wait(self, run_id: str, until: Iterable[RunStatus], timeout: float) -> tuple[Run, bool]:
        """Long-poll: return when the run reaches one of `until`, settles elsewhere, or time runs out."""
        wanted = set(until)
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            changed = self._changed.setdefault(run_id, asyncio.Event())
            changed.clear()
            run = await self._store.get_run(run_id)
            if run.status in wanted:
                return run, True
            if run.status in SETTLED:
                return run, False
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                return run, False
            # Wake on a change made here, and poll now and then for one made by another replica.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), timeout=min(remaining, 1.0))

    # -- commands -----------------------------------------------------------------------------------

    async def create(self, data: Any, *, target_override: str | None = None) -> Run:
        spec = data if isinstance(data, MigrationSpec) else parse_spec(data)
        target = target_override or spec.target
        if target is None:
            raise SpecError(
                [
                    (
                        "target",
                        f"name a configured target ({', '.join(self._targets.names()) or 'none configured'})",
                    )
                ]
            )
        if target not in self._targets:
            known = ", ".join(self._targets.names()) or "none configured"
            raise SpecError([("target", f"unknown target {target!r}; configured: {known}")])
        engine = self._targets.engine(target)
        plan = plan_migration(spec, engine)
        database = self._targets.open(target)
        try:
            await preflight(spec, database, target)
        finally:
            await database.close()
        now = datetime.now(UTC)
        run = Run(
            id=_new_id(spec.name),
            name=spec.name,
            target=target,
            engine=engine,
            status=RunStatus.PENDING,
            spec=spec,
            plan=plan,
            created_at=now,
            updated_at=now,
        )
        event = new_event(run.id, EventType.CREATED, f"migration {spec.name} planned on {target}")
        await self._store.create_run(run, event)
        log.info("migration_created", migration_id=run.id, target=target)
        await self.events.published(run, event)
        return run

    async def start_stage(self, run_id: str, stage: Stage) -> Run:
        if stage not in STAGE_START:
            run = await self._store.get_run(run_id)
            raise IllegalTransitionError(
                run.status.value,
                f"start stage {stage.value}",
                run.allowed_actions,
                "the deploy gate is approved with POST /v1/migrations/{id}/deploy-gate, not started",
            )
        async with self._lock(run_id):
            run = await self._store.get_run(run_id)
            run = await self._transition(run, STAGE_START[stage], stage=stage, error=None)
            self._spawn(run)
            return run

    async def approve_deploy(self, run_id: str) -> Run:
        async with self._lock(run_id):
            run = await self._store.get_run(run_id)
            return await self._transition(run, Action.APPROVE_DEPLOY, stage=Stage.DEPLOY_GATE)

    async def pause(self, run_id: str) -> Run:
        async with self._lock(run_id):
            run = await self._store.get_run(run_id)
            next_status(run.status, Action.PAUSE, stage=run.stage)  # refuse early, before stopping anything
            await self._interrupt(run_id, "paused by request")
            run = await self._store.get_run(run_id)
            return await self._transition(run, Action.PAUSE, paused_from=run.status)

    async def resume(self, run_id: str) -> Run:
        async with self._lock(run_id):
            run = await self._store.get_run(run_id)
            run = await self._transition(run, Action.RESUME, paused_from=None)
            self._spawn(run)
            return run

    async def tune(self, run_id: str, changes: dict[str, Any]) -> Run:
        """Change a migration's backfill pacing; a running backfill picks it up at its next chunk."""
        async with self._lock(run_id):
            run = await self._store.get_run(run_id)
            if run.status in TERMINAL:
                raise IllegalTransitionError(run.status.value, "tune", run.allowed_actions)
            try:
                tuning = BackfillTuning.model_validate({**run.tuning.model_dump(), **changes})
            except ValidationError as error:
                raise SpecError(spec_problems(error)) from error
            await self._store.set_tuning(run_id, tuning)
            self._tuning[run_id] = tuning
            await self.events.emit(
                run_id,
                EventType.TUNED,
                f"backfill tuning set to {tuning.model_dump(exclude_none=True) or 'defaults'}",
                stage=run.stage,
                data=tuning.model_dump(mode="json", exclude_none=True),
            )
            return await self._store.get_run(run_id)

    def tuning(self, run_id: str) -> BackfillTuning:
        """What a running backfill reads before each chunk."""
        return self._tuning.get(run_id) or BackfillTuning()

    async def cancel(self, run_id: str) -> Run:
        async with self._lock(run_id):
            run = await self._store.get_run(run_id)
            return await self._transition(run, Action.CANCEL)

    async def rollback(self, run_id: str) -> Run:
        async with self._lock(run_id):
            run = await self._store.get_run(run_id)
            # Refuse before touching anything when some step without an inverse has run; that reason
            # (which column is gone) helps on-call more than "not allowed when completed".
            try:
                rollback_steps(run.plan, await self._store.step_checkpoints(run_id))
            except IrreversibleError as error:
                raise IllegalTransitionError(
                    run.status.value, "rollback", run.allowed_actions, str(error)
                ) from error
            next_status(run.status, Action.ROLLBACK, stage=run.stage)
            await self._interrupt(run_id, "rollback requested")
            run = await self._store.get_run(run_id)
            run = await self._transition(
                run, Action.ROLLBACK, stage=Stage.ROLLBACK, error=None, paused_from=None
            )
            self._spawn(run)
            return run

    # -- internals ----------------------------------------------------------------------------------

    def _lock(self, run_id: str) -> asyncio.Lock:
        return self._locks.setdefault(run_id, asyncio.Lock())

    def _wake(self, run_id: str) -> None:
        event = self._changed.get(run_id)
        if event is not None:
            event.set()

    async def _transition(self, run: Run, action: Action, **changes: Any) -> Run:
        status = next_status(run.status, action, stage=run.stage, paused_from=run.paused_from)
        updated = run.model_copy(update={"status": status, "updated_at": datetime.now(UTC), **changes})
        message = f"{run.status.value} -> {status.value}"
        if updated.error:
            message += f": {updated.error}"
        event = new_event(
            run.id,
            EventType.TRANSITION,
            message,
            stage=updated.stage,
            data={"from": run.status.value, "to": status.value, "action": action.value},
        )
        await self._store.update_run(updated, expected_status=run.status, event=event)
        log.info("migration_transition", migration_id=run.id, **event.data)
        await self.events.published(updated, event)
        return updated

    async def _interrupt(self, run_id: str, reason: str) -> None:
        signal = self._stops.get(run_id)
        task = self._tasks.get(run_id)
        if signal is None or task is None or task.done():
            return
        signal.request(reason)
        await asyncio.gather(task, return_exceptions=True)

    def _spawn(self, run: Run) -> None:
        if not self._run_stages or run.status not in RUNNING:
            return
        # A task that just reported its stage's outcome may still be closing its connections: the new
        # one waits for it, so one run never has two stages executing at once.
        previous = self._tasks.get(run.id)
        self._tuning[run.id] = run.tuning
        signal = StopSignal()
        self._stops[run.id] = signal
        task = asyncio.create_task(self._drive(run.id, signal, previous), name=f"migration-{run.id}")
        self._tasks[run.id] = task

    async def _drive(self, run_id: str, signal: StopSignal, previous: asyncio.Task[None] | None) -> None:
        if previous is not None:
            await asyncio.gather(previous, return_exceptions=True)
        run = await self._store.get_run(run_id)
        if run.status not in RUNNING:
            return
        stage = (
            Stage.ROLLBACK if run.status is RunStatus.ROLLING_BACK else STAGE_OF_RUNNING_STATUS[run.status]
        )
        structlog.contextvars.bind_contextvars(migration_id=run_id, stage=stage.value)
        try:
            await self._run_stage(run, stage, signal)
            await self.events.emit(run_id, EventType.STAGE_FINISHED, f"{stage.value} finished", stage=stage)
            # No per-run lock here: pause/rollback hold it while they wait for this task to end. The
            # store's compare-and-set on status settles any race with them.
            await self._transition(await self._store.get_run(run_id), Action.STAGE_SUCCEEDED)
        except StageInterruptedError as stop:
            log.info("stage_interrupted", reason=str(stop))
        except (ConflictError, IllegalTransitionError) as error:
            # Someone else (pause, rollback, another replica) moved the run on meanwhile: theirs stands.
            log.warning("stage_outcome_superseded", error=str(error))
        except asyncio.CancelledError:
            log.warning("stage_cancelled")
            raise
        except Exception as error:  # any failure must become a visible FAILED state
            try:
                await self._fail(run_id, stage, error)
            except (ConflictError, IllegalTransitionError) as superseded:
                log.warning("stage_failure_superseded", error=str(superseded))
        finally:
            structlog.contextvars.unbind_contextvars("migration_id", "stage")

    async def _run_stage(self, run: Run, stage: Stage, signal: StopSignal) -> None:
        database = self._targets.open(run.target)
        try:
            runner = StageRunner(
                self._store,
                database,
                self.events,
                self._clock,
                signal,
                self._retry,
                tuning=lambda: self.tuning(run.id),
                throttle=self._throttle,
            )
            if stage is Stage.ROLLBACK:
                steps = rollback_steps(run.plan, await self._store.step_checkpoints(run.id))
            else:
                steps = run.plan.stage(stage).steps
            await self.events.emit(run.id, EventType.STAGE_STARTED, f"{stage.value} started", stage=stage)
            await runner.run_steps(run, stage, steps)
        finally:
            await database.close()

    async def _fail(self, run_id: str, stage: Stage, error: Exception) -> None:
        if isinstance(error, OrchestratorError):
            reason = str(error)
            log.error("stage_failed", error=reason)
        else:
            reason = f"{error.__class__.__name__}: {error}"
            log.exception("stage_failed_unexpectedly", error=reason)
        await self.events.emit(
            run_id,
            EventType.STAGE_FAILED,
            reason,
            stage=stage,
            data={"retryable": getattr(error, "retryable", False)},
        )
        current = await self._store.get_run(run_id)
        await self._transition(current, Action.STAGE_FAILED, error=reason)


def _new_id(name: str) -> str:
    return f"{name[:40]}-{uuid.uuid4().hex[:8]}"
