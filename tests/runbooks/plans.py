"""Runs made from real planned migrations (the planners, offline), at a chosen point of their life."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from orchestrator.domain.plan import Stage
from orchestrator.domain.run import EventType, MigrationEvent, Run
from orchestrator.domain.spec import parse_spec
from orchestrator.domain.states import RunStatus
from orchestrator.engine.planner import plan_migration
from orchestrator.ports import StepCheckpoint
from orchestrator.runbooks.desk import History


def planned_run(engine: str, operations: list[dict[str, Any]], status: RunStatus, **fields: Any) -> Run:
    spec = parse_spec({"name": "rb-test", "target": "app", "operations": operations})
    now = datetime.now(UTC)
    return Run(
        id="rb-test-1",
        name=spec.name,
        target="app",
        engine=engine,
        status=status,
        spec=spec,
        plan=plan_migration(spec, engine),
        created_at=now,
        updated_at=now,
        **fields,
    )


def started(run: Run, stages: Iterable[Stage], *, but: Sequence[str] = (), state: str = "done") -> History:
    """Checkpoints of every step of `stages` (except those whose id ends with one of `but`)."""
    wanted = set(stages)
    checkpoints = {
        step.id: StepCheckpoint(step.id, state, 1)
        for step in run.plan.steps()
        if step.stage in wanted and not step.id.endswith(tuple(but))
    }
    return History(checkpoints, [])


def event(type_: EventType, **data: Any) -> MigrationEvent:
    return MigrationEvent(
        id=7, migration_id="rb-test-1", at=datetime.now(UTC), type=type_, message="", data=data
    )
