"""A plan is inert data: ordered stages of steps, each step a side effect described, not performed."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from orchestrator.domain.copy_tools import CopyWork
from orchestrator.domain.shadow import ShadowWork


class Stage(StrEnum):
    EXPAND = "expand"
    DEPLOY_GATE = "deploy_gate"
    BACKFILL = "backfill"
    CONTRACT = "contract"
    # Not a stage of a plan: the stage a run is in while its completed steps are being reversed.
    ROLLBACK = "rollback"


PLAN_STAGES = (Stage.EXPAND, Stage.DEPLOY_GATE, Stage.BACKFILL, Stage.CONTRACT)


class StepAction(StrEnum):
    DDL = "ddl"  # one statement under lock_timeout, retried when the lock is not granted in time
    CREATE_INDEX_CONCURRENTLY = "create_index_concurrently"
    DROP_INDEX_CONCURRENTLY = "drop_index_concurrently"
    BACKFILL = "backfill"  # chunked UPDATE over the primary key, checkpointed after each chunk
    NOOP = "noop"  # nothing to do on the database; kept so the plan documents why
    COPY_TABLE = "copy_table"  # a copy tool's phase (copy, cut-over, cleanup), see CopyWork
    SHADOW_TABLE = "shadow_table"  # a PostgreSQL shadow-table rewrite's phase, see ShadowWork


class BackfillWork(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    table: str
    column: str
    expression: str
    batch_size: int
    pause_ms: int
    chunk_target_ms: int = 200
    adaptive: bool = True
    # Set for a shadow-table copy: chunks copy rows into the shadow table instead of updating a column.
    shadow: ShadowWork | None = None


class Step(BaseModel):
    """One side effect. `id` is deterministic: it is the checkpoint and idempotency key."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    stage: Stage
    operation_index: int
    action: StepAction
    description: str
    sql: str | None = None
    transactional: bool = True
    lock_timeout_ms: int | None = None
    table: str
    index_name: str | None = None
    backfill: BackfillWork | None = None
    copy_work: CopyWork | None = None
    shadow: ShadowWork | None = None
    risk: str = ""
    estimate: str = ""
    rollback: Step | None = None
    # Set when no inverse exists; a rollback that would need this step undone is refused up front.
    irreversible_reason: str | None = None


class StagePlan(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    stage: Stage
    purpose: str
    steps: list[Step] = Field(default_factory=list)


class Plan(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    migration: str
    engine: str
    lock_timeout_ms: int
    ddl_attempts: int
    stages: list[StagePlan]

    def stage(self, stage: Stage) -> StagePlan:
        for planned in self.stages:
            if planned.stage is stage:
                return planned
        raise KeyError(stage)

    def steps(self) -> list[Step]:
        return [step for planned in self.stages for step in planned.steps]

    def tables(self) -> list[str]:
        return sorted({step.table for step in self.steps()})
