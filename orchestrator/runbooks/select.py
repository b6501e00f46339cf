"""Which runbook applies to a run: its engine, the furthest stage it reached, its strategy. Pure.

The stage reached is read from what happened, not only from the status: a failed or paused run, or
one already rolling back, still reached the stages its steps were started in, and a deploy gate
approved is in the event log. The strategy is the one that shapes a rollback most: a shadow table
over a synced column over plain DDL on PostgreSQL; on MySQL the copy tool that actually ran (it is
chosen at run time), else the one the spec asks for.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from orchestrator.domain.plan import Stage, StepAction
from orchestrator.domain.run import EventType, MigrationEvent, Run
from orchestrator.domain.states import RunStatus
from orchestrator.ports import StepCheckpoint
from orchestrator.runbooks.loader import RunbookCatalogue
from orchestrator.runbooks.model import STAGES_REACHED, Runbook, StageReached

SYNC_COLUMN_KINDS = frozenset({"rename_column", "alter_column"})
COPY_TOOLS = ("pt_osc", "gh_ost")

_STAGE_OF_STATUS: dict[RunStatus, StageReached] = {
    RunStatus.EXPANDING: "expand",
    RunStatus.AWAITING_DEPLOY: "expand",
    RunStatus.AWAITING_BACKFILL: "deploy_gate",
    RunStatus.BACKFILLING: "backfill",
    RunStatus.AWAITING_CONTRACT: "backfill",
    RunStatus.CONTRACTING: "contract",
    RunStatus.COMPLETED: "contract",
}
_STAGE_OF_PLAN: dict[Stage, StageReached] = {
    Stage.EXPAND: "expand",
    Stage.DEPLOY_GATE: "deploy_gate",
    Stage.BACKFILL: "backfill",
    Stage.CONTRACT: "contract",
}


@dataclass(frozen=True)
class RunFacts:
    engine: str
    stage: StageReached
    strategy: str
    why: str  # how the stage and strategy were told, for the dry run


def _furthest(stages: Sequence[StageReached]) -> StageReached:
    return max(stages, key=STAGES_REACHED.index) if stages else "expand"


def stage_reached(
    run: Run, checkpoints: Mapping[str, StepCheckpoint], events: Sequence[MigrationEvent]
) -> tuple[StageReached, str]:
    seen: list[tuple[StageReached, str]] = []
    for step in run.plan.steps():
        if step.id in checkpoints and step.stage in _STAGE_OF_PLAN:
            seen.append((_STAGE_OF_PLAN[step.stage], f"step {step.id} was started"))
    status = run.paused_from if run.status is RunStatus.PAUSED and run.paused_from else run.status
    if status in _STAGE_OF_STATUS:
        seen.append((_STAGE_OF_STATUS[status], f"the migration is {status.value}"))
    if run.status is RunStatus.FAILED and run.stage in _STAGE_OF_PLAN:
        seen.append((_STAGE_OF_PLAN[run.stage], f"it failed in {run.stage.value}"))
    for event in events:
        if event.type is EventType.TRANSITION and event.data.get("action") == "approve_deploy":
            seen.append(("deploy_gate", "the deploy gate was approved"))
    if not seen:
        return "expand", "nothing has run yet"
    stage = _furthest([reached for reached, _ in seen])
    return stage, next(why for reached, why in seen if reached == stage)


def strategy_of(run: Run, events: Sequence[MigrationEvent]) -> tuple[str, str]:
    steps = run.plan.steps()
    if run.engine == "postgres":
        if any(step.shadow is not None or (step.backfill and step.backfill.shadow) for step in steps):
            return "shadow", "a shadow-table rewrite is planned"
        kinds = {op.kind for op in run.spec.ops()}
        if kinds & SYNC_COLUMN_KINDS:
            return "sync_column", f"{', '.join(sorted(kinds & SYNC_COLUMN_KINDS))} keeps columns in sync"
        return "direct", "plain DDL and backfills"
    copies = [step for step in steps if step.action is StepAction.COPY_TABLE and step.copy_work]
    if not copies:
        return "direct", "the server's own DDL"
    for event in reversed(events):
        tool = event.data.get("tool") if event.type is EventType.COPY_PROGRESS else None
        if tool in COPY_TOOLS:
            return str(tool), f"{tool} ran (event {event.id})"
    for step in copies:
        assert step.copy_work is not None
        if step.copy_work.strategy in COPY_TOOLS:
            return step.copy_work.strategy, f"the spec asks for {step.copy_work.strategy}"
    return "pt_osc", "no copy tool has run yet; both tools are cleaned up the same way"


def run_facts(
    run: Run, checkpoints: Mapping[str, StepCheckpoint], events: Sequence[MigrationEvent]
) -> RunFacts:
    stage, stage_why = stage_reached(run, checkpoints, events)
    strategy, strategy_why = strategy_of(run, events)
    return RunFacts(
        run.engine, stage, strategy, f"stage {stage}: {stage_why}; strategy {strategy}: {strategy_why}"
    )


def recorded_runbook(events: Sequence[MigrationEvent]) -> str | None:
    """The runbook a rollback of this run already started with (it must finish with the same one)."""
    for event in reversed(events):
        if event.type is EventType.RUNBOOK and event.data.get("phase") == "started":
            runbook = event.data.get("runbook")
            return str(runbook) if runbook else None
    return None


def select_runbook(
    catalogue: RunbookCatalogue, facts: RunFacts, events: Sequence[MigrationEvent]
) -> Runbook | None:
    """The runbook a rollback started with, while it is still known; else the one covering the facts."""
    recorded = recorded_runbook(events)
    if recorded is not None:
        for runbook in catalogue.runbooks:
            if runbook.id == recorded:
                return runbook
    return catalogue.covering(facts.engine, facts.stage, facts.strategy)
