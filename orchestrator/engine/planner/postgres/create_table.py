"""create_table: a new, empty table in expand; undone by dropping it.

Nothing reads or writes a table before it exists, so the catalogue's live-table precautions do not
apply: NOT NULL needs no default, UNIQUE and REFERENCES are declared inline (there are no rows to
scan), and `default_expression` is a plain column default (volatile ones such as now() included).
`backfill` is refused: a new table has no rows to fill. Serial types (`bigserial`) give an
auto-numbered key; the sequence belongs to the table and goes with it on rollback.
"""

from __future__ import annotations

import pglast

from orchestrator.domain.errors import SpecError
from orchestrator.domain.identifiers import quote_ident, quote_literal
from orchestrator.domain.operations import CreateTable, ForeignKeyReference, TableColumn
from orchestrator.domain.plan import Stage, Step, StepAction
from orchestrator.engine.planner.context import PlanContext, step_id
from orchestrator.engine.planner.postgres.backfill import check_expression, referenced_columns

ON_DELETE_SQL = {
    "no_action": "",
    "restrict": " ON DELETE RESTRICT",
    "cascade": " ON DELETE CASCADE",
    "set_null": " ON DELETE SET NULL",
    "set_default": " ON DELETE SET DEFAULT",
}


def plan(op: CreateTable, index: int, context: PlanContext) -> None:
    problems = _problems(op)
    if problems:
        raise SpecError(problems)
    table = quote_ident(op.table)
    lines = [_column_sql(column) for column in op.columns]
    if op.primary_key:
        lines.append(f"PRIMARY KEY ({', '.join(quote_ident(name) for name in op.primary_key)})")
    body = ",\n".join(f"  {line}" for line in lines)
    forward_id = step_id(Stage.EXPAND, index, op.kind, op.table)
    referenced = sorted({column.references.table for column in op.columns if column.references})
    risk = "A new, empty table: no application code uses it yet."
    if referenced:
        risk += (
            f" Its foreign keys take a SHARE ROW EXCLUSIVE lock on {', '.join(referenced)} for a moment "
            "(writes there wait for it), bounded by lock_timeout per attempt."
        )
    context.add(
        Step(
            id=forward_id,
            stage=Stage.EXPAND,
            operation_index=index,
            action=StepAction.DDL,
            description=op.describe(),
            # IF NOT EXISTS makes a replay after a crash a no-op; preflight refuses a name in use.
            sql=f"CREATE TABLE IF NOT EXISTS {table} (\n{body}\n)",
            table=op.table,
            lock_timeout_ms=context.lock_timeout_ms,
            risk=risk,
            estimate="< 1 s once the locks are granted (the table is empty)",
            rollback=Step(
                id=f"rollback.{forward_id}",
                stage=Stage.ROLLBACK,
                operation_index=index,
                action=StepAction.DDL,
                description=f"drop table {op.table}, with any rows written to it since expand",
                # No CASCADE: a table of this spec that references it is dropped first (newest first);
                # anything else that came to depend on it stops the rollback with the database's reason.
                sql=f"DROP TABLE IF EXISTS {table}",
                table=op.table,
                lock_timeout_ms=context.lock_timeout_ms,
            ),
        )
    )


def _problems(op: CreateTable) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    seen: set[str] = set()
    for position, column in enumerate(op.columns):
        path = f"columns.{position}"
        if column.name in seen:
            problems.append((f"{path}.name", f"column {column.name} is listed twice"))
        seen.add(column.name)
        if column.backfill is not None:
            problems.append(
                (
                    f"{path}.backfill",
                    "a new table has no rows to backfill: remove 'backfill' (use 'default' or "
                    "'default_expression' for the rows the application will insert)",
                )
            )
        if column.default_expression is not None:
            problems.extend(_default_problems(column.default_expression, f"{path}.default_expression"))
        if column.references is not None:
            problems.extend(_reference_problems(column, column.references, f"{path}.references"))
    for position, name in enumerate(op.primary_key):
        if name not in seen:
            problems.append(
                (f"primary_key.{position}", f"{name} is not one of the table's columns; list it in 'columns'")
            )
        elif name in op.primary_key[:position]:
            problems.append((f"primary_key.{position}", f"{name} is listed twice"))
    return problems


def _default_problems(expression: str, path: str) -> list[tuple[str, str]]:
    try:
        check_expression(expression)
    except SpecError as error:
        return [(path, message) for _field, message in error.problems]
    try:
        columns = referenced_columns(expression)
    except pglast.parser.ParseError as error:  # pragma: no cover - check_expression parsed it already
        return [(path, f"not a valid SQL expression: {error}")]
    if columns:
        return [
            (
                path,
                f"a column default cannot read other columns ({', '.join(sorted(columns))}): use a "
                "constant or a function such as now() or gen_random_uuid()",
            )
        ]
    return []


def _reference_problems(
    column: TableColumn, references: ForeignKeyReference, path: str
) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    if len(references.columns) != 1:
        problems.append(
            (
                f"{path}.columns",
                "a column references exactly one column; add a multi-column foreign key with "
                "add_foreign_key after create_table",
            )
        )
    if references.on_delete == "set_null" and not column.nullable:
        problems.append(
            (f"{path}.on_delete", f"set_null needs a nullable column, and {column.name} is NOT NULL")
        )
    if references.on_delete == "set_default" and column.default is None and column.default_expression is None:
        problems.append((f"{path}.on_delete", f"set_default needs a default on {column.name}"))
    return problems


def _column_sql(column: TableColumn) -> str:
    sql = f"{quote_ident(column.name)} {column.type}"
    if column.default is not None:
        sql += f" DEFAULT {quote_literal(column.default)}"
    elif column.default_expression is not None:
        sql += f" DEFAULT ({column.default_expression})"
    if not column.nullable:
        sql += " NOT NULL"
    if column.unique:
        sql += " UNIQUE"
    if column.references is not None:
        target = column.references
        columns = ", ".join(quote_ident(name) for name in target.columns)
        sql += f" REFERENCES {quote_ident(target.table)} ({columns}){ON_DELETE_SQL[target.on_delete]}"
    return sql
