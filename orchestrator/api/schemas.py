"""What the API answers with: the run as a pipeline or a person needs it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel

from orchestrator.domain.plan import Plan, Stage
from orchestrator.domain.run import BackfillTuning, MigrationEvent, Progress, Run
from orchestrator.domain.states import RunStatus


class RunView(BaseModel):
    id: str
    name: str
    target: str
    engine: str
    status: RunStatus
    stage: Stage | None
    paused_from: RunStatus | None
    error: str | None
    progress: Progress
    tuning: BackfillTuning
    allowed_actions: list[str]
    created_at: datetime
    updated_at: datetime
    plan: Plan | None = None

    @classmethod
    def of(cls, run: Run, *, with_plan: bool = True) -> RunView:
        return cls(
            id=run.id,
            name=run.name,
            target=run.target,
            engine=run.engine,
            status=run.status,
            stage=run.stage,
            paused_from=run.paused_from,
            error=run.error,
            progress=run.progress,
            tuning=run.tuning,
            allowed_actions=run.allowed_actions,
            created_at=run.created_at,
            updated_at=run.updated_at,
            plan=run.plan if with_plan else None,
        )


class RunList(BaseModel):
    migrations: list[RunView]


class EventList(BaseModel):
    events: list[MigrationEvent]


class WaitResult(BaseModel):
    reached: bool
    timed_out: bool
    migration: RunView


class Health(BaseModel):
    status: str
    detail: dict[str, Any] = {}
