"""The persisted state of one migration, and the events it emits."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from orchestrator.domain.plan import Plan, Stage
from orchestrator.domain.spec import MigrationSpec
from orchestrator.domain.states import RunStatus, allowed_actions
from orchestrator.domain.usage import ContractProofRecord


class BackfillProgress(BaseModel):
    model_config = ConfigDict(frozen=True)

    step_id: str
    rows_done: int = 0
    rows_total_estimate: int = 0
    rows_per_second: float = 0.0
    eta_seconds: float | None = None
    chunk_size: int = 0
    throttled: str | None = None  # why the backfill is holding, while it is


class BackfillTuning(BaseModel):
    """Run-time overrides of a migration's backfill pacing, set through the API while it runs."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    chunk_target_ms: int | None = Field(
        default=None, ge=10, le=60_000, description="Time target per chunk; the chunk size adapts to it."
    )
    batch_size: int | None = Field(
        default=None, ge=1, le=100_000, description="A fixed chunk size; turns the adaptation off."
    )
    pause_ms: int | None = Field(default=None, ge=0, le=60_000, description="Pause between chunks.")


class Progress(BaseModel):
    model_config = ConfigDict(frozen=True)

    steps_done: int = 0
    steps_total: int = 0
    backfill: BackfillProgress | None = None


class WaitKind(StrEnum):
    WINDOW = "window"  # the stage may only start inside one of the target's maintenance windows
    SCHEDULE = "schedule"  # the pipeline asked for the stage to start at a later time
    QUEUE = "queue"  # too many migrations are copying on the same target; waits its turn


class Waiting(BaseModel):
    """A stage that was asked for and is held back, visibly: the run view and an event say why."""

    model_config = ConfigDict(frozen=True)

    kind: WaitKind
    stage: Stage
    reason: str
    since: datetime
    until: datetime | None = None  # when it is expected to start: the window opening or the asked time
    position: int | None = None  # 1-based place in the target's copy queue
    actor: str | None = None  # who asked for the stage
    # The reason given to start contract despite usage, for the held start it applies to (audited).
    override_usage: str | None = None


class Run(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    name: str
    target: str
    engine: str
    status: RunStatus
    stage: Stage | None = None
    paused_from: RunStatus | None = None
    error: str | None = None
    spec: MigrationSpec
    plan: Plan
    progress: Progress = Field(default_factory=Progress)
    created_at: datetime
    updated_at: datetime
    # Where the notifier keeps its handle (a Slack channel and message ts); opaque to the engine.
    notification_ref: dict[str, Any] = Field(default_factory=dict)
    tuning: BackfillTuning = Field(default_factory=BackfillTuning)
    # Why a started stage has not begun yet (maintenance window, scheduled time, copy queue); None
    # when nothing is holding it. Every transition clears it.
    waiting: Waiting | None = None
    # The contract safety proof: usage counters at the deploy gate, the latest proof, an override.
    contract_proof: ContractProofRecord | None = None

    @property
    def allowed_actions(self) -> list[str]:
        allowed = allowed_actions(self.status, stage=self.stage)
        if self.status is RunStatus.COMPLETED and not self.revertible:
            allowed.remove("rollback")
        return allowed

    @property
    def revertible(self) -> bool:
        """Whether a completed run can be reverted: every step it ran has an inverse (contract kept
        what it dropped: an archive, a table set aside, the pre-swap table)."""
        return not any(step.rollback is None and step.irreversible_reason for step in self.plan.steps())


class EventType(StrEnum):
    CREATED = "created"
    TRANSITION = "transition"
    STEP_STARTED = "step_started"
    STEP_FINISHED = "step_finished"
    STEP_RETRY = "step_retry"
    STEP_FAILED = "step_failed"
    BACKFILL_PROGRESS = "backfill_progress"
    STAGE_STARTED = "stage_started"
    STAGE_FINISHED = "stage_finished"
    STAGE_FAILED = "stage_failed"
    TUNED = "tuned"
    THROTTLED = "throttled"
    UNTHROTTLED = "unthrottled"
    BACKFILL_VERIFIED = "backfill_verified"
    POLICY = "policy"  # the throttle policy paused, rolled back or paged
    COPY_PROGRESS = "copy_progress"  # a copy tool's phase, progress and notes (tool chosen, leftovers)
    WAITING = "waiting"  # a stage is held: outside a maintenance window, scheduled later, or queued
    USAGE_BASELINE = "usage_baseline"  # usage counters of what contract drops, read at the deploy gate
    CONTRACT_PROOF = "contract_proof"  # the evidence that nothing used it since the gate, or what did
    USAGE_OVERRIDE = "usage_override"  # a person let contract run despite usage: who and why (audit)
    # A rollback runbook: chosen and confirmed (phase started), each of its steps before and after it
    # runs (step_started, step_finished), and finished; data names the runbook, its digest, the step.
    RUNBOOK = "runbook"
    NOTICE = "notice"  # a runbook's notify step: a line for the people watching the migration
    EMERGENCY_STOP = "emergency_stop"  # paused by an emergency stop of its whole target: who and why


class MigrationEvent(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: int = 0  # assigned by the store; events are append-only and ordered by id
    migration_id: str
    at: datetime
    type: EventType
    stage: Stage | None = None
    step_id: str | None = None
    message: str
    data: dict[str, Any] = Field(default_factory=dict)
