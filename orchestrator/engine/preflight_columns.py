"""Schema preflight for rename_column and alter_column: the column must exist, a new name must be
free, and `up` must compile against the live table. Pure, judged from a snapshot read beforehand;
what the synced column cannot take over (a primary key, views, constraints) the planner refuses
from the same snapshot, and the values a cast or `up` would fail on are checked in preflight_data.
"""

from __future__ import annotations

from collections.abc import Callable

from orchestrator.domain.operations import AlterColumn, RenameColumn
from orchestrator.domain.schema import TableInfo

Problems = list[tuple[str, str]]


def expression_to_compile(op: object, table: TableInfo | None) -> str | None:
    """The expression an alter_column's new column is filled with, to be compiled (not run) against
    the live table: `up` cast to the new type. None when there is nothing to compile yet."""
    if not isinstance(op, AlterColumn) or op.up is None or table is None:
        return None
    if op.column not in table.columns:
        return None
    new_type = op.type or table.columns[op.column].type
    return f"CAST(({op.up}) AS {new_type})"


def problems(
    op: object,
    path: str,
    exists: Callable[[str], bool],
    added: set[tuple[str, str]],
    dropped: set[tuple[str, str]],
    expression_error: str | None,
) -> Problems:
    found: Problems = []
    match op:
        case RenameColumn():
            if not exists(op.column):
                found.append((f"{path}.column", f"column {op.table}.{op.column} does not exist"))
            if exists(op.new_name):
                found.append((f"{path}.new_name", f"column {op.table}.{op.new_name} already exists"))
            added.add((op.table, op.new_name))
            dropped.add((op.table, op.column))
        case AlterColumn():
            if not exists(op.column):
                found.append((f"{path}.column", f"column {op.table}.{op.column} does not exist"))
            elif expression_error:
                found.append((f"{path}.up", expression_error))
    return found
