"""PostgreSQL planners: lock-safe SQL for each operation, forward and rollback side by side."""

from __future__ import annotations

from orchestrator.domain.errors import SpecError
from orchestrator.domain.plan import Stage, Step
from orchestrator.domain.spec import MigrationSpec
from orchestrator.engine.planner.context import LiveTables, OperationPlanner, PlanContext, plan_each
from orchestrator.engine.planner.postgres import (
    add_check,
    add_column,
    add_foreign_key,
    add_unique,
    alter_column,
    backfill,
    create_index,
    create_table,
    drop_column,
    drop_index,
    drop_table,
    raw_sql,
    rename_column,
    rename_table,
)


def _refuse_alter_table(_op: object, _index: int, _context: PlanContext) -> None:
    # A raw MySQL ALTER run through a copy tool; PostgreSQL has lock-safe operations of its own.
    raise SpecError([("", "alter_table is for MySQL targets; use the PostgreSQL operations")])


PLANNERS: dict[str, OperationPlanner] = {
    "add_column": add_column.plan,
    "create_index": create_index.plan,
    "backfill": backfill.plan,
    "drop_column": drop_column.plan,
    "alter_table": _refuse_alter_table,
    "create_table": create_table.plan,
    "drop_table": drop_table.plan,
    "rename_table": rename_table.plan,
    "raw_sql": raw_sql.plan,
    "drop_index": drop_index.plan,
    "add_unique": add_unique.plan,
    "add_foreign_key": add_foreign_key.plan,
    "add_check": add_check.plan,
    "rename_column": rename_column.plan,
    "alter_column": alter_column.plan,
}


def plan_steps(spec: MigrationSpec, tables: LiveTables = None) -> dict[Stage, list[Step]]:
    return plan_each(spec, PLANNERS, "postgres", tables)
