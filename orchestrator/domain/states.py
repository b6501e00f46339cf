"""The run state machine: legal transitions only, as a pure table."""

from __future__ import annotations

from enum import StrEnum

from orchestrator.domain.errors import IllegalTransitionError
from orchestrator.domain.plan import Stage


class RunStatus(StrEnum):
    PENDING = "pending"
    EXPANDING = "expanding"
    AWAITING_DEPLOY = "awaiting_deploy"
    AWAITING_BACKFILL = "awaiting_backfill"
    BACKFILLING = "backfilling"
    AWAITING_CONTRACT = "awaiting_contract"
    CONTRACTING = "contracting"
    COMPLETED = "completed"
    PAUSED = "paused"
    FAILED = "failed"
    ROLLING_BACK = "rolling_back"
    ROLLED_BACK = "rolled_back"
    CANCELLED = "cancelled"


class Action(StrEnum):
    """What a caller (pipeline, on-call, the runner itself) asks of a run."""

    START_EXPAND = "expand"
    APPROVE_DEPLOY = "approve_deploy"
    START_BACKFILL = "backfill"
    START_CONTRACT = "contract"
    ROLLBACK = "rollback"
    PAUSE = "pause"
    RESUME = "resume"
    CANCEL = "cancel"
    # Internal: reported by the runner, never exposed to callers.
    STAGE_SUCCEEDED = "stage_succeeded"
    STAGE_FAILED = "stage_failed"


TERMINAL = frozenset({RunStatus.COMPLETED, RunStatus.ROLLED_BACK, RunStatus.CANCELLED})
# Statuses in which the runner owns the migration and a task must be running (resumed after a restart).
RUNNING = frozenset(
    {RunStatus.EXPANDING, RunStatus.BACKFILLING, RunStatus.CONTRACTING, RunStatus.ROLLING_BACK}
)
INTERNAL_ACTIONS = frozenset({Action.STAGE_SUCCEEDED, Action.STAGE_FAILED})

STAGE_START = {
    Stage.EXPAND: Action.START_EXPAND,
    Stage.BACKFILL: Action.START_BACKFILL,
    Stage.CONTRACT: Action.START_CONTRACT,
}
RUNNING_STATUS_OF_STAGE = {
    Stage.EXPAND: RunStatus.EXPANDING,
    Stage.BACKFILL: RunStatus.BACKFILLING,
    Stage.CONTRACT: RunStatus.CONTRACTING,
}
STAGE_OF_RUNNING_STATUS = {status: stage for stage, status in RUNNING_STATUS_OF_STAGE.items()}

_TABLE: dict[tuple[RunStatus, Action], RunStatus] = {
    (RunStatus.PENDING, Action.START_EXPAND): RunStatus.EXPANDING,
    (RunStatus.PENDING, Action.CANCEL): RunStatus.CANCELLED,
    (RunStatus.EXPANDING, Action.STAGE_SUCCEEDED): RunStatus.AWAITING_DEPLOY,
    (RunStatus.AWAITING_DEPLOY, Action.APPROVE_DEPLOY): RunStatus.AWAITING_BACKFILL,
    (RunStatus.AWAITING_BACKFILL, Action.START_BACKFILL): RunStatus.BACKFILLING,
    (RunStatus.BACKFILLING, Action.STAGE_SUCCEEDED): RunStatus.AWAITING_CONTRACT,
    (RunStatus.AWAITING_CONTRACT, Action.START_CONTRACT): RunStatus.CONTRACTING,
    (RunStatus.CONTRACTING, Action.STAGE_SUCCEEDED): RunStatus.COMPLETED,
    (RunStatus.ROLLING_BACK, Action.STAGE_SUCCEEDED): RunStatus.ROLLED_BACK,
}
for _running in RUNNING:
    _TABLE[(_running, Action.STAGE_FAILED)] = RunStatus.FAILED
for _running in RUNNING - {RunStatus.ROLLING_BACK}:
    _TABLE[(_running, Action.PAUSE)] = RunStatus.PAUSED
# Rollback is offered wherever something may have been done and the run is not already rolled back or
# cancelled; whether the work done so far can actually be reversed is decided from the plan (see
# engine.rollback), not here. A completed run may be reverted too: contract's archived columns, tables
# set aside and swapped-out shadow tables exist for exactly that.
for _status in (
    RunStatus.COMPLETED,
    RunStatus.EXPANDING,
    RunStatus.AWAITING_DEPLOY,
    RunStatus.AWAITING_BACKFILL,
    RunStatus.BACKFILLING,
    RunStatus.AWAITING_CONTRACT,
    RunStatus.CONTRACTING,
    RunStatus.PAUSED,
    RunStatus.FAILED,
):
    _TABLE[(_status, Action.ROLLBACK)] = RunStatus.ROLLING_BACK


def next_status(
    current: RunStatus, action: Action, *, stage: Stage | None = None, paused_from: RunStatus | None = None
) -> RunStatus:
    """The status `action` leads to from `current`, or IllegalTransitionError listing what is allowed.

    `stage` is the stage the run was last in; it decides what a failed run may retry. `paused_from` is
    where a paused run returns on resume.
    """
    if current is RunStatus.PAUSED and action is Action.RESUME and paused_from is not None:
        return paused_from
    if current is RunStatus.FAILED and stage is not None:
        retry = _retry_action(stage)
        if action is retry:
            return RunStatus.ROLLING_BACK if stage is Stage.ROLLBACK else RUNNING_STATUS_OF_STAGE[stage]
    target = _TABLE.get((current, action))
    if target is None:
        raise IllegalTransitionError(current.value, action.value, allowed_actions(current, stage=stage))
    return target


def _retry_action(stage: Stage) -> Action | None:
    if stage is Stage.ROLLBACK:
        return Action.ROLLBACK
    return STAGE_START.get(stage)


def allowed_actions(current: RunStatus, *, stage: Stage | None = None) -> list[str]:
    """The caller-facing actions legal in `current`, for 409 answers and the status page."""
    allowed = [
        action.value for (status, action) in _TABLE if status is current and action not in INTERNAL_ACTIONS
    ]
    if current is RunStatus.PAUSED:
        allowed.append(Action.RESUME.value)
    if current is RunStatus.FAILED and stage is not None:
        retry = _retry_action(stage)
        if retry is not None and retry.value not in allowed:
            allowed.append(retry.value)
    return sorted(set(allowed))
