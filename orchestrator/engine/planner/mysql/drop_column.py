"""drop_column: nothing before the gate; dropped in contract (INSTANT on MariaDB 10.4+, MySQL 8.0.29+)."""

from __future__ import annotations

from orchestrator.domain.errors import SpecError
from orchestrator.domain.operations import DropColumn
from orchestrator.domain.plan import Stage, Step, StepAction
from orchestrator.engine.planner.context import PlanContext, step_id
from orchestrator.engine.planner.mysql.sql import quote_name


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
            sql=f"ALTER TABLE {quote_name(op.table)} DROP COLUMN {quote_name(op.column)}, ALGORITHM=INSTANT",
            transactional=False,
            table=op.table,
            lock_timeout_ms=context.lock_timeout_ms,
            risk=(
                "Catalog-only (INSTANT) on MariaDB 10.4+ and MySQL 8.0.29+, INPLACE, LOCK=NONE (an online "
                "rebuild, replica lag while it runs) before that. A brief exclusive metadata lock, waited "
                "for at most lock_timeout per attempt. Breaks any code still reading the column: that is "
                "what the deploy gate is for."
            ),
            estimate="< 1 s once the metadata lock is granted (INSTANT)",
            irreversible_reason=f"dropping {op.table}.{op.column} discards its values",
        )
    )
