"""What a synced column must copy from the live one, and what it refuses to take over.

A column kept in sync by triggers and swapped in at contract is a new column: its type, default and
NOT NULL, and the indexes over it, are re-created from the live catalog. What cannot be re-created
on a live table without a rewrite or a lock (a primary key, an identity, a generated column, a view
or a constraint written over the column) is refused here, naming the objects, so the plan fails when
it is submitted rather than at contract.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pglast
from pglast import ast
from pglast.stream import RawStream

from orchestrator.domain.errors import SpecError
from orchestrator.domain.identifiers import check_identifier
from orchestrator.domain.schema import IndexInfo, TableInfo
from orchestrator.engine.planner.context import PlanContext
from orchestrator.engine.planner.postgres.ddl_text import derived_name


@dataclass(frozen=True)
class IndexRebuild:
    """An index over the old column, re-created concurrently over the new one before contract."""

    name: str
    copy: str
    sql: str
    # The UNIQUE constraint the live index backs: the copy is attached under its name at contract.
    constraint: str | None = None


@dataclass(frozen=True)
class ColumnFacts:
    """The live column. Planned offline (`osctl plan` without a target) nothing is known: the plan
    says so, and the plan stored when the migration is submitted is made against the live table."""

    type: str | None = None
    nullable: bool | None = None
    default: str | None = None
    rebuilds: tuple[IndexRebuild, ...] = ()

    @property
    def known(self) -> bool:
        return self.type is not None


OFFLINE = ColumnFacts()
OFFLINE_NOTE = (
    " (planned offline: the column's type, default, NOT NULL and indexes are read from the live "
    "table when the migration is submitted)"
)


def live_table(context: PlanContext, name: str) -> TableInfo | None:
    return context.tables.get(name) if context.tables is not None else None


def column_facts(table: TableInfo | None, column: str, new_column: str, *, kind: str) -> ColumnFacts:
    """The facts about `table.column`, or every reason `kind` cannot sync it, at field `column`."""
    if table is None:
        return OFFLINE
    info = table.columns.get(column)
    if info is None:
        raise SpecError([("column", f"column {table.name}.{column} does not exist")])
    where = f"{table.name}.{column}"
    problems: list[str] = []
    if not (table.walk_key or table.primary_key):
        problems.append(
            f"table {table.name} has no primary key, nor a unique index over NOT NULL columns, to copy "
            f"{column} along in chunks; add one first"
        )
    if column in table.primary_key:
        problems.append(
            f"{where} is part of the primary key, which a second column cannot take over without "
            "rewriting the table"
            + ("; use alter_column with strategy: shadow" if kind == "alter_column" else "")
        )
    if info.identity or info.generated:
        made = "an identity column" if info.identity else "a generated column"
        problems.append(f"{where} is {made}: its values come from the server, not from a copy")
    # A view's query is its _RETURN rule: name the view.
    dependents = [what.replace("rule _RETURN on ", "") for what in table.column_dependents.get(column, [])]
    if dependents:
        problems.append(
            f"a synced copy of {where} cannot take these over at contract: {'; '.join(dependents)}. "
            "Drop them first and re-create them after contract, or change them with raw_sql"
        )
    rebuilds = []
    for index in sorted(table.indexes.values(), key=lambda found: found.name):
        if column not in index_columns(index):
            continue
        problem = _unsupported(table, index, where)
        if problem:
            problems.append(problem)
        elif column not in table.primary_key:
            rebuilds.append(_rebuild(table, index, column, new_column))
    if problems:
        raise SpecError([("column", problem) for problem in problems])
    return ColumnFacts(type=info.type, nullable=info.nullable, default=info.default, rebuilds=tuple(rebuilds))


def index_columns(index: IndexInfo) -> set[str]:
    """Every column an index reads: keys, expressions, INCLUDE and its predicate."""
    if not index.definition:
        return set(index.columns)
    return {name for name, _ in _names(_parse(index))}


def _unsupported(table: TableInfo, index: IndexInfo, where: str) -> str | None:
    try:
        check_identifier(index.name)
    except ValueError:
        return f"index {index.name!r} on {where} has a name this planner cannot quote; rename it first"
    if not index.valid:
        return f"index {index.name} on {where} is INVALID: drop or rebuild it first"
    constraint = table.constraints.get(index.constraint) if index.constraint else None
    if index.constraint and (constraint is None or constraint.kind not in ("u", "p")):
        return (
            f"index {index.name} on {where} backs the exclusion constraint {index.constraint}, "
            "which a synced copy cannot take over; drop it first and re-create it after contract"
        )
    if not index.definition:
        return f"the definition of index {index.name} on {where} is unknown"
    return None


def _rebuild(table: TableInfo, index: IndexInfo, column: str, new_column: str) -> IndexRebuild:
    statement = _parse(index)
    for name, holder in _names(statement):
        if name == column:
            if isinstance(holder, ast.IndexElem):
                holder.name = new_column
            else:
                holder.fields = (ast.String(sval=new_column),)
    copy = derived_name("_osc", index.name, suffix="new")
    statement.idxname = copy
    statement.concurrent = True
    statement.if_not_exists = True
    constraint = index.constraint if index.constraint and index.constraint in table.constraints else None
    return IndexRebuild(name=index.name, copy=copy, sql=str(RawStream()(statement)), constraint=constraint)


def _parse(index: IndexInfo) -> ast.IndexStmt:
    [raw] = pglast.parse_sql(index.definition)
    statement = raw.stmt
    assert isinstance(statement, ast.IndexStmt)
    return statement


def _names(node: object) -> Iterator[tuple[str, ast.IndexElem | ast.ColumnRef]]:
    """(column, the node naming it) for every column reference under `node`."""
    if isinstance(node, ast.IndexElem) and node.name:
        yield node.name, node
    if isinstance(node, ast.ColumnRef):
        fields = node.fields or ()
        if len(fields) == 1 and isinstance(fields[0], ast.String) and fields[0].sval:
            yield fields[0].sval, node
        return
    if isinstance(node, ast.Node):
        for attribute in node:
            if attribute != "relation":
                yield from _names(getattr(node, attribute))
    elif isinstance(node, tuple | list):
        for item in node:
            yield from _names(item)
