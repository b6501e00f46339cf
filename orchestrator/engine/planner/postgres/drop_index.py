"""drop_index: DROP INDEX CONCURRENTLY in contract, after the new application version stopped
needing it. Described (columns or expressions, unique, method, where), a rollback rebuilds it
concurrently; undescribed, the drop cannot be undone by the orchestrator and says so. The preflight
compares the description with the live index, so the rebuild is the index that was dropped."""

from __future__ import annotations

from orchestrator.domain.errors import SpecError
from orchestrator.domain.operations import DropIndex
from orchestrator.domain.plan import Stage, StepAction
from orchestrator.engine.planner.context import PlanContext
from orchestrator.engine.planner.postgres.constraint_steps import Owner, ddl_step
from orchestrator.engine.planner.postgres.create_index import IndexShape


def shape_of(op: DropIndex) -> IndexShape | None:
    """The index to rebuild on rollback, or None when the operation does not describe it."""
    if not op.columns and not op.expressions:
        return None
    return IndexShape(
        table=op.table,
        name=op.name,
        columns=tuple(op.columns),
        expressions=tuple(op.expressions),
        unique=op.unique,
        method=op.method,
        where=op.where,
    )


def plan(op: DropIndex, index: int, context: PlanContext) -> None:
    if op.name in context.index_names:
        raise SpecError([("name", f"index {op.name} is created or dropped already in this spec")])
    context.index_names.add(op.name)
    shape = shape_of(op)
    if shape is None and (op.unique or op.where is not None or op.method != "btree"):
        raise SpecError(
            [("columns", "describe the index's keys (columns or expressions) too, or nothing at all")]
        )
    if shape is not None:
        problems = shape.problems()
        if problems:
            raise SpecError(problems)
    context.add(
        ddl_step(
            Owner(index=index, kind=op.kind, table=op.table),
            context,
            stage=Stage.CONTRACT,
            suffix=op.name,
            description=op.describe(),
            sql=IndexShape(table=op.table, name=op.name).drop_sql(),
            risk=(
                "SHARE UPDATE EXCLUSIVE: reads and writes go on. Waits for transactions using the index "
                "to finish. Queries that relied on it get slower: that is what the deploy gate is for."
            ),
            estimate="< 1 s once older transactions finish",
            action=StepAction.DROP_INDEX_CONCURRENTLY,
            index_name=op.name,
            rollback_sql=shape.create_sql() if shape else None,
            rollback_description=f"rebuild index {op.name} concurrently",
            rollback_action=StepAction.CREATE_INDEX_CONCURRENTLY,
            irreversible_reason=None
            if shape
            else (
                f"index {op.name} is not described (columns or expressions, unique, method, where), "
                "so a rollback could not rebuild it"
            ),
        )
    )
