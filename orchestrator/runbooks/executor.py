"""Runs a planned runbook: one checkpoint and one event before and after each of its steps.

A runbook step already checkpointed as done is skipped, and the database steps inside one keep their
own checkpoints (the stage runner's), so a rollback interrupted anywhere (kill -9 included) resumes
at the runbook step it was in, and inside it at the first database step not yet done. Every step is
idempotent: a step that ran but whose checkpoint was lost runs again harmlessly.
"""

from __future__ import annotations

from collections.abc import Sequence

import structlog

from orchestrator.domain.errors import IrreversibleError, StepFailedError
from orchestrator.domain.plan import Stage
from orchestrator.domain.run import EventType, MigrationEvent, Progress, Run
from orchestrator.engine.control import StopSignal
from orchestrator.engine.events import EventSink
from orchestrator.engine.runner import StageRunner
from orchestrator.ports import Clock, StateStore, TargetDatabase, Throttle
from orchestrator.runbooks.desk import RunbookDesk, read_history
from orchestrator.runbooks.model import RequireConfirmation, StepKind, WaitForReplicas
from orchestrator.runbooks.planner import DONE, PlannedAction, RunbookPlan
from orchestrator.runbooks.replicas import caught_up, replica_readings

log = structlog.get_logger(__name__)

LAG_POLL_SECONDS = 0.5


class RunbookExecutor:
    def __init__(self, desk: RunbookDesk, throttle: Throttle | None, clock: Clock) -> None:
        self._desk = desk
        self._throttle = throttle
        self._clock = clock

    async def execute(
        self,
        run: Run,
        runner: StageRunner,
        target: TargetDatabase,
        store: StateStore,
        events: EventSink,
        stop: StopSignal,
    ) -> None:
        history = await read_history(store, run.id)
        plan = self._desk.plan(run, history, await self._desk.live_findings(run, target))
        if plan.refused:
            raise IrreversibleError(f"runbook {plan.runbook}: {plan.refused}")
        confirmed_by = _confirmation(history.events, plan)
        total = len(plan.actions)
        done = sum(1 for action in plan.actions if action.state == "done")
        log.info("runbook_executing", runbook=plan.runbook, digest=plan.digest, done=done, total=total)
        for action in plan.actions:
            if action.state == "done":
                continue
            stop.check()
            data = {"phase": "step_started", **_step_data(plan, action)}
            await store.mark_step(run.id, action.checkpoint, "started")
            await events.emit(
                run.id,
                EventType.RUNBOOK,
                f"runbook {plan.runbook} step {action.index + 1}/{total}: {action.kind.value}",
                stage=Stage.ROLLBACK,
                step_id=action.checkpoint,
                data=data,
            )
            outcome = await self._perform(run, plan, action, runner, events, stop, confirmed_by)
            await store.mark_step(run.id, action.checkpoint, DONE)
            done += 1
            await store.set_progress(run.id, Progress(steps_done=done, steps_total=total))
            await events.emit(
                run.id,
                EventType.RUNBOOK,
                f"runbook {plan.runbook} step {action.index + 1}/{total} done: {outcome}",
                stage=Stage.ROLLBACK,
                step_id=action.checkpoint,
                data={"phase": "step_finished", **_step_data(plan, action), "outcome": outcome},
            )
        await events.emit(
            run.id,
            EventType.RUNBOOK,
            f"runbook {plan.runbook} finished",
            stage=Stage.ROLLBACK,
            data={"phase": "finished", "runbook": plan.runbook, "digest": plan.digest},
        )

    async def _perform(
        self,
        run: Run,
        plan: RunbookPlan,
        action: PlannedAction,
        runner: StageRunner,
        events: EventSink,
        stop: StopSignal,
        confirmed_by: str,
    ) -> str:
        """Do one runbook step; returns one line for its event."""
        if action.steps:
            await runner.run_steps(run, Stage.ROLLBACK, action.steps)
            return f"{len(action.steps)} step(s) done"
        runbook = self._desk.catalogue.get(plan.runbook) if plan.runbook != "builtin-reverse-ddl" else None
        settings = runbook.steps[action.index] if runbook is not None else None
        match action.kind:
            case StepKind.WAIT_FOR_REPLICAS:
                assert isinstance(settings, WaitForReplicas)
                return await self._wait_for_replicas(run, settings, stop)
            case StepKind.NOTIFY:
                await events.emit(run.id, EventType.NOTICE, action.description, stage=Stage.ROLLBACK)
                return "notified"
            case StepKind.REQUIRE_CONFIRMATION:
                assert isinstance(settings, RequireConfirmation)
                return f"confirmed ({confirmed_by})"
            case StepKind.PAUSE_MIGRATION:
                return "the forward stage was stopped before the rollback began"
            case StepKind.THROTTLE_COPY:
                return "the copy tool was held when its stage stopped"
        return "nothing to do for this migration"

    async def _wait_for_replicas(self, run: Run, settings: WaitForReplicas, stop: StopSignal) -> str:
        deadline = self._clock.now() + settings.timeout_seconds
        why = ""
        while True:
            readings = replica_readings(self._throttle, run.target)
            if readings is None:
                if settings.if_unmeasured == "fail":
                    raise StepFailedError(
                        "wait_for_replicas",
                        "wait for replicas",
                        f"no replica-lag signal is configured for target {run.target} (OSCTL_SIGNALS); "
                        "check the replicas by hand, then retry the rollback",
                    )
                return "no replica-lag signal configured: went on without waiting"
            ok, why = caught_up(readings, settings.max_lag_seconds)
            if ok:
                return f"replicas caught up: {why}"
            if self._clock.now() >= deadline:
                raise StepFailedError(
                    "wait_for_replicas",
                    "wait for replicas",
                    f"replicas did not catch up within {settings.timeout_seconds:g} s ({why}); retry the "
                    "rollback to wait again (it resumes at this step)",
                )
            await stop.wait(LAG_POLL_SECONDS)


def _step_data(plan: RunbookPlan, action: PlannedAction) -> dict[str, object]:
    return {
        "runbook": plan.runbook,
        "digest": plan.digest,
        "index": action.index,
        "kind": action.kind.value,
        "statements": action.statements,
    }


def _confirmation(events: Sequence[MigrationEvent], plan: RunbookPlan) -> str:
    for event in reversed(events):
        data = event.data
        if (
            event.type is EventType.RUNBOOK
            and data.get("phase") == "started"
            and data.get("runbook") == plan.runbook
        ):
            return f"{data.get('confirmed') or 'not asked'} by {data.get('actor') or 'an unnamed caller'}"
    return "not recorded"
