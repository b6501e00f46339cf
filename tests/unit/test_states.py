"""The run state machine as a table: every legal move, and the refusals that list what is legal."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from orchestrator.domain.errors import IllegalTransitionError
from orchestrator.domain.plan import Stage
from orchestrator.domain.run import Run
from orchestrator.domain.spec import parse_spec
from orchestrator.domain.states import (
    INTERNAL_ACTIONS,
    RUNNING,
    TERMINAL,
    Action,
    RunStatus,
    allowed_actions,
    next_status,
)
from orchestrator.engine.planner import plan_migration

S = RunStatus
A = Action

HAPPY_PATH = [
    (S.PENDING, A.START_EXPAND, S.EXPANDING),
    (S.EXPANDING, A.STAGE_SUCCEEDED, S.AWAITING_DEPLOY),
    (S.AWAITING_DEPLOY, A.APPROVE_DEPLOY, S.AWAITING_BACKFILL),
    (S.AWAITING_BACKFILL, A.START_BACKFILL, S.BACKFILLING),
    (S.BACKFILLING, A.STAGE_SUCCEEDED, S.AWAITING_CONTRACT),
    (S.AWAITING_CONTRACT, A.START_CONTRACT, S.CONTRACTING),
    (S.CONTRACTING, A.STAGE_SUCCEEDED, S.COMPLETED),
]


def test_happy_path_walks_to_completed() -> None:
    status = S.PENDING
    for expected_from, action, expected_to in HAPPY_PATH:
        assert status is expected_from
        status = next_status(status, action)
        assert status is expected_to
    assert status is S.COMPLETED


# Every caller-facing action legal in each status (without a failed stage or paused_from).
ALLOWED = {
    S.PENDING: ["cancel", "expand"],
    S.EXPANDING: ["pause", "rollback"],
    S.AWAITING_DEPLOY: ["approve_deploy", "rollback"],
    S.AWAITING_BACKFILL: ["backfill", "rollback"],
    S.BACKFILLING: ["pause", "rollback"],
    S.AWAITING_CONTRACT: ["contract", "rollback"],
    S.CONTRACTING: ["pause", "rollback"],
    S.PAUSED: ["resume", "rollback"],
    S.FAILED: ["rollback"],
    S.ROLLING_BACK: [],
    S.COMPLETED: ["rollback"],  # a revert, when contract kept what it dropped
    S.ROLLED_BACK: [],
    S.CANCELLED: [],
}


def test_allowed_table_covers_every_status() -> None:
    assert set(ALLOWED) == set(RunStatus)


@pytest.mark.parametrize(("status", "allowed"), ALLOWED.items())
def test_allowed_actions(status: RunStatus, allowed: list[str]) -> None:
    assert allowed_actions(status) == allowed


@pytest.mark.parametrize("status", list(RunStatus))
@pytest.mark.parametrize("action", [a for a in Action if a not in INTERNAL_ACTIONS and a is not A.RESUME])
def test_caller_actions_legal_exactly_when_allowed(status: RunStatus, action: Action) -> None:
    if action.value in ALLOWED[status]:
        next_status(status, action)
    else:
        with pytest.raises(IllegalTransitionError) as caught:
            next_status(status, action)
        error = caught.value
        assert error.allowed == ALLOWED[status]
        assert (error.current, error.action) == (status.value, action.value)
        assert f"cannot {action.value} a migration that is {status.value}" in str(error)


@pytest.mark.parametrize(
    ("status", "action"),
    [
        (S.PENDING, A.START_BACKFILL),
        (S.PENDING, A.APPROVE_DEPLOY),
        (S.EXPANDING, A.START_EXPAND),
        (S.AWAITING_DEPLOY, A.START_BACKFILL),  # the deploy gate cannot be skipped
        (S.AWAITING_DEPLOY, A.START_CONTRACT),
        (S.AWAITING_BACKFILL, A.START_CONTRACT),  # nor the backfill
        (S.BACKFILLING, A.START_CONTRACT),
        (S.AWAITING_CONTRACT, A.CANCEL),
        (S.ROLLING_BACK, A.PAUSE),
        (S.ROLLING_BACK, A.ROLLBACK),
        (S.PAUSED, A.PAUSE),
        (S.PAUSED, A.CANCEL),
    ],
)
def test_illegal_moves_name_the_legal_ones(status: RunStatus, action: Action) -> None:
    with pytest.raises(IllegalTransitionError) as caught:
        next_status(status, action)
    assert caught.value.allowed == allowed_actions(status)
    assert action.value not in caught.value.allowed


@pytest.mark.parametrize("status", sorted(RUNNING))
def test_running_statuses_fail_on_stage_failure(status: RunStatus) -> None:
    assert next_status(status, A.STAGE_FAILED) is S.FAILED


@pytest.mark.parametrize("status", sorted(set(RunStatus) - RUNNING))
@pytest.mark.parametrize("action", sorted(INTERNAL_ACTIONS))
def test_stage_outcomes_only_from_running_statuses(status: RunStatus, action: Action) -> None:
    with pytest.raises(IllegalTransitionError):
        next_status(status, action)


def test_internal_actions_are_never_offered_to_callers() -> None:
    for status in RunStatus:
        for stage in (None, *Stage):
            assert not set(allowed_actions(status, stage=stage)) & {a.value for a in INTERNAL_ACTIONS}


def test_rolling_back_succeeds_into_rolled_back() -> None:
    assert next_status(S.ROLLING_BACK, A.STAGE_SUCCEEDED) is S.ROLLED_BACK


@pytest.mark.parametrize(
    "status",
    [
        S.EXPANDING,
        S.AWAITING_DEPLOY,
        S.AWAITING_BACKFILL,
        S.BACKFILLING,
        S.AWAITING_CONTRACT,
        S.CONTRACTING,
        S.PAUSED,
        S.FAILED,
    ],
)
def test_rollback_from_allowed_states(status: RunStatus) -> None:
    assert next_status(status, A.ROLLBACK) is S.ROLLING_BACK


@pytest.mark.parametrize("status", [S.PENDING, S.ROLLING_BACK, S.ROLLED_BACK, S.CANCELLED])
def test_rollback_refused_elsewhere(status: RunStatus) -> None:
    with pytest.raises(IllegalTransitionError):
        next_status(status, A.ROLLBACK)


def test_pending_can_be_cancelled() -> None:
    assert next_status(S.PENDING, A.CANCEL) is S.CANCELLED


# --- pause / resume ----------------------------------------------------------------------------


@pytest.mark.parametrize("status", [S.EXPANDING, S.BACKFILLING, S.CONTRACTING])
def test_pause_and_resume_return_to_where_the_run_was(status: RunStatus) -> None:
    paused = next_status(status, A.PAUSE)
    assert paused is S.PAUSED
    assert next_status(paused, A.RESUME, paused_from=status) is status


def test_resume_without_paused_from_is_refused() -> None:
    with pytest.raises(IllegalTransitionError) as caught:
        next_status(S.PAUSED, A.RESUME)
    assert caught.value.allowed == ["resume", "rollback"]


@pytest.mark.parametrize("status", [s for s in RunStatus if s is not S.PAUSED])
def test_resume_only_from_paused(status: RunStatus) -> None:
    with pytest.raises(IllegalTransitionError):
        next_status(status, A.RESUME, paused_from=S.EXPANDING)


@pytest.mark.parametrize("status", [S.PENDING, S.AWAITING_DEPLOY, S.AWAITING_BACKFILL, S.AWAITING_CONTRACT])
def test_nothing_to_pause_while_waiting(status: RunStatus) -> None:
    with pytest.raises(IllegalTransitionError):
        next_status(status, A.PAUSE)


# --- failed: retry of its own stage only -------------------------------------------------------


@pytest.mark.parametrize(
    ("stage", "retry", "back_to"),
    [
        (Stage.EXPAND, A.START_EXPAND, S.EXPANDING),
        (Stage.BACKFILL, A.START_BACKFILL, S.BACKFILLING),
        (Stage.CONTRACT, A.START_CONTRACT, S.CONTRACTING),
        (Stage.ROLLBACK, A.ROLLBACK, S.ROLLING_BACK),
    ],
)
def test_failed_retries_its_own_stage(stage: Stage, retry: Action, back_to: RunStatus) -> None:
    assert next_status(S.FAILED, retry, stage=stage) is back_to
    assert retry.value in allowed_actions(S.FAILED, stage=stage)
    for other in (A.START_EXPAND, A.START_BACKFILL, A.START_CONTRACT):
        if other is retry:
            continue
        with pytest.raises(IllegalTransitionError) as caught:
            next_status(S.FAILED, other, stage=stage)
        assert caught.value.allowed == allowed_actions(S.FAILED, stage=stage)
        assert other.value not in caught.value.allowed


@pytest.mark.parametrize(
    ("stage", "allowed"),
    [
        (None, ["rollback"]),
        (Stage.EXPAND, ["expand", "rollback"]),
        (Stage.DEPLOY_GATE, ["rollback"]),
        (Stage.BACKFILL, ["backfill", "rollback"]),
        (Stage.CONTRACT, ["contract", "rollback"]),
        (Stage.ROLLBACK, ["rollback"]),
    ],
)
def test_failed_allowed_actions_depend_on_stage(stage: Stage | None, allowed: list[str]) -> None:
    assert allowed_actions(S.FAILED, stage=stage) == allowed


def test_failed_without_a_stage_cannot_retry_anything() -> None:
    for action in (A.START_EXPAND, A.START_BACKFILL, A.START_CONTRACT, A.RESUME, A.CANCEL):
        with pytest.raises(IllegalTransitionError):
            next_status(S.FAILED, action)


def test_stage_only_matters_for_failed_runs() -> None:
    # A stage does not turn a retry action into a legal move anywhere else.
    with pytest.raises(IllegalTransitionError):
        next_status(S.AWAITING_CONTRACT, A.START_EXPAND, stage=Stage.EXPAND)
    assert allowed_actions(S.AWAITING_CONTRACT, stage=Stage.EXPAND) == ["contract", "rollback"]


# --- terminal states ---------------------------------------------------------------------------


def test_a_completed_run_may_only_be_reverted() -> None:
    assert allowed_actions(S.COMPLETED) == ["rollback"]
    assert next_status(S.COMPLETED, A.ROLLBACK) is S.ROLLING_BACK
    for action in set(Action) - {A.ROLLBACK}:
        with pytest.raises(IllegalTransitionError) as caught:
            next_status(S.COMPLETED, action, paused_from=S.EXPANDING)
        assert caught.value.allowed == ["rollback"]


@pytest.mark.parametrize("status", sorted(TERMINAL - {S.COMPLETED}))
@pytest.mark.parametrize("action", list(Action))
def test_terminal_states_allow_nothing(status: RunStatus, action: Action) -> None:
    for stage in (None, *Stage):
        assert allowed_actions(status, stage=stage) == []
        with pytest.raises(IllegalTransitionError) as caught:
            next_status(status, action, stage=stage, paused_from=S.EXPANDING)
        assert caught.value.allowed == []


@pytest.mark.parametrize(
    ("operation", "allowed"),
    [
        ({"add_column": {"table": "t", "column": {"name": "c", "type": "int"}}}, ["rollback"]),
        ({"drop_column": {"table": "t", "column": "c", "archive": True}}, ["rollback"]),
        ({"drop_column": {"table": "t", "column": "c"}}, []),  # its values are gone
    ],
)
def test_a_completed_run_offers_a_revert_only_when_every_step_has_an_inverse(
    operation: dict[str, object], allowed: list[str]
) -> None:
    spec = parse_spec({"name": "m", "operations": [operation]})
    now = datetime.now(UTC)
    run = Run(
        id="m-1", name="m", target="app", engine="postgres", status=S.COMPLETED, spec=spec,
        plan=plan_migration(spec), created_at=now, updated_at=now,
    )  # fmt: skip
    assert run.allowed_actions == allowed
