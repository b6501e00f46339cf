"""MySQL and MariaDB planners: direct online DDL (ALGORITHM=INSTANT or INPLACE, LOCK=NONE) for each
operation, forward and rollback side by side. The target adapts the algorithm to the server it meets."""

from __future__ import annotations

from orchestrator.domain.errors import SpecError
from orchestrator.domain.operations import AddColumn, AlterTable, Backfill, CreateIndex, DropColumn
from orchestrator.domain.plan import Stage, Step
from orchestrator.domain.spec import MigrationSpec
from orchestrator.engine.planner.mysql import add_column, alter_table, backfill, create_index, drop_column
from orchestrator.engine.planner.postgres.context import PlanContext


def plan_steps(spec: MigrationSpec) -> dict[Stage, list[Step]]:
    context = PlanContext(lock_timeout_ms=spec.settings.lock_timeout_ms)
    problems: list[tuple[str, str]] = []
    for index, op in enumerate(spec.ops()):
        path = f"operations.{index}.{op.kind}"
        try:
            match op:
                case AddColumn():
                    add_column.plan(op, index, context)
                case CreateIndex():
                    create_index.plan(op, index, context)
                case Backfill():
                    backfill.plan(op, index, context)
                case DropColumn():
                    drop_column.plan(op, index, context)
                case AlterTable():
                    alter_table.plan(op, index, context)
        except SpecError as error:
            problems.extend(
                (f"{path}.{field}" if field else path, message) for field, message in error.problems
            )
    if problems:
        raise SpecError(problems)
    return context.steps
