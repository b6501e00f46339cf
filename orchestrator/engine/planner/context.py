"""What the per-operation planners share while walking one spec in order."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from orchestrator.domain.direct_ddl import DirectLimits
from orchestrator.domain.errors import SpecError
from orchestrator.domain.plan import Stage, Step
from orchestrator.domain.schema import TableInfo
from orchestrator.domain.spec import MigrationSpec


@dataclass
class PlanContext:
    lock_timeout_ms: int
    steps: dict[Stage, list[Step]] = field(default_factory=dict)
    # Columns this spec adds, so a later backfill knows dropping them undoes it.
    added_columns: set[tuple[str, str]] = field(default_factory=set)
    dropped_columns: set[tuple[str, str]] = field(default_factory=set)
    backfilled_columns: set[tuple[str, str]] = field(default_factory=set)
    index_names: set[str] = field(default_factory=set)
    # The live tables when the plan is made against a database (None when planned offline, e.g.
    # `osctl plan` without a target): lets a planner pick a strategy from the real schema, such as a
    # shadow table for a primary-key column. Planning stays pure: this is data read beforehand.
    tables: Mapping[str, TableInfo | None] | None = None
    # The spec's name: part of the names a plan gives to objects it keeps (a table set aside by
    # drop_table), so two migrations never pick the same one.
    migration: str = ""
    # MySQL: the largest table auto lets the server rebuild or index in one statement (configuration).
    direct_limits: DirectLimits = field(default_factory=DirectLimits)

    def add(self, step: Step) -> None:
        self.steps.setdefault(step.stage, []).append(step)


def step_id(stage: Stage, index: int, kind: str, suffix: str) -> str:
    return f"{stage.value}.{index:02d}.{kind}.{suffix}"


OperationPlanner = Callable[[Any, int, PlanContext], None]
LiveTables = Mapping[str, TableInfo | None] | None


def plan_each(
    spec: MigrationSpec,
    planners: Mapping[str, OperationPlanner],
    engine: str,
    tables: Mapping[str, TableInfo | None] | None = None,
    *,
    direct_limits: DirectLimits | None = None,
) -> dict[Stage, list[Step]]:
    """Plan every operation in order with its engine's planner, collecting every problem with its
    field path (`operations.2.backfill.expression`) rather than stopping at the first."""
    context = PlanContext(lock_timeout_ms=spec.settings.lock_timeout_ms, tables=tables, migration=spec.name)
    if direct_limits is not None:
        context.direct_limits = direct_limits
    problems: list[tuple[str, str]] = []
    for index, op in enumerate(spec.ops()):
        path = f"operations.{index}.{op.kind}"
        planner = planners.get(op.kind)
        try:
            if planner is None:
                raise SpecError([("", f"{op.kind} is not available on {engine} targets")])
            planner(op, index, context)
        except SpecError as error:
            problems.extend(
                (f"{path}.{field}" if field else path, message) for field, message in error.problems
            )
    if problems:
        raise SpecError(problems)
    return context.steps
