"""drop_column: nothing before the gate; dropped in contract, after the new code stopped using it."""

from __future__ import annotations

from orchestrator.domain.errors import SpecError
from orchestrator.domain.identifiers import quote_ident
from orchestrator.domain.operations import DropColumn
from orchestrator.domain.plan import Stage, Step, StepAction
from orchestrator.engine.planner.context import PlanContext, step_id


def plan(op: DropColumn, index: int, context: PlanContext) -> None:
    key = (op.table, op.column)
    if key in context.added_columns:
        raise SpecError([("column", f"column {op.table}.{op.column} is added by this spec; drop nothing")])
    if key in context.backfilled_columns:
        raise SpecError(
            [("column", f"column {op.table}.{op.column} is backfilled by this spec; drop nothing")]
        )
    if key in context.dropped_columns:
        raise SpecError([("column", f"column {op.table}.{op.column} is dropped twice")])
    context.dropped_columns.add(key)
    context.add(
        Step(
            id=step_id(Stage.CONTRACT, index, op.kind, op.column),
            stage=Stage.CONTRACT,
            operation_index=index,
            action=StepAction.DDL,
            description=op.describe(),
            sql=f"ALTER TABLE {quote_ident(op.table)} DROP COLUMN IF EXISTS {quote_ident(op.column)}",
            table=op.table,
            lock_timeout_ms=context.lock_timeout_ms,
            risk=(
                "ACCESS EXCLUSIVE lock, catalog-only (space is reclaimed by later writes). Breaks any code "
                "still reading the column: that is what the deploy gate is for."
            ),
            estimate="< 1 s once the lock is granted",
            irreversible_reason=f"dropping {op.table}.{op.column} discards its values",
        )
    )
