"""drop_column: nothing before the gate; dropped in contract, after the new code stopped using it.

Without `archive` the drop discards the values and a rollback after it is refused with that reason.
With `archive` the values are copied first (see drop_column_archive), so a rollback can restore them.
"""

from __future__ import annotations

from orchestrator.domain.errors import SpecError
from orchestrator.domain.identifiers import quote_ident
from orchestrator.domain.operations import DropColumn
from orchestrator.domain.plan import Stage, Step, StepAction
from orchestrator.engine.planner.context import PlanContext, step_id
from orchestrator.engine.planner.postgres import drop_column_archive

DROP_RISK = (
    "ACCESS EXCLUSIVE lock, catalog-only (space is reclaimed by later writes). Breaks any code "
    "still reading the column: that is what the deploy gate is for."
)


def drop_sql(op: DropColumn) -> str:
    return f"ALTER TABLE {quote_ident(op.table)} DROP COLUMN IF EXISTS {quote_ident(op.column)}"


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
    if op.archive:
        for step in drop_column_archive.steps(op, index, context, drop_sql(op), DROP_RISK):
            context.add(step)
        return
    context.add(
        Step(
            id=step_id(Stage.CONTRACT, index, op.kind, op.column),
            stage=Stage.CONTRACT,
            operation_index=index,
            action=StepAction.DDL,
            description=op.describe(),
            sql=drop_sql(op),
            table=op.table,
            lock_timeout_ms=context.lock_timeout_ms,
            risk=DROP_RISK,
            estimate="< 1 s once the lock is granted",
            irreversible_reason=f"dropping {op.table}.{op.column} discards its values",
        )
    )
