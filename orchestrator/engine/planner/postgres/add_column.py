"""add_column: nullable or constant default, metadata-only on PostgreSQL 11+; undone by dropping it."""

from __future__ import annotations

from orchestrator.domain.errors import SpecError
from orchestrator.domain.identifiers import quote_ident, quote_literal
from orchestrator.domain.operations import AddColumn
from orchestrator.domain.plan import Stage, Step, StepAction
from orchestrator.engine.planner.context import PlanContext, step_id


def plan(op: AddColumn, index: int, context: PlanContext) -> None:
    column = op.column
    key = (op.table, column.name)
    if key in context.added_columns:
        raise SpecError([("column.name", f"column {op.table}.{column.name} is added twice in this spec")])
    context.added_columns.add(key)

    table, name = quote_ident(op.table), quote_ident(column.name)
    definition = f"{name} {column.type}"
    if column.default is not None:
        definition += f" DEFAULT {quote_literal(column.default)}"
    if not column.nullable:
        definition += " NOT NULL"
    # IF NOT EXISTS makes a replay after a crash between commit and checkpoint a no-op.
    forward_sql = f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {definition}"
    rollback_sql = f"ALTER TABLE {table} DROP COLUMN IF EXISTS {name}"
    forward_id = step_id(Stage.EXPAND, index, op.kind, column.name)
    context.add(
        Step(
            id=forward_id,
            stage=Stage.EXPAND,
            operation_index=index,
            action=StepAction.DDL,
            description=op.describe(),
            sql=forward_sql,
            table=op.table,
            lock_timeout_ms=context.lock_timeout_ms,
            risk="ACCESS EXCLUSIVE lock for a catalog-only change; waits at most lock_timeout per attempt.",
            estimate="< 1 s once the lock is granted (no table rewrite)",
            rollback=Step(
                id=f"rollback.{forward_id}",
                stage=Stage.ROLLBACK,
                operation_index=index,
                action=StepAction.DDL,
                description=f"drop column {op.table}.{column.name}",
                sql=rollback_sql,
                table=op.table,
                lock_timeout_ms=context.lock_timeout_ms,
            ),
        )
    )
