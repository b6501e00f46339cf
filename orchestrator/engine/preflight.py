"""Preflight: read the live schema once, then judge the spec against it with pure checks."""

from __future__ import annotations

from dataclasses import dataclass, field

import pglast

from orchestrator.domain.errors import SpecError
from orchestrator.domain.operations import AddColumn, Backfill, CreateIndex, DropColumn
from orchestrator.domain.schema import TableInfo
from orchestrator.domain.spec import MigrationSpec
from orchestrator.engine.planner.postgres.backfill import referenced_columns
from orchestrator.ports import TargetDatabase


@dataclass
class LiveSchema:
    tables: dict[str, TableInfo | None] = field(default_factory=dict)
    relations: dict[str, bool] = field(default_factory=dict)
    # Operation index -> the database's complaint about a backfill expression, if any.
    expression_errors: dict[int, str] = field(default_factory=dict)


def _reads(expression: str) -> set[str]:
    try:
        return referenced_columns(expression)
    except pglast.parser.ParseError:
        return set()  # the planner reports the syntax error with its path


async def read_live_schema(spec: MigrationSpec, target: TargetDatabase) -> LiveSchema:
    live = LiveSchema()
    for op in spec.ops():
        if op.table not in live.tables:
            live.tables[op.table] = await target.describe_table(op.table)
        if isinstance(op, CreateIndex) and op.name not in live.relations:
            live.relations[op.name] = await target.relation_exists(op.name)
    added = {(op.table, op.column.name) for op in spec.ops() if isinstance(op, AddColumn)}
    for index, op in enumerate(spec.ops()):
        # An expression can only be compiled against columns that exist already; one that reads a
        # column this spec adds is checked when the backfill stage runs.
        if (
            isinstance(op, Backfill)
            and live.tables.get(op.table) is not None
            and not any((op.table, name) in added for name in _reads(op.expression))
        ):
            error = await target.check_expression(op.table, op.expression)
            if error:
                live.expression_errors[index] = error
    return live


def preflight_problems(spec: MigrationSpec, live: LiveSchema, target_name: str) -> list[tuple[str, str]]:
    """Every reason the spec cannot run against this schema, as (field path, message)."""
    problems: list[tuple[str, str]] = []
    added: set[tuple[str, str]] = set()
    dropped: set[tuple[str, str]] = set()
    for index, op in enumerate(spec.ops()):
        path = f"operations.{index}.{op.kind}"
        table = live.tables.get(op.table)
        if table is None:
            problems.append((f"{path}.table", f"table {op.table!r} does not exist on target {target_name!r}"))
            continue

        def exists(column: str, *, table_name: str = op.table, info: TableInfo = table) -> bool:
            return (column in info.columns or (table_name, column) in added) and (
                table_name,
                column,
            ) not in dropped

        match op:
            case AddColumn():
                if op.column.name in table.columns:
                    problems.append(
                        (f"{path}.column.name", f"column {op.table}.{op.column.name} already exists")
                    )
                added.add((op.table, op.column.name))
            case CreateIndex():
                if live.relations.get(op.name):
                    problems.append((f"{path}.name", f"a relation named {op.name!r} already exists"))
                for position, column in enumerate(op.columns):
                    if not exists(column):
                        problems.append(
                            (f"{path}.columns.{position}", f"column {op.table}.{column} does not exist")
                        )
            case Backfill():
                if not exists(op.column):
                    problems.append((f"{path}.column", f"column {op.table}.{op.column} does not exist"))
                if not (table.walk_key or table.primary_key):
                    problems.append(
                        (
                            f"{path}.table",
                            f"table {op.table} has no primary key, nor a unique index over NOT NULL "
                            "columns, to walk in chunks; add one first",
                        )
                    )
                if index in live.expression_errors:
                    problems.append((f"{path}.expression", live.expression_errors[index]))
            case DropColumn():
                if not exists(op.column):
                    problems.append((f"{path}.column", f"column {op.table}.{op.column} does not exist"))
                elif op.column in table.primary_key:
                    problems.append(
                        (f"{path}.column", f"column {op.table}.{op.column} is part of the primary key")
                    )
                dropped.add((op.table, op.column))
    return problems


async def preflight(spec: MigrationSpec, target: TargetDatabase, target_name: str) -> None:
    problems = preflight_problems(spec, await read_live_schema(spec, target), target_name)
    if problems:
        raise SpecError(problems)
