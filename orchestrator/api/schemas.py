"""What the API answers with: the run as a pipeline or a person needs it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from orchestrator.domain.plan import Plan, Stage
from orchestrator.domain.run import BackfillTuning, MigrationEvent, Progress, Run, Waiting, WaitKind
from orchestrator.domain.states import RunStatus
from orchestrator.domain.usage import MIN_OVERRIDE_REASON, ContractProof, UsageOverride


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
    # Why a stage that was asked for has not started: a maintenance window, a scheduled time, or the
    # target's copy queue (with the place in it).
    waiting: Waiting | None = None
    queued: bool = False
    queue_position: int | None = None
    created_at: datetime
    updated_at: datetime
    plan: Plan | None = None
    # The contract safety proof: the latest evidence and any override (the gate's raw counters stay
    # in the store).
    contract_proof: ContractProof | None = None
    usage_override: UsageOverride | None = None

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
            waiting=run.waiting,
            queued=run.waiting is not None and run.waiting.kind is WaitKind.QUEUE,
            queue_position=run.waiting.position
            if run.waiting is not None and run.waiting.kind is WaitKind.QUEUE
            else None,
            created_at=run.created_at,
            updated_at=run.updated_at,
            plan=run.plan if with_plan else None,
            contract_proof=run.contract_proof.last if run.contract_proof is not None else None,
            usage_override=run.contract_proof.override if run.contract_proof is not None else None,
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


class CreateResult(BaseModel):
    migration: RunView
    plan_text: str


class UsageOverrideRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    reason: str = Field(
        min_length=MIN_OVERRIDE_REASON,
        max_length=2000,
        description="Why contract may drop what was seen in use since the deploy gate; recorded with the caller.",
    )


class StageRequest(BaseModel):
    """Optional body of a stage start: a time to start at instead of now; for contract, an override
    of the usage proof."""

    model_config = ConfigDict(extra="forbid")

    at: AwareDatetime | None = Field(
        default=None, description="Start no earlier than this (ISO 8601 with a zone); the run waits visibly."
    )
    override_usage: UsageOverrideRequest | None = Field(
        default=None,
        description="Contract only: run it even though its safety proof saw the dropped objects in use.",
    )


class LeadershipInfo(BaseModel):
    replica: str = Field(description="This replica's identity.")
    leader: bool = Field(description="Whether this replica runs migrations now.")
    epoch: int | None = Field(description="This replica's fencing epoch while it leads.")
    current_epoch: int
    current_holder: str | None
    draining: bool


class Problem(BaseModel):
    """RFC 9457 problem details."""

    model_config = ConfigDict(extra="allow")

    type: str = "about:blank"
    title: str
    status: int
    detail: str
