"""Preflight of the table operations (create_table, drop_table, rename_table, raw_sql): pure checks of
the spec against the live schema, and the tables as the later operations of the same spec see them.

raw_sql is not checked: raw is raw, and its statements may well create the table they name.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from orchestrator.domain.operations import CreateTable, DropTable, Operation, RawSql, RenameTable
from orchestrator.domain.retention import aside_name
from orchestrator.domain.schema import ColumnInfo, TableInfo

Problems = list[tuple[str, str]]


@dataclass
class TableChanges:
    """Tables the spec has created, renamed or dropped so far, in the order of its operations."""

    created: dict[str, TableInfo] = field(default_factory=dict)
    gone: set[str] = field(default_factory=set)

    def resolve(self, name: str, live: Mapping[str, TableInfo | None]) -> TableInfo | None:
        if name in self.gone:
            return None
        return self.created.get(name) or live.get(name)


def handles(op: Operation) -> bool:
    return isinstance(op, CreateTable | DropTable | RenameTable | RawSql)


def relations_to_check(op: Operation, migration: str) -> list[str]:
    """Names that must be free: the new table, the new name, the aside name."""
    match op:
        case CreateTable():
            return [op.table]
        case RenameTable():
            return [op.new_name]
        case DropTable() if op.retention_hours > 0:
            return [aside_name(op.table, migration)]
    return []


def tables_to_read(op: Operation) -> list[str]:
    """Tables a new table's foreign keys reference."""
    if isinstance(op, CreateTable):
        return sorted({column.references.table for column in op.columns if column.references})
    return []


def problems(
    op: Operation,
    path: str,
    live: Mapping[str, TableInfo | None],
    relations: Mapping[str, bool],
    changes: TableChanges,
    target_name: str,
    migration: str,
) -> Problems:
    match op:
        case CreateTable():
            return _create(op, path, live, relations, changes)
        case DropTable():
            return _drop(op, path, live, relations, changes, target_name, migration)
        case RenameTable():
            return _rename(op, path, live, relations, changes, target_name)
    return []


def _create(
    op: CreateTable,
    path: str,
    live: Mapping[str, TableInfo | None],
    relations: Mapping[str, bool],
    changes: TableChanges,
) -> Problems:
    found: Problems = []
    if relations.get(op.table) or changes.resolve(op.table, live) is not None:
        found.append((f"{path}.table", f"a relation named {op.table!r} already exists"))
    new = TableInfo(
        name=op.table,
        columns={
            c.name: ColumnInfo(name=c.name, type=c.type, nullable=c.nullable and c.name not in op.primary_key)
            for c in op.columns
        },
        primary_key=list(op.primary_key),
    )
    for position, column in enumerate(op.columns):
        if column.references is None:
            continue
        where = f"{path}.columns.{position}.references"
        referenced = (
            new if column.references.table == op.table else changes.resolve(column.references.table, live)
        )
        if referenced is None:
            found.append((f"{where}.table", f"table {column.references.table!r} does not exist"))
            continue
        keys = column.references.columns
        missing = [name for name in keys if name not in referenced.columns]
        if missing:
            found.append((f"{where}.columns", f"{referenced.name} has no column {', '.join(missing)}"))
        elif not _is_unique(referenced, keys, op, column.references.table == op.table):
            found.append(
                (
                    f"{where}.columns",
                    f"{referenced.name} ({', '.join(keys)}) is neither its primary key nor unique: a "
                    "foreign key can only reference those",
                )
            )
    changes.created[op.table] = new
    changes.gone.discard(op.table)
    return found


def _is_unique(table: TableInfo, keys: list[str], op: CreateTable, own: bool) -> bool:
    if sorted(keys) == sorted(table.primary_key):
        return True
    if own:
        return len(keys) == 1 and any(c.name == keys[0] and c.unique for c in op.columns)
    return any(
        index.unique and index.valid and sorted(index.columns) == sorted(keys)
        for index in table.indexes.values()
    )


def _drop(
    op: DropTable,
    path: str,
    live: Mapping[str, TableInfo | None],
    relations: Mapping[str, bool],
    changes: TableChanges,
    target_name: str,
    migration: str,
) -> Problems:
    table = changes.resolve(op.table, live)
    if table is None:
        return [(f"{path}.table", f"table {op.table!r} does not exist on target {target_name!r}")]
    found: Problems = []
    if table.dependent_views:
        found.append(
            (
                f"{path}.table",
                f"views read {op.table}: {', '.join(table.dependent_views)}; drop or redefine them "
                "first (they would break now and block the purge later)",
            )
        )
    if table.referenced_by:
        found.append(
            (
                f"{path}.table",
                f"foreign keys of other tables reference {op.table}: {', '.join(table.referenced_by)}; "
                "drop them first (their rows would point at a table that is gone)",
            )
        )
    aside = aside_name(op.table, migration)
    if op.retention_hours > 0 and relations.get(aside):
        found.append(
            (
                f"{path}.table",
                f"{aside}, where this migration would keep {op.table}, exists already (an earlier "
                f"migration named {migration!r} set a table {op.table} aside): give this migration "
                "another name, or purge that table first (`osctl purge-dropped`)",
            )
        )
    changes.gone.add(op.table)
    return found


def _rename(
    op: RenameTable,
    path: str,
    live: Mapping[str, TableInfo | None],
    relations: Mapping[str, bool],
    changes: TableChanges,
    target_name: str,
) -> Problems:
    table = changes.resolve(op.table, live)
    if table is None:
        return [(f"{path}.table", f"table {op.table!r} does not exist on target {target_name!r}")]
    found: Problems = []
    if relations.get(op.new_name) or changes.resolve(op.new_name, live) is not None:
        found.append((f"{path}.new_name", f"a relation named {op.new_name!r} already exists"))
    # Later operations of this spec use the new name; the old one is only a view for old code.
    changes.created[op.new_name] = table.model_copy(update={"name": op.new_name})
    changes.gone.add(op.table)
    changes.gone.discard(op.new_name)
    return found
