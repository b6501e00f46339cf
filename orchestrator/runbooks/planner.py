"""A runbook applied to one run: the exact steps each runbook step runs, in order. Pure.

The dry run and the execution are the same plan: the executor runs what this returns, nothing else.

The database work comes from the migration's own plan: the inverse step of every started step
(engine.rollback), each claimed by the runbook step that names it (a swap back by swap_shadow_back,
an archive's restore by restore_archived_column, a copy tool's cleanup by abort_copy or
drop_copy_artifacts), the rest by reverse_ddl. Within one operation the inverses keep their
newest-first order whatever the runbook's order, or the plan is refused: undoing a shadow rewrite's
preparation before its swap would drop the live table's twin. Work found only in the database (an
INVALID index of ours, a copy tool's leftovers) is added to drop_copy_artifacts.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from orchestrator.domain.copy_tools import CopyPhase
from orchestrator.domain.errors import IrreversibleError
from orchestrator.domain.identifiers import quote_ident
from orchestrator.domain.operations import DropColumn
from orchestrator.domain.plan import Stage, Step, StepAction
from orchestrator.domain.run import Run
from orchestrator.domain.shadow import ShadowPhase
from orchestrator.engine.rollback import rollback_steps
from orchestrator.ports import StepCheckpoint
from orchestrator.runbooks.model import (
    CHANGES_DATABASE,
    Applicability,
    ReverseDdl,
    Runbook,
    StepKind,
    WaitForReplicas,
)
from orchestrator.runbooks.select import RunFacts
from orchestrator.runbooks.statements import step_statements

DONE = "rolled_back"  # the checkpoint state of a finished rollback step, as the runner writes it
FOUND_PREFIX = "runbook."  # the ids of steps for work found in the database, not in the plan
ActionState = Literal["pending", "started", "done"]


class LiveFindings(BaseModel):
    """What only the database can tell, read before planning: nothing here is required."""

    model_config = ConfigDict(frozen=True)

    invalid_indexes: dict[str, str] = Field(default_factory=dict)  # INVALID index -> its table
    work_tables: list[str] = Field(default_factory=list)  # copy and shadow work tables that exist
    replica_signals: list[str] | None = None  # replica-lag signals of the target; None: unknown


class PlannedAction(BaseModel):
    model_config = ConfigDict(frozen=True)

    index: int
    kind: StepKind
    checkpoint: str
    description: str
    statements: list[str]
    # The database work the stage runner runs: what `statements` shows, kept out of API answers.
    steps: list[Step] = Field(default_factory=list, exclude=True)
    state: ActionState = "pending"


class RunbookPlan(BaseModel):
    model_config = ConfigDict(frozen=True)

    migration_id: str
    runbook: str
    digest: str
    description: str
    source: str
    facts: str  # why this runbook: the stage reached and the strategy, and how they were told
    confirmation_required: bool
    confirmation_message: str | None = None
    token: str  # binds a confirmation to this plan: a run that moved on plans (and hashes) differently
    refused: str | None = None  # why this rollback cannot run (nothing runs then)
    actions: list[PlannedAction] = Field(default_factory=list)


def builtin_runbook(engine: str) -> Runbook:
    """Used when no runbook applies: osctl's own rollback, the inverses newest first."""
    return Runbook(
        id="builtin-reverse-ddl",
        description="No runbook applies to this migration: the inverse of every started step, newest first.",
        applies_to=Applicability(
            engine="mysql" if engine == "mysql" else "postgres", stages=["expand"], strategies="any"
        ),
        steps=[ReverseDdl()],
    )


def checkpoint_id(runbook: Runbook, index: int, kind: StepKind) -> str:
    return f"runbook.{runbook.id}@{runbook.digest()}.{index:02d}.{kind.value}"


def _claim(step: Step, run: Run, kinds: set[StepKind]) -> StepKind:
    """Which runbook step undoes this inverse step (reverse_ddl when the runbook names no other)."""
    wanted = StepKind.REVERSE_DDL
    if step.shadow is not None and step.shadow.phase is ShadowPhase.SWAP_BACK:
        wanted = StepKind.SWAP_SHADOW_BACK
    elif step.shadow is not None and step.shadow.phase is ShadowPhase.DROP:
        wanted = StepKind.DROP_COPY_ARTIFACTS
    elif step.copy_work is not None and step.copy_work.phase is CopyPhase.CLEANUP:
        wanted = StepKind.ABORT_COPY if StepKind.ABORT_COPY in kinds else StepKind.DROP_COPY_ARTIFACTS
    else:
        ops = run.spec.ops()
        op = ops[step.operation_index] if step.operation_index < len(ops) else None
        if isinstance(op, DropColumn) and op.archive:
            wanted = StepKind.RESTORE_ARCHIVED_COLUMN
    return wanted if wanted in kinds else StepKind.REVERSE_DDL


def _found_artifacts(
    run: Run, claimed: Sequence[Step], touched: Sequence[Step], live: LiveFindings
) -> list[Step]:
    """Work only the database shows: INVALID indexes this migration made, copy-tool leftovers of a
    table it copied. Each a step of its own, idempotent, with a deterministic id."""
    extra: list[Step] = []
    ours = {step.index_name for step in run.plan.steps() if step.index_name}
    for name, table in sorted(live.invalid_indexes.items()):
        if name in ours or name.startswith("_osc_"):
            extra.append(
                Step(
                    id=f"{FOUND_PREFIX}invalid_index.{name}",
                    stage=Stage.ROLLBACK,
                    operation_index=0,
                    action=StepAction.DROP_INDEX_CONCURRENTLY,
                    description=f"drop INVALID index {name} (a build that did not finish)",
                    sql=f"DROP INDEX CONCURRENTLY IF EXISTS {quote_ident(name)}",
                    transactional=False,
                    table=table,
                    index_name=name,
                )
            )
    cleaned = {step.copy_work.table for step in claimed if step.copy_work is not None}
    for step in touched:
        work = step.copy_work
        if work is None or work.table in cleaned:
            continue
        cleaned.add(work.table)
        extra.append(
            Step(
                id=f"{FOUND_PREFIX}copy_leftovers.{work.table}",
                stage=Stage.ROLLBACK,
                operation_index=step.operation_index,
                action=StepAction.COPY_TABLE,
                description=f"stop any copy tool on {work.table} and drop what it left",
                table=work.table,
                lock_timeout_ms=step.lock_timeout_ms,
                copy_work=work.model_copy(update={"phase": CopyPhase.CLEANUP}),
            )
        )
    return extra


def _order_problem(actions: Sequence[tuple[StepKind, list[Step]]], inverses: Sequence[Step]) -> str | None:
    """Within one operation the inverses must run newest first, whichever runbook step runs them."""
    rank = {step.id: position for position, step in enumerate(inverses)}
    last: dict[int, tuple[int, str, StepKind]] = {}
    for kind, steps in actions:
        for step in steps:
            if step.id not in rank:
                continue
            previous = last.get(step.operation_index)
            if previous is not None and rank[step.id] < previous[0]:
                return (
                    f"{kind.value} would run '{step.description}' after {previous[2].value} ran "
                    f"'{previous[1]}', but it must come first (operation {step.operation_index}): "
                    f"put {kind.value} before {previous[2].value} in the runbook"
                )
            last[step.operation_index] = (rank[step.id], step.description, kind)
    return None


def _describe_wait(step: WaitForReplicas, target: str, signals: list[str] | None) -> list[str]:
    line = (
        f"wait until every replica of {target} lags less than {step.max_lag_seconds:g} s "
        f"(at most {step.timeout_seconds:g} s)"
    )
    if signals:
        return [f"{line}, read from {', '.join(signals)}"]
    if signals is not None:
        outcome = "go on without waiting" if step.if_unmeasured == "proceed" else "fail the step"
        return [f"{line}: no replica-lag signal is configured for {target} (OSCTL_SIGNALS), so {outcome}"]
    return [line]


DESCRIPTIONS: Mapping[StepKind, str] = {
    StepKind.PAUSE_MIGRATION: "the running stage stops at its next safe point (done before anything else)",
    StepKind.THROTTLE_COPY: "the copy tool holds in place (pt-osc's pause file, gh-ost `throttle`): the "
    "stopped stage left it held",
    StepKind.ABORT_COPY: "the copy tool stops for good; its copy, triggers and changelog are dropped",
    StepKind.DROP_COPY_ARTIFACTS: "drop what copies and failed builds left behind",
    StepKind.REVERSE_DDL: "undo every other started step, newest first",
    StepKind.SWAP_SHADOW_BACK: "swap the pre-change table back in",
    StepKind.RESTORE_ARCHIVED_COLUMN: "re-add the archived column and write its values back",
    StepKind.WAIT_FOR_REPLICAS: "let the replicas catch up",
    StepKind.REQUIRE_CONFIRMATION: "confirmed by the caller before the rollback started",
    StepKind.NOTIFY: "a line in the event log and the Slack thread",
}


def plan_runbook(
    runbook: Runbook,
    run: Run,
    checkpoints: Mapping[str, StepCheckpoint],
    facts: RunFacts,
    live: LiveFindings | None = None,
) -> RunbookPlan:
    live = live or LiveFindings()
    kinds = {StepKind(step.kind) for step in runbook.steps}
    refused: str | None = None
    try:
        inverses = rollback_steps(run.plan, checkpoints)
    except IrreversibleError as error:
        inverses, refused = [], str(error)
    touched = [step for step in run.plan.steps() if step.id in checkpoints]
    claims: dict[StepKind, list[Step]] = {}
    for step in inverses:
        claims.setdefault(_claim(step, run, kinds), []).append(step)
    if StepKind.DROP_COPY_ARTIFACTS in kinds:
        cleanups = [*claims.get(StepKind.ABORT_COPY, []), *claims.get(StepKind.DROP_COPY_ARTIFACTS, [])]
        found = _found_artifacts(run, cleanups, touched, live)
        claims.setdefault(StepKind.DROP_COPY_ARTIFACTS, []).extend(found)
    actions: list[PlannedAction] = []
    for index, rb_step in enumerate(runbook.steps):
        kind = StepKind(rb_step.kind)
        steps = claims.pop(kind, [])
        statements = [line for step in steps for line in step_statements(step, run.engine, live.work_tables)]
        description = DESCRIPTIONS[kind]
        if isinstance(rb_step, WaitForReplicas):
            statements = _describe_wait(rb_step, run.target, live.replica_signals)
        elif kind in (StepKind.NOTIFY, StepKind.REQUIRE_CONFIRMATION):
            description = getattr(rb_step, "message", description)
        elif not steps and kind in CHANGES_DATABASE:
            statements = ["(nothing to do for this migration)"]
        marker = checkpoint_id(runbook, index, kind)
        state = checkpoints.get(marker)
        actions.append(
            PlannedAction(
                index=index,
                kind=kind,
                checkpoint=marker,
                description=description,
                statements=statements,
                steps=steps,
                state="done" if state and state.state == DONE else "started" if state else "pending",
            )
        )
    assert not claims, f"steps claimed by no runbook step: {claims}"  # reverse_ddl takes the rest
    if refused is None:
        refused = _order_problem([(action.kind, action.steps) for action in actions], inverses)
    confirmation = runbook.confirmation
    return RunbookPlan(
        migration_id=run.id,
        runbook=runbook.id,
        digest=runbook.digest(),
        description=runbook.description,
        source=runbook.source,
        facts=facts.why,
        confirmation_required=confirmation is not None,
        confirmation_message=confirmation.message if confirmation else None,
        token=_token(run.id, runbook, actions),
        refused=refused,
        actions=actions,
    )


def _token(run_id: str, runbook: Runbook, actions: Sequence[PlannedAction]) -> str:
    """From the runbook and the inverse steps only: what the database shows (an INVALID index found
    by the dry run) may differ by the time the rollback is confirmed, and is cleaned up either way."""
    material = {
        "run": run_id,
        "runbook": runbook.id,
        "digest": runbook.digest(),
        "steps": [
            [action.kind.value, [step.id for step in action.steps if not step.id.startswith(FOUND_PREFIX)]]
            for action in actions
        ],
    }
    canonical = json.dumps(material, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]
