"""Which data checks a spec needs against the live tables (pure). See preflight_data.py for why
each operation gets the checks it does."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pglast

from orchestrator.domain.data_checks import DataCheck, DataCheckKind
from orchestrator.domain.errors import SpecError
from orchestrator.domain.identifiers import quote_ident, quote_literal
from orchestrator.domain.operations import (
    AddCheck,
    AddColumn,
    AddForeignKey,
    AddUnique,
    AlterColumn,
    Backfill,
    CreateIndex,
    CreateTable,
    DropIndex,
    Operation,
)
from orchestrator.domain.schema import TableInfo
from orchestrator.domain.spec import MigrationSpec
from orchestrator.engine.planner.postgres.backfill import check_expression, referenced_columns

# -- which checks ----------------------------------------------------------------------------------


class _Rows:
    """What a check may read of one operation's table: its live columns, minus those this spec adds."""

    def __init__(self, spec: MigrationSpec, table: TableInfo) -> None:
        self.table = table
        self.added = {
            op.column.name for op in spec.ops() if isinstance(op, AddColumn) and op.table == table.name
        }
        self.key = tuple(table.primary_key or table.walk_key)
        # Columns a backfill of this spec sets before a later operation constrains them: that
        # operation meets the backfill's values, not today's (UPDATE ... SET NOT NULL, converted).
        self.filled: dict[str, str] = {}

    def has(self, column: str) -> bool:
        return column in self.table.columns and column not in self.added

    def readable(self, expression: str) -> bool:
        """A single scalar expression over existing columns only (anything else is the planner's to
        report, or cannot be evaluated before the backfill)."""
        try:
            check_expression(expression)
            return all(self.has(name) for name in referenced_columns(expression))
        except (SpecError, pglast.parser.ParseError):
            return False

    def shown(self, expression: str) -> tuple[str, ...]:
        return tuple(sorted(name for name in referenced_columns(expression) if name not in self.key))


def plan_data_checks(spec: MigrationSpec, tables: Mapping[str, TableInfo | None]) -> list[DataCheck]:
    """The data checks the spec needs against these live tables (missing ones are skipped: the schema
    preflight reports them)."""
    checks: list[DataCheck] = []
    rows_of: dict[str, _Rows] = {}
    for index, op in enumerate(spec.ops()):
        table = tables.get(op.table)
        if table is None or isinstance(op, CreateTable):
            continue
        rows = rows_of.setdefault(op.table, _Rows(spec, table))
        if isinstance(op, Backfill):
            rows.filled[op.column] = op.expression
            continue
        checks.extend(_checks_for(op, f"operations.{index}.{op.kind}", rows, tables))
    return checks


def _checks_for(
    op: Operation, path: str, rows: _Rows, tables: Mapping[str, TableInfo | None]
) -> list[DataCheck]:
    match op:
        case AlterColumn():
            return _alter_column(op, path, rows)
        case AddColumn():
            return _add_column(op, path, rows, tables)
        case CreateIndex() if op.unique:
            readable = all(map(rows.readable, [*op.expressions, *([op.where] if op.where else [])]))
            if all(map(rows.has, op.columns)) and readable:
                keys = [*map(quote_ident, op.columns), *op.expressions]
                field = "columns" if op.columns else "expressions"
                labels = (*op.columns, *op.expressions)
                return [_duplicates(f"{path}.{field}", rows, keys, labels, where=op.where)]
        case AddUnique() if all(map(rows.has, op.columns)):
            return [_duplicates(f"{path}.columns", rows, [quote_ident(c) for c in op.columns], op.columns)]
        case AddForeignKey() if all(map(rows.has, op.columns)):
            if _references_exist(tables, op.references.table, op.references.columns):
                return [
                    _orphans(
                        f"{path}.columns",
                        rows,
                        [quote_ident(c) for c in op.columns],
                        op.columns,
                        op.references.table,
                        op.references.columns,
                        shown=tuple(c for c in op.columns if c not in rows.key),
                    )
                ]
        case AddCheck() if rows.readable(op.expression):
            return [
                DataCheck(
                    path=f"{path}.expression",
                    kind=DataCheckKind.CHECK,
                    table=op.table,
                    expressions=(op.expression,),
                    labels=(op.expression,),
                    key=rows.key,
                    shown=rows.shown(op.expression),
                    fix="correct those rows first",
                )
            ]
    return []


def _alter_column(op: AlterColumn, path: str, rows: _Rows) -> list[DataCheck]:
    if not rows.has(op.column) or (op.up is not None and not rows.readable(op.up)):
        return []
    column = quote_ident(op.column)
    filled = rows.filled.get(op.column)
    if op.up is None and filled is not None and rows.readable(filled):
        column = f"({filled})"  # the value the earlier backfill leaves, which this change meets
    value = op.up if op.up is not None else column
    label = op.up if op.up is not None else op.column
    shown = rows.shown(op.up) if op.up is not None else (op.column,)
    checks = []
    if op.type is not None:
        cast_path = f"{path}.up" if op.up is not None else f"{path}.type"
        fix = "correct those rows, or give an 'up' expression that converts them"
        checks.append(_one(cast_path, DataCheckKind.CAST, rows, value, label, shown, fix, type_name=op.type))
    if op.nullable is False:
        fix = "fill them first (a backfill), then set NOT NULL"
        checks.append(_one(f"{path}.nullable", DataCheckKind.NULLS, rows, value, label, shown, fix))
    return checks


def _add_column(
    op: AddColumn, path: str, rows: _Rows, tables: Mapping[str, TableInfo | None]
) -> list[DataCheck]:
    column = op.column
    if column.backfill is not None or column.default_expression is not None:
        field = "backfill" if column.backfill is not None else "default_expression"
        fill = column.backfill or column.default_expression
        assert fill is not None
        if not rows.readable(fill):
            return []
        value, label, shown = fill, fill, rows.shown(fill)
    elif column.default is not None:
        field, value, label, shown = "default", quote_literal(column.default), str(column.default), ()
    else:
        return []  # a new column left NULL breaks no constraint
    checks = []
    if field != "default":
        fill_path = f"{path}.column.{field}"
        fix = f"make the expression give a valid {column.type} for every row"
        checks.append(
            _one(fill_path, DataCheckKind.CAST, rows, value, label, shown, fix, type_name=column.type)
        )
        if not column.nullable:
            fix = "make it give a value for every row (coalesce) or keep the column nullable"
            checks.append(_one(fill_path, DataCheckKind.NULLS, rows, value, label, shown, fix))
    if column.unique:
        checks.append(_duplicates(f"{path}.column.unique", rows, [value], [label]))
    reference = column.references
    if (
        reference is not None
        and len(reference.columns) == 1
        and _references_exist(tables, reference.table, reference.columns)
    ):
        checks.append(
            _orphans(
                f"{path}.column.references",
                rows,
                [value],
                [label],
                reference.table,
                reference.columns,
                shown,
            )
        )
    return checks


def _one(
    path: str,
    kind: DataCheckKind,
    rows: _Rows,
    value: str,
    label: str,
    shown: tuple[str, ...],
    fix: str,
    *,
    type_name: str | None = None,
) -> DataCheck:
    """A check over one expression of the operation's table (a cast, or NULLs)."""
    return DataCheck(
        path=path,
        kind=kind,
        table=rows.table.name,
        expressions=(value,),
        labels=(label,),
        key=rows.key,
        shown=shown,
        type_name=type_name,
        fix=fix,
    )


def _duplicates(
    path: str, rows: _Rows, expressions: Sequence[str], labels: Sequence[str], *, where: str | None = None
) -> DataCheck:
    return DataCheck(
        path=path,
        kind=DataCheckKind.DUPLICATES,
        table=rows.table.name,
        expressions=tuple(expressions),
        labels=tuple(labels),
        key=rows.key,
        where=where,
        fix="deduplicate first",
    )


def _orphans(
    path: str,
    rows: _Rows,
    expressions: Sequence[str],
    labels: Sequence[str],
    referenced_table: str,
    referenced_columns: Sequence[str],
    shown: tuple[str, ...],
) -> DataCheck:
    return DataCheck(
        path=path,
        kind=DataCheckKind.ORPHANS,
        table=rows.table.name,
        expressions=tuple(expressions),
        labels=tuple(labels),
        key=rows.key,
        shown=shown,
        referenced_table=referenced_table,
        referenced_columns=tuple(referenced_columns),
        fix=f"delete them, point them at existing {referenced_table} rows, or set them NULL first",
    )


def _references_exist(tables: Mapping[str, TableInfo | None], table: str, columns: Sequence[str]) -> bool:
    info = tables.get(table)
    return info is not None and all(column in info.columns for column in columns)


# -- which tables and sessions matter ---------------------------------------------------------------


def tables_of(op: Operation) -> tuple[str, ...]:
    """The tables an operation locks: its own, and the one a foreign key references."""
    if isinstance(op, AddForeignKey):
        return (op.table, op.references.table)
    if isinstance(op, AddColumn) and op.column.references is not None:
        return (op.table, op.column.references.table)
    return (op.table,)


def locked_tables(spec: MigrationSpec) -> list[str]:
    """Existing tables the migration takes locks on (a table the spec creates has no sessions yet)."""
    created = {op.table for op in spec.ops() if isinstance(op, CreateTable)}
    names = [name for op in spec.ops() for name in tables_of(op)]
    return list(dict.fromkeys(name for name in names if name not in created))


def builds_index_concurrently(op: Operation) -> bool:
    if isinstance(op, CreateIndex | AddUnique | DropIndex):
        return True
    if isinstance(op, AddForeignKey):
        return op.create_index
    return isinstance(op, AddColumn) and op.column.unique
