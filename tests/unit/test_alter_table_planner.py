"""alter_table: the clause validated with sqlglot, read into facts, and planned as copy steps in the
right stages (golden ids, phases and SQL), refusals with their field paths."""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator.domain.copy_tools import CopyPhase
from orchestrator.domain.errors import SpecError
from orchestrator.domain.plan import Plan, Stage, StepAction
from orchestrator.domain.spec import spec_json_schema
from orchestrator.engine.planner import plan_migration, render_plan_text
from orchestrator.engine.planner.mysql.alter_clause import analyse
from tests.unit.fakes import make_spec


def alter(clause: str, **options: Any) -> dict[str, Any]:
    return {"alter_table": {"table": "orders", "alter": clause, **options}}


def plan_of(*operations: dict[str, Any], engine: str = "mysql") -> Plan:
    return plan_migration(make_spec(*operations), engine)


def layout(plan: Plan) -> list[tuple[str, str, str | None]]:
    return [
        (step.stage.value, step.id, step.copy_work.phase.value if step.copy_work else step.sql)
        for step in plan.steps()
    ]


def problems(*operations: dict[str, Any], engine: str = "mysql") -> list[tuple[str, str]]:
    with pytest.raises(SpecError) as caught:
        plan_of(*operations, engine=engine)
    return caught.value.problems


def test_an_additive_change_is_copied_and_cut_over_in_expand() -> None:
    plan = plan_of(alter("ADD COLUMN note varchar(64) NULL, ADD INDEX orders_note (note)"))
    assert layout(plan) == [
        ("expand", "expand.00.alter_table.orders.copy", "copy"),
        ("expand", "expand.00.alter_table.orders.cut_over", "cut_over"),
    ]
    copy, cut_over = plan.steps()
    assert copy.action is cut_over.action is StepAction.COPY_TABLE
    assert copy.copy_work is not None and not copy.copy_work.gated and not copy.copy_work.deferrable
    assert copy.copy_work.alter == "ADD COLUMN note varchar(64) NULL, ADD INDEX orders_note (note)"
    assert copy.rollback is not None and copy.rollback.copy_work is not None
    assert copy.rollback.copy_work.phase is CopyPhase.CLEANUP
    assert copy.rollback.id == "rollback.expand.00.alter_table.orders.copy"
    assert cut_over.rollback is None and cut_over.irreversible_reason
    assert "additive" in copy.risk


def test_a_breaking_change_holds_its_cut_over_for_the_deploy_gate() -> None:
    plan = plan_of(alter("MODIFY note varchar(255) NOT NULL DEFAULT ''"))
    assert layout(plan) == [
        ("expand", "expand.00.alter_table.orders.copy", "copy"),
        ("backfill", "backfill.00.alter_table.orders.copy", "copy"),
        ("backfill", "backfill.00.alter_table.orders.cut_over", "cut_over"),
    ]
    early, late, cut_over = plan.steps()
    assert early.copy_work is not None and early.copy_work.deferrable and early.copy_work.gated
    assert late.copy_work is not None and not late.copy_work.deferrable
    assert "hold the cut-over for the deploy gate" in early.description
    assert "pt-osc, which cannot hold a cut-over, copies in the backfill stage" in early.description
    assert "changes the definition of column note" in cut_over.risk


def test_a_revert_window_keeps_the_old_table_until_contract() -> None:
    plan = plan_of(alter("DROP COLUMN legacy", keep_old_table=True))
    assert layout(plan)[-1] == ("contract", "contract.00.alter_table.orders.drop_old", "drop_old")
    assert "_orders_del or _orders_old until contract" in plan.steps()[-2].description
    text = render_plan_text(plan)
    assert "rollback: none - dropping _orders_del or _orders_old discards the revert window" in text


def test_strategy_direct_is_the_servers_online_ddl() -> None:
    assert layout(plan_of(alter("ADD COLUMN note text", strategy="direct"))) == [
        (
            "expand",
            "expand.00.alter_table.orders",
            "ALTER TABLE `orders` ADD COLUMN note text, ALGORITHM=INPLACE, LOCK=NONE",
        )
    ]
    [step] = plan_of(alter("DROP COLUMN legacy", strategy="direct")).steps()
    assert (step.stage, step.action) == (Stage.CONTRACT, StepAction.DDL)
    assert step.irreversible_reason


def test_knobs_reach_the_copy_work() -> None:
    [copy, _] = plan_of(
        alter(
            "ADD COLUMN note text", strategy="pt_osc", max_lag_seconds=3, chunk_time_seconds=0.2, verify=False
        )
    ).steps()
    work = copy.copy_work
    assert work is not None
    assert (work.strategy, work.max_lag_seconds, work.chunk_time_seconds, work.verify) == (
        "pt_osc",
        3,
        0.2,
        False,
    )


@pytest.mark.parametrize(
    ("clause", "message"),
    [
        ("ADD COLUMN note text; DROP TABLE orders", "no ';'"),
        ("ADD COLUMN note text /*! , DROP COLUMN id */", "comments are not allowed"),
        ("ADD COLUMN note text -- x", "comments are not allowed"),
        ("ALTER TABLE orders ADD COLUMN note text", "without ALTER TABLE orders"),
        ("ADD COLUMN note text, ALGORITHM=INPLACE", "leave ALGORITHM and LOCK out"),
        ("RENAME TO orders_v2", "renaming the table"),
        ("ADD COLUMN", "not a MySQL ALTER TABLE clause osctl can read"),
        ("ADD COLUMN note text, foo bar", "not a MySQL ALTER TABLE clause osctl can read"),
        ("   ", "the ALTER clause is empty"),
    ],
)
def test_anything_but_one_clause_list_for_the_table_is_refused(clause: str, message: str) -> None:
    found = problems(alter(clause))
    assert found[0][0] == "operations.0.alter_table.alter"
    assert message in found[0][1], found


def test_a_tool_that_cannot_make_the_change_is_refused_at_plan_time() -> None:
    assert problems(alter("RENAME COLUMN code TO sku", strategy="pt_osc")) == [
        (
            "operations.0.alter_table.strategy",
            "pt-online-schema-change was asked for, but pt-online-schema-change reads the ALTER as renaming "
            "no rename but it renames {'code': 'sku'} (a CHANGE-like word inside a quoted string, or RENAME "
            "COLUMN, which it does not parse): it would copy the wrong values",
        )
    ]
    assert problems(alter("ADD CONSTRAINT fk FOREIGN KEY (c) REFERENCES customers (id)", strategy="gh_ost"))[
        0
    ][1] == ("gh-ost was asked for, but gh-ost does not support foreign keys")


def test_postgres_refuses_alter_table() -> None:
    assert problems(alter("ADD COLUMN note text"), engine="postgres") == [
        ("operations.0.alter_table", "alter_table is for MySQL targets; use the PostgreSQL operations")
    ]


@pytest.mark.parametrize(
    ("clause", "compatible", "what"),
    [
        ("ADD COLUMN note text", True, {"added_columns": ("note",)}),
        (
            "ADD COLUMN n int NOT NULL DEFAULT 0, ADD INDEX i (n), ENGINE=InnoDB",
            True,
            {"added_columns": ("n",)},
        ),
        ("ADD COLUMN n int NOT NULL", False, {"added_columns": ("n",)}),
        ("ALTER COLUMN note SET DEFAULT 'x'", True, {"modified_columns": ("note",)}),
        ("DROP COLUMN legacy, DROP INDEX i", False, {"dropped_columns": ("legacy",)}),
        ("CHANGE `code` `sku` varchar(32)", False, {"renamed_columns": (("code", "sku"),)}),
        ("ADD UNIQUE KEY u (email, tenant)", False, {"added_unique_keys": (("email", "tenant"),)}),
        ("ADD UNIQUE INDEX u (email(10))", False, {"added_unique_keys": (("email",),)}),
        ("ADD CONSTRAINT fk FOREIGN KEY (c) REFERENCES p (id)", False, {"adds_foreign_key": True}),
        ("CONVERT TO CHARACTER SET utf8mb4", False, {"parsed": False}),
        ("FORCE", True, {}),
    ],
)
def test_facts(clause: str, compatible: bool, what: dict[str, Any]) -> None:
    facts = analyse("orders", clause)
    assert facts.backward_compatible is compatible, facts.incompatible
    for name, value in what.items():
        assert getattr(facts, name) == value


def test_the_spec_schema_and_describe_know_alter_table() -> None:
    kinds = [
        next(iter(entry["properties"]))
        for entry in spec_json_schema()["properties"]["operations"]["items"]["oneOf"]
    ]
    assert "alter_table" in kinds
    [op] = make_spec(alter(" ADD COLUMN note text ")).ops()
    assert op.describe() == "alter table orders ADD COLUMN note text"
