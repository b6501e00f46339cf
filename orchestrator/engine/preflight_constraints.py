"""Schema preflight for the column, index and constraint operations: what must exist, what names
must be free, what a described index must match. Pure: judged from a snapshot read beforehand.
(Data checks, such as NULLs, duplicates and orphans, live in preflight_data.)"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence

import pglast

from orchestrator.domain.operations import (
    AddCheck,
    AddColumn,
    AddForeignKey,
    AddUnique,
    CreateIndex,
    DropColumn,
    DropIndex,
    ForeignKeyReference,
)
from orchestrator.domain.schema import IndexInfo, TableInfo
from orchestrator.engine.planner.postgres import add_foreign_key, drop_column_archive
from orchestrator.engine.planner.postgres.add_column import column_names
from orchestrator.engine.planner.postgres.backfill import referenced_columns
from orchestrator.engine.planner.postgres.drop_index import shape_of

Problems = list[tuple[str, str]]
Exists = Callable[[str], bool]


def relations_to_check(op: object) -> list[str]:
    """Relations (indexes, tables) the operation creates under a derived name: they must be free."""
    match op:
        case AddColumn():
            return column_names(op).relations(op)
        case AddUnique():
            return [op.name]
        case AddForeignKey() if op.create_index:
            return [add_foreign_key.index_name(op)]
        case DropColumn():
            return drop_column_archive.relations(op)
    return []


def tables_to_read(op: object) -> list[str]:
    """Other tables the operation depends on: the referenced side of a foreign key."""
    match op:
        case AddColumn() if op.column.references is not None:
            return [op.column.references.table]
        case AddForeignKey():
            return [op.references.table]
    return []


def problems(
    op: object,
    path: str,
    table: TableInfo,
    tables: Mapping[str, TableInfo | None],
    relations: Mapping[str, bool],
    exists: Exists,
    others: Sequence[object] = (),
) -> Problems:
    """Every reason `op` cannot run against `table` as it is, as (field path, message). `others`:
    every operation of the spec, for what depends on the rest of it."""
    found: Problems = []
    dropped_indexes = {other.name for other in others if isinstance(other, DropIndex)}
    match op:
        case AddColumn():
            names = column_names(op)
            found += _free_relations(path, "column.name", names.relations(op), relations)
            found += _free_constraints(path, "column.name", names.constraints(op), table)
            for field in ("backfill", "default_expression"):
                found += _reads_existing(
                    f"{path}.column.{field}", getattr(op.column, field), exists, table.name
                )
            if op.column.references is not None:
                found += _referenced(f"{path}.column.references", op.column.references, tables)
        case CreateIndex():
            for position, expression in enumerate(op.expressions):
                found += _reads_existing(f"{path}.expressions.{position}", expression, exists, table.name)
            found += _reads_existing(f"{path}.where", op.where, exists, table.name)
        case DropIndex():
            found += _drop_index(op, path, table)
        case AddUnique():
            found += _columns_exist(path, op.columns, exists, table.name)
            found += _free_relations(path, "name", [op.name], relations)
            found += _free_constraints(path, "name", [op.name], table)
        case AddForeignKey():
            found += _columns_exist(path, op.columns, exists, table.name)
            found += _free_constraints(path, "name", [op.name], table)
            found += _referenced(f"{path}.references", op.references, tables)
            if op.create_index and not add_foreign_key.has_leading_index(table, list(op.columns)):
                found += _free_relations(path, "create_index", [add_foreign_key.index_name(op)], relations)
        case AddCheck():
            found += _free_constraints(path, "name", [op.name], table)
            found += _reads_existing(f"{path}.expression", op.expression, exists, table.name)
        case DropColumn() if op.archive:
            found += _free_relations(path, "archive", drop_column_archive.relations(op), relations)
            found += _dependents(op, path, table, dropped_indexes)
    return found


def _dependents(op: DropColumn, path: str, table: TableInfo, dropped_indexes: set[str]) -> Problems:
    """DROP COLUMN takes the column's indexes and constraints with it, and re-adding the column on
    rollback would not bring them back: they must go first, by operations that can rebuild them."""
    mention = re.compile(rf"\b{re.escape(op.column)}\b")
    indexes = [
        info.name
        for info in table.indexes.values()
        if info.name not in dropped_indexes
        and (
            op.column in info.columns
            or any(mention.search(text) for text in [*info.keys, info.predicate or ""])
        )
    ]
    constraints = [
        info.name
        for info in table.constraints.values()
        if op.column in info.columns and info.name not in indexes
    ]
    if not indexes and not constraints:
        return []
    used_by = ", ".join(
        [*(f"index {name}" for name in indexes), *(f"constraint {name}" for name in constraints)]
    )
    return [
        (
            f"{path}.archive",
            f"{op.table}.{op.column} is used by {used_by}, which the drop would take with it and a "
            "rollback could not restore: drop those first in this spec (drop_index, described), or "
            "drop the column without archive",
        )
    ]


def _columns_exist(path: str, columns: list[str], exists: Exists, table: str) -> Problems:
    return [
        (f"{path}.columns.{position}", f"column {table}.{column} does not exist")
        for position, column in enumerate(columns)
        if not exists(column)
    ]


def _reads_existing(path: str, expression: str | None, exists: Exists, table: str) -> Problems:
    if expression is None:
        return []
    try:
        read = referenced_columns(expression)
    except pglast.parser.ParseError:
        return []  # the planner reports the syntax error at the same path
    missing = sorted(column for column in read if not exists(column))
    if not missing:
        return []
    return [(path, f"reads {', '.join(missing)}, which table {table} does not have")]


def _free_relations(path: str, field: str, names: list[str], relations: Mapping[str, bool]) -> Problems:
    return [
        (f"{path}.{field}", f"a relation named {name!r} already exists; this operation would create it")
        for name in names
        if relations.get(name)
    ]


def _free_constraints(path: str, field: str, names: list[str], table: TableInfo) -> Problems:
    return [
        (f"{path}.{field}", f"table {table.name} already has a constraint named {name!r}")
        for name in names
        if name in table.constraints
    ]


def _referenced(
    path: str, reference: ForeignKeyReference, tables: Mapping[str, TableInfo | None]
) -> Problems:
    other = tables.get(reference.table)
    if other is None:
        return [(f"{path}.table", f"referenced table {reference.table!r} does not exist")]
    missing = [
        (f"{path}.columns.{position}", f"column {reference.table}.{column} does not exist")
        for position, column in enumerate(reference.columns)
        if column not in other.columns
    ]
    if missing:
        return missing
    wanted = set(reference.columns)
    if not any(_is_plain_unique(info) and set(info.columns) == wanted for info in other.indexes.values()):
        return [
            (
                f"{path}.columns",
                f"{reference.table} ({', '.join(reference.columns)}) is neither its primary key nor "
                "unique: a foreign key must reference a primary key or unique constraint",
            )
        ]
    return []


def _is_plain_unique(info: IndexInfo) -> bool:
    return (
        info.unique
        and info.valid
        and info.predicate is None
        and len(info.keys or info.columns) == len(info.columns)
    )


def _drop_index(op: DropIndex, path: str, table: TableInfo) -> Problems:
    live = table.indexes.get(op.name)
    if live is None:
        return [(f"{path}.name", f"table {op.table} has no index named {op.name!r}")]
    if live.constraint is not None:
        return [
            (
                f"{path}.name",
                f"index {op.name} enforces constraint {live.constraint}: drop the constraint instead "
                "(raw_sql with a down), DROP INDEX cannot",
            )
        ]
    shape = shape_of(op)
    if shape is None:
        return []
    described = _description(
        list(shape.columns) + list(shape.expressions), shape.unique, shape.method, shape.where
    )
    actual = _description(live.keys or live.columns, live.unique, live.method, live.predicate)
    if _normal(described) != _normal(actual):
        return [
            (
                f"{path}.columns",
                f"index {op.name} is {actual}, not {described}: describe it as it is, so that a "
                "rollback rebuilds the same index",
            )
        ]
    return []


def _description(keys: list[str], unique: bool, method: str, where: str | None) -> str:
    text = f"{'unique ' if unique else ''}{method} ({', '.join(keys)})"
    return text + (f" where {where}" if where else "")


_CAST = re.compile(r"::[a-z_][a-z0-9_ ]*(\(\d+(,\d+)?\))?(\[\])*")


def _normal(text: str) -> str:
    """Close enough to compare a description with the catalog's rendering of the same index: the
    catalog adds casts, parentheses and quotes the user did not write."""
    text = text.lower().replace('"', "")
    text = _CAST.sub("", text)
    return re.sub(r"[\s()]", "", text)
