"""add_check: the CHECK added NOT VALID in expand (catalog-only; new writes are checked from then
on), validated in the backfill stage under SHARE UPDATE EXCLUSIVE, which writes do not wait on.

Existing rows that fail the check are the data preflight's to report; an application version that
still writes such rows fails from expand on, which is the point of declaring the check."""

from __future__ import annotations

from orchestrator.domain.operations import AddCheck
from orchestrator.domain.plan import Stage
from orchestrator.engine.planner.context import PlanContext
from orchestrator.engine.planner.postgres.constraint_steps import Owner, check_step, validate_step
from orchestrator.engine.planner.postgres.ddl_text import check_expression_at


def plan(op: AddCheck, index: int, context: PlanContext) -> None:
    check_expression_at(op.expression, "expression")
    owner = Owner(index=index, kind=op.kind, table=op.table)
    context.add(
        check_step(owner, context, name=op.name, expression=op.expression, suffix=op.name, stage=Stage.EXPAND)
    )
    context.add(validate_step(owner, context, name=op.name, suffix=f"{op.name}.validate", what="check"))
