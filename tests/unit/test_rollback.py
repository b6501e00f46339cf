"""rollback_steps: inverses of what was started, newest first; refuses when a done step has none."""

from __future__ import annotations

import pytest

from orchestrator.domain.errors import IrreversibleError
from orchestrator.domain.plan import Plan, Stage
from orchestrator.engine.planner import plan_migration
from orchestrator.engine.rollback import rollback_steps
from orchestrator.ports import StepCheckpoint
from tests.unit.fakes import make_spec

ADD_A = {"add_column": {"table": "users", "column": {"name": "a", "type": "text"}}}
ADD_B = {"add_column": {"table": "users", "column": {"name": "b", "type": "text"}}}
INDEX_A = {"create_index": {"table": "users", "name": "users_a_idx", "columns": ["a"]}}
BACKFILL_A = {"backfill": {"table": "users", "column": "a", "expression": "lower(email)"}}
BACKFILL_EXISTING = {"backfill": {"table": "users", "column": "email", "expression": "lower(email)"}}
DROP_LEGACY = {"drop_column": {"table": "users", "column": "legacy"}}

ADD_A_ID = "expand.00.add_column.a"
ADD_B_ID = "expand.01.add_column.b"
INDEX_A_ID = "expand.02.create_index.users_a_idx"
BACKFILL_A_ID = "backfill.03.backfill.a"
DROP_ID = "contract.04.drop_column.legacy"


@pytest.fixture
def plan() -> Plan:
    return plan_migration(make_spec(ADD_A, ADD_B, INDEX_A, BACKFILL_A, DROP_LEGACY))


def cp(*pairs: tuple[str, str]) -> dict[str, StepCheckpoint]:
    return {step_id: StepCheckpoint(step_id, state, 1) for step_id, state in pairs}


def test_plan_ids_are_what_these_tests_assume(plan: Plan) -> None:
    assert [step.id for step in plan.steps()] == [ADD_A_ID, ADD_B_ID, INDEX_A_ID, BACKFILL_A_ID, DROP_ID]


def test_nothing_started_means_nothing_to_undo(plan: Plan) -> None:
    assert rollback_steps(plan, {}) == []


def test_inverses_of_done_steps_in_reverse_order(plan: Plan) -> None:
    steps = rollback_steps(plan, cp((ADD_A_ID, "done"), (ADD_B_ID, "done"), (INDEX_A_ID, "done")))
    assert [step.id for step in steps] == [
        f"rollback.{INDEX_A_ID}",
        f"rollback.{ADD_B_ID}",
        f"rollback.{ADD_A_ID}",
    ]
    assert [step.sql for step in steps] == [
        'DROP INDEX CONCURRENTLY IF EXISTS "users_a_idx"',
        'ALTER TABLE "users" DROP COLUMN IF EXISTS "b"',
        'ALTER TABLE "users" DROP COLUMN IF EXISTS "a"',
    ]
    assert all(step.stage is Stage.ROLLBACK for step in steps)


def test_order_follows_the_plan_not_the_checkpoint_mapping(plan: Plan) -> None:
    # The mapping's insertion order is irrelevant: the plan's order decides.
    steps = rollback_steps(plan, cp((INDEX_A_ID, "done"), (ADD_A_ID, "done")))
    assert [step.id for step in steps] == [f"rollback.{INDEX_A_ID}", f"rollback.{ADD_A_ID}"]


def test_a_started_step_is_undone_too(plan: Plan) -> None:
    # An index build that died half way leaves an INVALID index; its (idempotent) inverse is included.
    steps = rollback_steps(plan, cp((ADD_A_ID, "done"), (ADD_B_ID, "done"), (INDEX_A_ID, "started")))
    assert steps[0].id == f"rollback.{INDEX_A_ID}"
    assert len(steps) == 3


def test_untouched_steps_are_skipped(plan: Plan) -> None:
    steps = rollback_steps(plan, cp((ADD_A_ID, "done")))
    assert [step.id for step in steps] == [f"rollback.{ADD_A_ID}"]


def test_checkpoints_for_unknown_ids_are_ignored(plan: Plan) -> None:
    steps = rollback_steps(plan, cp((ADD_A_ID, "done"), ("expand.99.add_column.zzz", "done")))
    assert [step.id for step in steps] == [f"rollback.{ADD_A_ID}"]


def test_reversible_backfill_has_no_inverse_of_its_own(plan: Plan) -> None:
    # The backfill of a column this spec added is undone by dropping that column.
    steps = rollback_steps(
        plan, cp((ADD_A_ID, "done"), (ADD_B_ID, "done"), (INDEX_A_ID, "done"), (BACKFILL_A_ID, "done"))
    )
    assert [step.id for step in steps] == [
        f"rollback.{INDEX_A_ID}",
        f"rollback.{ADD_B_ID}",
        f"rollback.{ADD_A_ID}",
    ]


def test_a_done_drop_column_blocks_rollback(plan: Plan) -> None:
    done = cp(*[(step_id, "done") for step_id in (ADD_A_ID, ADD_B_ID, INDEX_A_ID, BACKFILL_A_ID, DROP_ID)])
    with pytest.raises(IrreversibleError) as caught:
        rollback_steps(plan, done)
    message = str(caught.value)
    assert DROP_ID in message
    assert "dropping users.legacy discards its values" in message


def test_a_done_backfill_of_an_existing_column_blocks_rollback() -> None:
    plan = plan_migration(make_spec(ADD_A, BACKFILL_EXISTING))
    [add, backfill] = plan.steps()
    with pytest.raises(IrreversibleError, match=backfill.id):
        rollback_steps(plan, cp((add.id, "done"), (backfill.id, "done")))


def test_every_blocking_step_is_named() -> None:
    plan = plan_migration(make_spec(BACKFILL_EXISTING, DROP_LEGACY))
    ids = [step.id for step in plan.steps()]
    with pytest.raises(IrreversibleError) as caught:
        rollback_steps(plan, cp(*[(step_id, "done") for step_id in ids]))
    for step_id in ids:
        assert step_id in str(caught.value)


def test_refusal_is_up_front_even_when_other_steps_could_be_undone(plan: Plan) -> None:
    with pytest.raises(IrreversibleError):
        rollback_steps(plan, cp((ADD_A_ID, "done"), (DROP_ID, "done")))


def test_a_started_but_not_done_irreversible_step_blocks(plan: Plan) -> None:
    """A drop_column that was started may have committed before its checkpoint: its outcome is
    unknown, so reversing DDL around it is refused and left to a human."""
    with pytest.raises(IrreversibleError, match=r"\(started\)"):
        rollback_steps(
            plan,
            cp(
                (ADD_A_ID, "done"),
                (ADD_B_ID, "done"),
                (INDEX_A_ID, "done"),
                (BACKFILL_A_ID, "done"),
                (DROP_ID, "started"),
            ),
        )


def test_a_started_backfill_of_an_existing_column_blocks() -> None:
    """The finished chunks of a started backfill already overwrote existing values."""
    plan = plan_migration(make_spec(ADD_A, BACKFILL_EXISTING))
    [add, backfill] = plan.steps()
    with pytest.raises(IrreversibleError, match=backfill.id):
        rollback_steps(plan, cp((add.id, "done"), (backfill.id, "started")))


def test_steps_already_rolled_back_are_still_listed(plan: Plan) -> None:
    """Forward checkpoints stay 'done' during a rollback; the runner skips inverses already
    checkpointed as rolled_back (under their own rollback.* ids), so a retried rollback replans all."""
    first = rollback_steps(plan, cp((ADD_A_ID, "done"), (ADD_B_ID, "done")))
    again = rollback_steps(
        plan, cp((ADD_A_ID, "done"), (ADD_B_ID, "done"), (f"rollback.{ADD_B_ID}", "rolled_back"))
    )
    assert again == first
