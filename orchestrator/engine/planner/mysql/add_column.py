"""add_column: ALGORITHM=INSTANT (catalog only) where the server has it; undone by dropping it."""

from __future__ import annotations

from orchestrator.domain.errors import SpecError
from orchestrator.domain.operations import AddColumn, ColumnDefinition
from orchestrator.domain.plan import Stage, Step, StepAction
from orchestrator.engine.planner.context import PlanContext, step_id
from orchestrator.engine.planner.mysql.sql import check_type, literal, quote_name

RISK = (
    "Catalog-only (INSTANT) on MariaDB 10.3.7+ and MySQL 8.0.12+: a brief exclusive metadata lock, "
    "waited for at most lock_timeout (whole seconds) per attempt while writes queue behind it. Older "
    "servers get ALGORITHM=INPLACE, LOCK=NONE instead: an online rebuild that replicas replay after it "
    "(lag for as long as it runs). A table that refuses INSTANT (FULLTEXT index, compressed rows) fails "
    "the step: it needs a copy tool."
)


# What ColumnDefinition offers that this planner cannot do online on MySQL, and what to do instead.
_POSTGRES_ONLY = {
    "default_expression": "a volatile default needs the column added, filled and constrained in stages; "
    "add it nullable here and fill it with a backfill operation",
    "backfill": "add the column nullable, then fill it with a backfill operation",
    "unique": "add the column, then a unique index with create_index (unique: true)",
    "references": "foreign keys on a live MySQL table need a copy tool: use alter_table",
}


def _refuse_postgres_only(column: ColumnDefinition) -> None:
    problems = [
        (f"column.{field}", f"not available on MySQL targets: {advice}")
        for field, advice in _POSTGRES_ONLY.items()
        if getattr(column, field) not in (None, False)
    ]
    if problems:
        raise SpecError(problems)


def plan(op: AddColumn, index: int, context: PlanContext) -> None:
    column = op.column
    key = (op.table, column.name)
    if key in context.added_columns:
        raise SpecError([("column.name", f"column {op.table}.{column.name} is added twice in this spec")])
    context.added_columns.add(key)
    _refuse_postgres_only(column)

    table, name = quote_name(op.table), quote_name(column.name)
    definition = f"{name} {check_type(column.type)}"
    if not column.nullable:
        definition += " NOT NULL"
    if column.default is not None:
        definition += f" DEFAULT {literal(column.default)}"
    forward_id = step_id(Stage.EXPAND, index, op.kind, column.name)
    context.add(
        Step(
            id=forward_id,
            stage=Stage.EXPAND,
            operation_index=index,
            action=StepAction.DDL,
            description=op.describe(),
            # No IF NOT EXISTS (MySQL lacks it): the target checks the catalog before running, so a
            # replay after a crash between commit and checkpoint is a no-op on either flavour.
            sql=f"ALTER TABLE {table} ADD COLUMN {definition}, ALGORITHM=INSTANT",
            transactional=False,  # MySQL DDL commits on its own
            table=op.table,
            lock_timeout_ms=context.lock_timeout_ms,
            risk=RISK,
            estimate="< 1 s once the metadata lock is granted (no rebuild with INSTANT)",
            rollback=Step(
                id=f"rollback.{forward_id}",
                stage=Stage.ROLLBACK,
                operation_index=index,
                action=StepAction.DDL,
                description=f"drop column {op.table}.{column.name}",
                sql=f"ALTER TABLE {table} DROP COLUMN {name}, ALGORITHM=INSTANT",
                transactional=False,
                table=op.table,
                lock_timeout_ms=context.lock_timeout_ms,
            ),
        )
    )
