"""Spec -> Plan, with no I/O. One planner module per engine and operation kind."""

from __future__ import annotations

from collections.abc import Callable

from orchestrator.domain.direct_ddl import DirectLimits
from orchestrator.domain.errors import SpecError
from orchestrator.domain.plan import PLAN_STAGES, Plan, Stage, StagePlan, Step
from orchestrator.domain.spec import MigrationSpec
from orchestrator.engine.planner import mysql, postgres
from orchestrator.engine.planner.context import LiveTables

STAGE_PURPOSE = {
    Stage.EXPAND: "Additive, lock-safe changes that old and new application code both tolerate.",
    Stage.DEPLOY_GATE: "Wait until the pipeline reports that the application version using the new schema is out.",
    Stage.BACKFILL: "Fill new columns for existing rows in short, checkpointed chunks along the primary key.",
    Stage.CONTRACT: "Destructive cleanup the old application version depended on; runs only after the gate.",
}

EnginePlanner = Callable[[MigrationSpec, LiveTables], dict[Stage, list[Step]]]
PLANNERS: dict[str, EnginePlanner] = {"postgres": postgres.plan_steps, "mysql": mysql.plan_steps}


def plan_migration(
    spec: MigrationSpec,
    engine: str = "postgres",
    tables: LiveTables = None,
    *,
    direct_limits: DirectLimits | None = None,
) -> Plan:
    """`tables`: the live tables the spec touches, when planned against a database. `direct_limits`:
    the configured table size up to which MySQL's auto lets the server rebuild in place."""
    planner = PLANNERS.get(engine)
    if planner is None:
        raise SpecError([("engine", f"no planner for engine {engine!r}; known: {', '.join(PLANNERS)}")])
    if engine == "mysql" and direct_limits is not None:
        steps_by_stage = mysql.plan_steps(spec, tables, direct_limits=direct_limits)
    else:
        steps_by_stage = planner(spec, tables)
    stages = [
        StagePlan(stage=stage, purpose=STAGE_PURPOSE[stage], steps=steps_by_stage.get(stage, []))
        for stage in PLAN_STAGES
    ]
    return Plan(
        migration=spec.name,
        engine=engine,
        lock_timeout_ms=spec.settings.lock_timeout_ms,
        ddl_attempts=spec.settings.ddl_attempts,
        stages=stages,
    )


def render_plan_text(plan: Plan) -> str:
    """The plan as a DBA reads it in a change ticket: purpose, SQL, risk, rollback, estimate."""
    lines = [
        f"Migration {plan.migration} ({plan.engine}); lock_timeout {plan.lock_timeout_ms} ms, "
        f"up to {plan.ddl_attempts} attempts per DDL step"
    ]
    for number, staged in enumerate(plan.stages, start=1):
        lines.append("")
        lines.append(f"{number}. {staged.stage.value}: {staged.purpose}")
        if not staged.steps:
            detail = "waits for approval" if staged.stage is Stage.DEPLOY_GATE else "nothing to do"
            lines.append(f"   ({detail})")
        for step in staged.steps:
            lines.append(f"   - {step.id}: {step.description}")
            if step.sql:
                lines.append(f"       sql:      {_hang(step.sql)}")
            if step.risk:
                lines.append(f"       risk:     {step.risk}")
            if step.estimate:
                lines.append(f"       estimate: {step.estimate}")
            if step.rollback is not None:
                lines.append(f"       rollback: {_hang(step.rollback.sql or step.rollback.description)}")
            elif step.irreversible_reason:
                lines.append(f"       rollback: none - {step.irreversible_reason}")
            else:
                lines.append("       rollback: nothing to undo")
    return "\n".join(lines)


def _hang(text: str) -> str:
    """Multi-line SQL (a DO block) indented under its label, so the plan keeps its outline."""
    return text.replace("\n", "\n" + " " * 17)
