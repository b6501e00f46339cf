"""add_unique: a unique index built concurrently (no write lock while it scans), then attached as a
UNIQUE constraint, which is catalog-only because the index already holds every row. The index is
named like the constraint, so attaching it renames nothing and dropping the constraint drops both."""

from __future__ import annotations

from orchestrator.domain.errors import SpecError
from orchestrator.domain.operations import AddUnique
from orchestrator.engine.planner.context import PlanContext
from orchestrator.engine.planner.postgres.constraint_steps import Owner, attach_unique_step, index_step


def plan(op: AddUnique, index: int, context: PlanContext) -> None:
    if op.name in context.index_names:
        raise SpecError([("name", f"an index named {op.name} is already created in this spec")])
    context.index_names.add(op.name)
    if len(set(op.columns)) != len(op.columns):
        raise SpecError([("columns", "a column appears twice")])
    owner = Owner(index=index, kind=op.kind, table=op.table)
    context.add(
        index_step(
            owner, context, name=op.name, columns=list(op.columns), unique=True, suffix=f"{op.name}.index"
        )
    )
    context.add(attach_unique_step(owner, context, name=op.name, suffix=op.name))
