"""MySQL and MariaDB planners: direct online DDL (ALGORITHM=INSTANT or INPLACE, LOCK=NONE) for each
operation, forward and rollback side by side. The target adapts the algorithm to the server it meets."""

from __future__ import annotations

from orchestrator.domain.direct_ddl import DirectLimits
from orchestrator.domain.plan import Stage, Step
from orchestrator.domain.spec import MigrationSpec
from orchestrator.engine.planner.context import LiveTables, OperationPlanner, plan_each
from orchestrator.engine.planner.mysql import add_column, alter_table, backfill, create_index, drop_column

PLANNERS: dict[str, OperationPlanner] = {
    "add_column": add_column.plan,
    "create_index": create_index.plan,
    "backfill": backfill.plan,
    "drop_column": drop_column.plan,
    "alter_table": alter_table.plan,
}


def plan_steps(
    spec: MigrationSpec, tables: LiveTables = None, *, direct_limits: DirectLimits | None = None
) -> dict[Stage, list[Step]]:
    return plan_each(spec, PLANNERS, "mysql", tables, direct_limits=direct_limits)
