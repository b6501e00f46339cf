"""The shadow-table path of alter_column: when it is chosen, the steps it plans in each stage, what undoes
them, and what it refuses with the field to fix."""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator.domain.errors import SpecError
from orchestrator.domain.operations import AlterColumn
from orchestrator.domain.plan import Stage, Step, StepAction
from orchestrator.domain.schema import ColumnInfo, ConstraintInfo, TableInfo
from orchestrator.domain.shadow import (
    ShadowPhase,
    key_type_change_problem,
    old_index_name,
    shadow_index_name,
)
from orchestrator.engine.planner.context import PlanContext
from orchestrator.engine.planner.postgres.shadow import needs_shadow, plan_shadow
from orchestrator.engine.rollback import rollback_steps
from orchestrator.ports import StepCheckpoint


def accounts(**overrides: Any) -> TableInfo:
    columns = {
        "id": ColumnInfo(name="id", type="integer", nullable=False),
        "email": ColumnInfo(name="email", type="text", nullable=False),
        "score": ColumnInfo(name="score", type="integer", nullable=True),
    }
    return TableInfo(name="accounts", columns=columns, primary_key=["id"], **overrides)


def alter(**fields: Any) -> AlterColumn:
    return AlterColumn.model_validate({"table": "accounts", "column": "id", "type": "bigint", **fields})


def planned(op: AlterColumn, table: TableInfo | None = None, *, offline: bool = False) -> PlanContext:
    tables = None if offline else {op.table: table if table is not None else accounts()}
    context = PlanContext(lock_timeout_ms=1000, tables=tables)
    plan_shadow(op, 3, context)
    return context


def problems_of(
    op: AlterColumn, table: TableInfo | None = None, context: PlanContext | None = None
) -> list[str]:
    context = context or PlanContext(lock_timeout_ms=1000, tables={op.table: table or accounts()})
    with pytest.raises(SpecError) as caught:
        plan_shadow(op, 0, context)
    return [f"{field}: {message}" for field, message in caught.value.problems]


@pytest.mark.parametrize(
    ("fields", "table", "expected"),
    [
        ({"strategy": "shadow", "column": "score"}, accounts(), True),
        ({"strategy": "sync_column"}, accounts(), False),
        ({}, accounts(), True),  # auto: the primary key's type changes
        ({"column": "score"}, accounts(), False),  # auto: not a key column
        ({"type": None, "nullable": False}, accounts(), False),  # auto: no type change
        ({}, None, False),  # auto, offline: decided against the live table when submitted
    ],
)
def test_when_the_shadow_table_is_chosen(
    fields: dict[str, Any], table: TableInfo | None, expected: bool
) -> None:
    assert needs_shadow(alter(**fields), table) is expected


def test_each_stage_gets_its_phase_and_the_swap_ends_backfill() -> None:
    steps = planned(alter()).steps
    shape = {
        stage: [(step.id, step.action, step.shadow.phase if step.shadow else None) for step in found]
        for stage, found in steps.items()
    }
    assert shape == {
        Stage.EXPAND: [
            ("expand.03.alter_column.id.shadow_prepare", StepAction.SHADOW_TABLE, ShadowPhase.PREPARE)
        ],
        Stage.BACKFILL: [
            ("backfill.03.alter_column.id.shadow_copy", StepAction.BACKFILL, None),
            ("backfill.03.alter_column.id.shadow_build", StepAction.SHADOW_TABLE, ShadowPhase.BUILD),
            ("backfill.03.alter_column.id.shadow_swap", StepAction.SHADOW_TABLE, ShadowPhase.SWAP),
        ],
        Stage.CONTRACT: [
            ("contract.03.alter_column.id.shadow_drop_old", StepAction.SHADOW_TABLE, ShadowPhase.DROP_OLD)
        ],
    }


def test_the_copy_is_a_backfill_of_the_shadow_with_the_cast_as_its_expression() -> None:
    [copy, *_] = planned(alter()).steps[Stage.BACKFILL]
    assert copy.backfill is not None and copy.backfill.shadow is not None
    assert copy.backfill.shadow.phase is ShadowPhase.COPY
    assert (copy.backfill.table, copy.backfill.column) == ("accounts", "id")
    assert copy.backfill.expression == "CAST((id) AS bigint)"
    # Nothing to undo on its own: the shadow table it fills goes with the prepare step's inverse.
    assert copy.rollback is None and copy.irreversible_reason is None


def test_the_expression_applies_up_and_the_new_type() -> None:
    op = alter(column="score", type="numeric(12,2)", up="score / 2.0", strategy="shadow")
    [copy, *_] = planned(op).steps[Stage.BACKFILL]
    assert copy.backfill is not None
    assert copy.backfill.expression == "CAST((score / 2.0) AS numeric(12,2))"
    assert copy.backfill.shadow is not None and copy.backfill.shadow.up == "score / 2.0"


def test_prepare_and_swap_are_undone_by_drop_and_swap_back_and_contract_closes_the_window() -> None:
    steps = planned(alter()).steps
    [prepare] = steps[Stage.EXPAND]
    swap = steps[Stage.BACKFILL][-1]
    [drop_old] = steps[Stage.CONTRACT]
    for step, phase in ((prepare, ShadowPhase.DROP), (swap, ShadowPhase.SWAP_BACK)):
        assert step.rollback is not None and step.rollback.shadow is not None
        assert step.rollback.id == f"rollback.{step.id}"
        assert step.rollback.stage is Stage.ROLLBACK
        assert step.rollback.shadow.phase is phase
        assert step.lock_timeout_ms == 1000
    assert drop_old.rollback is None
    assert drop_old.irreversible_reason is not None and "_osc_old_accounts" in drop_old.irreversible_reason


def test_a_rollback_after_the_swap_swaps_back_before_it_drops_the_shadow() -> None:
    from orchestrator.domain.plan import Plan, StagePlan

    steps = planned(alter()).steps
    plan = Plan(
        migration="m",
        engine="postgres",
        lock_timeout_ms=1000,
        ddl_attempts=3,
        stages=[StagePlan(stage=stage, purpose="", steps=found) for stage, found in steps.items()],
    )
    done = {
        step.id: StepCheckpoint(step.id, "done", 1)
        for step in plan.steps()
        if step.stage is not Stage.CONTRACT
    }
    phases = [step.shadow.phase for step in rollback_steps(plan, done) if step.shadow is not None]
    assert phases == [ShadowPhase.SWAP_BACK, ShadowPhase.DROP]


def test_planned_offline_it_still_plans_and_leaves_the_live_checks_to_the_prepare_step() -> None:
    context = planned(alter(strategy="shadow"), offline=True)
    assert [step.id for step in context.steps[Stage.EXPAND]] == ["expand.03.alter_column.id.shadow_prepare"]


@pytest.mark.parametrize(
    ("op", "table", "expected"),
    [
        (alter(column="nope", strategy="shadow"), accounts(), "column: column accounts.nope does not exist"),
        (
            alter(),
            TableInfo(name="accounts", columns=accounts().columns),
            "table: a shadow rewrite cannot carry accounts over: it has no primary key",
        ),
        (
            alter(),
            accounts(dependent_views=["active_accounts"]),
            "table: a shadow rewrite cannot carry accounts over: views active_accounts read it",
        ),
        (
            alter(),
            accounts(referenced_by=["orders.orders_account_fk"]),
            "table: a shadow rewrite cannot carry accounts over: foreign keys orders.orders_account_fk",
        ),
        (
            alter(),
            accounts(constraints={"accounts_org_fk": ConstraintInfo(name="accounts_org_fk", kind="f")}),
            "table: a shadow rewrite cannot carry accounts over: its foreign key accounts_org_fk",
        ),
        (alter(type="smallint"), accounts(), "type: narrowing a primary-key column from integer to smallint"),
        (alter(type="text"), accounts(), "type: a primary-key column can only be widened"),
        (alter(up="id + 1"), accounts(), "up: a primary-key column's values are carried by a cast"),
        (alter(down="email"), accounts(), "down: a primary-key column's values are carried by a cast"),
        (alter(up="id +", strategy="shadow"), accounts(), "up: not a valid SQL expression"),
    ],
)
def test_refusals_name_the_field(op: AlterColumn, table: TableInfo, expected: str) -> None:
    assert any(problem.startswith(expected) for problem in problems_of(op, table)), problems_of(op, table)


def test_an_identity_column_is_refused() -> None:
    columns = {
        **accounts().columns,
        "id": ColumnInfo(name="id", type="integer", nullable=False, identity=True),
    }
    table = TableInfo(name="accounts", columns=columns, primary_key=["id"])
    assert any("column id is an identity column" in problem for problem in problems_of(alter(), table))


def test_a_long_table_name_is_refused_because_the_work_tables_would_not_fit() -> None:
    op = AlterColumn.model_validate(
        {"table": "t" * 52, "column": "id", "type": "bigint", "strategy": "shadow"}
    )
    context = PlanContext(lock_timeout_ms=1000, tables=None)
    assert any(
        problem.startswith("table: a shadow rewrite names") for problem in problems_of(op, context=context)
    )


def test_other_changes_to_the_same_table_earlier_in_the_spec_are_refused() -> None:
    context = PlanContext(lock_timeout_ms=1000, tables={"accounts": accounts()})
    context.add(
        Step(
            id="expand.00.x",
            stage=Stage.EXPAND,
            operation_index=0,
            action=StepAction.DDL,
            description="an earlier change",
            table="accounts",
        )
    )
    assert any("a migration of their own" in problem for problem in problems_of(alter(), context=context))


@pytest.mark.parametrize(
    ("old", "new", "allowed"),
    [
        ("integer", "bigint", True),
        ("smallint", "integer", True),
        ("bigint", "bigint", True),
        ("bigint", "integer", False),
        ("character varying(20)", "character varying(40)", True),
        ("character varying(20)", "text", True),
        ("text", "character varying(40)", False),
        ("integer", "numeric", False),
        ("uuid", "text", False),
    ],
)
def test_which_key_type_changes_keep_the_keys_meaning(old: str, new: str, allowed: bool) -> None:
    assert (key_type_change_problem(old, new) is None) is allowed


def test_work_object_names_are_stable_distinct_and_fit() -> None:
    name = "accounts_email_key"
    assert shadow_index_name("accounts", name) == shadow_index_name("accounts", name)
    assert shadow_index_name("accounts", name) != old_index_name("accounts", name)
    assert shadow_index_name("accounts", name).startswith("_osc_s")
    assert len(shadow_index_name("accounts", "x" * 63)) == 63
