"""Preflight: read the live schema once, then judge the spec against it with pure checks."""

from __future__ import annotations

from dataclasses import dataclass, field

import pglast
import structlog

from orchestrator.domain.data_checks import LiveData
from orchestrator.domain.errors import SpecError
from orchestrator.domain.operations import AddColumn, Backfill, CreateIndex, DropColumn
from orchestrator.domain.schema import TableInfo
from orchestrator.domain.spec import MigrationSpec
from orchestrator.engine import preflight_columns, preflight_constraints, preflight_tables
from orchestrator.engine.planner.postgres.backfill import referenced_columns
from orchestrator.engine.preflight_data import (
    data_notes,
    data_problems,
    data_warnings,
    locked_tables,
    plan_data_checks,
)
from orchestrator.ports import SupportsDataPreflight, TargetDatabase

log = structlog.get_logger(__name__)


@dataclass
class LiveSchema:
    tables: dict[str, TableInfo | None] = field(default_factory=dict)
    relations: dict[str, bool] = field(default_factory=dict)
    # Operation index -> the database's complaint about a backfill expression, if any.
    expression_errors: dict[int, str] = field(default_factory=dict)
    # Rows, sessions and replicas (engine/preflight_data.py); None when the target cannot tell.
    data: LiveData | None = None


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
        for name in preflight_constraints.relations_to_check(op):
            if name not in live.relations:
                live.relations[name] = await target.relation_exists(name)
        for name in preflight_constraints.tables_to_read(op):
            if name not in live.tables:
                live.tables[name] = await target.describe_table(name)
        for name in preflight_tables.relations_to_check(op, spec.name):
            if name not in live.relations:
                live.relations[name] = await target.relation_exists(name)
        for name in preflight_tables.tables_to_read(op):
            if name not in live.tables:
                live.tables[name] = await target.describe_table(name)
    for name in locked_tables(spec):  # tables a foreign key references are checked too
        if name not in live.tables:
            live.tables[name] = await target.describe_table(name)
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
        compiled = preflight_columns.expression_to_compile(op, live.tables.get(op.table))
        if compiled is not None:
            error = await target.check_expression(op.table, compiled)
            if error:
                live.expression_errors[index] = error
    if isinstance(target, SupportsDataPreflight):
        live.data = await _read_live_data(spec, target, live)
    return live


def preflight_problems(spec: MigrationSpec, live: LiveSchema, target_name: str) -> list[tuple[str, str]]:
    """Every reason the spec cannot run against this schema, as (field path, message)."""
    problems: list[tuple[str, str]] = []
    added: set[tuple[str, str]] = set()
    dropped: set[tuple[str, str]] = set()
    # Tables created, renamed or dropped by earlier operations of this spec (preflight_tables).
    changes = preflight_tables.TableChanges()
    for index, op in enumerate(spec.ops()):
        path = f"operations.{index}.{op.kind}"
        if preflight_tables.handles(op):
            problems.extend(
                preflight_tables.problems(
                    op, path, live.tables, live.relations, changes, target_name, spec.name
                )
            )
            continue
        table = changes.resolve(op.table, live.tables)
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
        problems.extend(
            preflight_constraints.problems(op, path, table, live.tables, live.relations, exists, spec.ops())
        )
        problems.extend(
            preflight_columns.problems(op, path, exists, added, dropped, live.expression_errors.get(index))
        )
    if live.data is not None:
        problems.extend(data_problems(spec, live.data))
    return problems


def preflight_warnings(spec: MigrationSpec, live: LiveSchema) -> list[tuple[str, str]]:
    """What the plan should be accepted with but shown: long transactions, replica lag, overrides."""
    return data_warnings(spec, live.data) if live.data is not None else []


async def _read_live_data(spec: MigrationSpec, target: SupportsDataPreflight, live: LiveSchema) -> LiveData:
    tables = [name for name in locked_tables(spec) if live.tables.get(name) is not None]
    checks = plan_data_checks(spec, live.tables)
    data = await target.read_live_data(checks, tables, timeout_ms=spec.settings.preflight.check_timeout_ms)
    for path, message in data_warnings(spec, data):
        log.warning("preflight_warning", path=path, message=message)
    for note in data_notes(data):
        log.info("preflight_note", note=note)
    return data


async def preflight(spec: MigrationSpec, target: TargetDatabase, target_name: str) -> None:
    problems = preflight_problems(spec, await read_live_schema(spec, target), target_name)
    if problems:
        raise SpecError(problems)
