"""The PostgreSQL planner as golden SQL: exact statements, stages, ids, rollbacks and refusals."""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator.domain.errors import SpecError
from orchestrator.domain.plan import PLAN_STAGES, BackfillWork, Plan, Stage, Step, StepAction
from orchestrator.engine.planner import STAGE_PURPOSE, plan_migration, render_plan_text
from tests.unit.fakes import make_spec

ADD_BAND = {"add_column": {"table": "users", "column": {"name": "band", "type": "text"}}}
INDEX_BAND = {"create_index": {"table": "users", "name": "users_band_idx", "columns": ["band"]}}
BACKFILL_BAND = {
    "backfill": {"table": "users", "column": "band", "expression": "lower(email)", "batch_size": 500}
}
DROP_LEGACY = {"drop_column": {"table": "users", "column": "legacy"}}


def plan_of(*operations: dict[str, Any], **settings: int) -> Plan:
    return plan_migration(make_spec(*operations, **settings))


def only_step(plan: Plan) -> Step:
    [step] = plan.steps()
    return step


def planning_problems(*operations: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(SpecError) as caught:
        plan_of(*operations)
    return caught.value.problems


# --- golden SQL --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("column", "sql"),
    [
        ({"name": "band", "type": "text"}, 'ALTER TABLE "users" ADD COLUMN IF NOT EXISTS "band" text'),
        (
            {"name": "band", "type": "VARCHAR(64)"},
            'ALTER TABLE "users" ADD COLUMN IF NOT EXISTS "band" varchar(64)',
        ),
        (
            {"name": "at", "type": "timestamp with time zone"},
            'ALTER TABLE "users" ADD COLUMN IF NOT EXISTS "at" timestamp with time zone',
        ),
        (
            {"name": "status", "type": "text", "nullable": False, "default": "new"},
            'ALTER TABLE "users" ADD COLUMN IF NOT EXISTS "status" text DEFAULT E\'new\' NOT NULL',
        ),
        (
            {"name": "note", "type": "text", "default": "it's a \\ test"},
            "ALTER TABLE \"users\" ADD COLUMN IF NOT EXISTS \"note\" text DEFAULT E'it''s a \\\\ test'",
        ),
        (
            {"name": "score", "type": "integer", "nullable": False, "default": 0},
            'ALTER TABLE "users" ADD COLUMN IF NOT EXISTS "score" integer DEFAULT 0 NOT NULL',
        ),
        (
            {"name": "ratio", "type": "numeric(5,2)", "default": -1.5},
            'ALTER TABLE "users" ADD COLUMN IF NOT EXISTS "ratio" numeric(5,2) DEFAULT -1.5',
        ),
        (
            {"name": "active", "type": "boolean", "nullable": False, "default": True},
            'ALTER TABLE "users" ADD COLUMN IF NOT EXISTS "active" boolean DEFAULT TRUE NOT NULL',
        ),
        (
            {"name": "tags", "type": "text[]"},
            'ALTER TABLE "users" ADD COLUMN IF NOT EXISTS "tags" text[]',
        ),
    ],
)
def test_add_column_sql(column: dict[str, Any], sql: str) -> None:
    step = only_step(plan_of({"add_column": {"table": "users", "column": column}}))
    assert step.sql == sql


def test_add_column_step() -> None:
    step = only_step(plan_of(ADD_BAND, lock_timeout_ms=250))
    assert step.id == "expand.00.add_column.band"
    assert step.stage is Stage.EXPAND
    assert step.action is StepAction.DDL
    assert step.transactional is True
    assert step.lock_timeout_ms == 250
    assert step.table == "users"
    assert step.operation_index == 0
    assert step.description == "add column users.band text"
    assert step.irreversible_reason is None
    assert step.rollback is not None
    assert step.rollback.id == "rollback.expand.00.add_column.band"
    assert step.rollback.stage is Stage.ROLLBACK
    assert step.rollback.action is StepAction.DDL
    assert step.rollback.sql == 'ALTER TABLE "users" DROP COLUMN IF EXISTS "band"'
    assert step.rollback.lock_timeout_ms == 250
    assert step.rollback.rollback is None


@pytest.mark.parametrize(
    ("index", "sql", "rollback_sql"),
    [
        (
            {"table": "users", "name": "users_band_idx", "columns": ["band"]},
            'CREATE INDEX CONCURRENTLY IF NOT EXISTS "users_band_idx" ON "users" USING btree ("band")',
            'DROP INDEX CONCURRENTLY IF EXISTS "users_band_idx"',
        ),
        (
            {"table": "users", "name": "users_email_key", "columns": ["tenant_id", "email"], "unique": True},
            'CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS "users_email_key" ON "users" USING btree '
            '("tenant_id", "email")',
            'DROP INDEX CONCURRENTLY IF EXISTS "users_email_key"',
        ),
        (
            {"table": "docs", "name": "docs_tags_gin", "columns": ["tags"], "method": "gin"},
            'CREATE INDEX CONCURRENTLY IF NOT EXISTS "docs_tags_gin" ON "docs" USING gin ("tags")',
            'DROP INDEX CONCURRENTLY IF EXISTS "docs_tags_gin"',
        ),
    ],
)
def test_create_index_sql(index: dict[str, Any], sql: str, rollback_sql: str) -> None:
    step = only_step(plan_of({"create_index": index}))
    assert step.sql == sql
    assert step.rollback is not None
    assert step.rollback.sql == rollback_sql


def test_create_index_step_runs_outside_a_transaction() -> None:
    step = only_step(plan_of(INDEX_BAND))
    assert step.id == "expand.00.create_index.users_band_idx"
    assert step.stage is Stage.EXPAND
    assert step.action is StepAction.CREATE_INDEX_CONCURRENTLY
    assert step.transactional is False
    assert step.index_name == "users_band_idx"
    rollback = step.rollback
    assert rollback is not None
    assert rollback.id == "rollback.expand.00.create_index.users_band_idx"
    assert rollback.action is StepAction.DROP_INDEX_CONCURRENTLY
    assert rollback.transactional is False
    assert rollback.index_name == "users_band_idx"
    assert step.irreversible_reason is None


def test_unique_index_risk_mentions_duplicates() -> None:
    plain = only_step(plan_of(INDEX_BAND))
    unique = only_step(
        plan_of({"create_index": {"table": "users", "name": "u", "columns": ["email"], "unique": True}})
    )
    assert "duplicates" not in plain.risk
    assert "duplicates" in unique.risk


def test_drop_column_is_contract_and_irreversible() -> None:
    step = only_step(plan_of(DROP_LEGACY))
    assert step.id == "contract.00.drop_column.legacy"
    assert step.stage is Stage.CONTRACT
    assert step.action is StepAction.DDL
    assert step.sql == 'ALTER TABLE "users" DROP COLUMN IF EXISTS "legacy"'
    assert step.rollback is None
    assert step.irreversible_reason == "dropping users.legacy discards its values"
    assert step.transactional is True


def test_backfill_step_carries_its_work() -> None:
    step = only_step(plan_of(BACKFILL_BAND))
    assert step.id == "backfill.00.backfill.band"
    assert step.stage is Stage.BACKFILL
    assert step.action is StepAction.BACKFILL
    assert step.sql is None
    assert step.rollback is None
    assert step.backfill == BackfillWork(
        table="users", column="band", expression="lower(email)", batch_size=500, pause_ms=0
    )
    assert "500 rows" in step.risk


def test_backfill_of_a_column_added_by_the_spec_is_reversible() -> None:
    plan = plan_of(ADD_BAND, BACKFILL_BAND)
    [backfill] = plan.stage(Stage.BACKFILL).steps
    assert backfill.irreversible_reason is None


def test_backfill_of_an_existing_column_is_irreversible() -> None:
    plan = plan_of(BACKFILL_BAND)
    [backfill] = plan.stage(Stage.BACKFILL).steps
    assert backfill.irreversible_reason is not None
    assert "users.band" in backfill.irreversible_reason


def test_backfill_of_a_column_added_to_another_table_is_irreversible() -> None:
    other = {"add_column": {"table": "accounts", "column": {"name": "band", "type": "text"}}}
    [backfill] = plan_of(other, BACKFILL_BAND).stage(Stage.BACKFILL).steps
    assert backfill.irreversible_reason is not None


# --- plan shape --------------------------------------------------------------------------------


def test_stage_placement_and_order() -> None:
    plan = plan_of(DROP_LEGACY, BACKFILL_BAND, ADD_BAND, INDEX_BAND)
    assert [staged.stage for staged in plan.stages] == list(PLAN_STAGES)
    assert [staged.purpose for staged in plan.stages] == [STAGE_PURPOSE[stage] for stage in PLAN_STAGES]
    by_stage = {staged.stage: [step.id for step in staged.steps] for staged in plan.stages}
    assert by_stage == {
        Stage.EXPAND: ["expand.02.add_column.band", "expand.03.create_index.users_band_idx"],
        Stage.DEPLOY_GATE: [],
        Stage.BACKFILL: ["backfill.01.backfill.band"],
        Stage.CONTRACT: ["contract.00.drop_column.legacy"],
    }
    # steps() walks stages in order, not the spec's order
    assert [step.stage for step in plan.steps()] == [
        Stage.EXPAND,
        Stage.EXPAND,
        Stage.BACKFILL,
        Stage.CONTRACT,
    ]
    for step in plan.steps():
        assert step.stage in step.id.split(".")[0]
        assert step.rollback is None or step.rollback.stage is Stage.ROLLBACK


def test_step_ids_are_deterministic_and_unique() -> None:
    ops = (ADD_BAND, INDEX_BAND, BACKFILL_BAND, DROP_LEGACY)
    first, second = plan_of(*ops), plan_of(*ops)
    assert [step.id for step in first.steps()] == [step.id for step in second.steps()]
    assert first == second
    ids = [step.id for step in first.steps()] + [s.rollback.id for s in first.steps() if s.rollback]
    assert len(ids) == len(set(ids))


def test_step_ids_index_operations_with_two_digits() -> None:
    ops = [{"drop_column": {"table": "users", "column": f"c{n}"}} for n in range(12)]
    ids = [step.id for step in plan_of(*ops).steps()]
    assert ids[0] == "contract.00.drop_column.c0"
    assert ids[11] == "contract.11.drop_column.c11"


def test_plan_header_comes_from_spec_settings() -> None:
    plan = plan_of(ADD_BAND, INDEX_BAND, DROP_LEGACY, lock_timeout_ms=300, ddl_attempts=7)
    assert plan.migration == "demo"
    assert plan.engine == "postgres"
    assert (plan.lock_timeout_ms, plan.ddl_attempts) == (300, 7)
    ddl = [step for step in plan.steps() if step.action is not StepAction.BACKFILL]
    assert {step.lock_timeout_ms for step in ddl} == {300}
    assert plan.tables() == ["users"]


def test_default_lock_timeout() -> None:
    assert only_step(plan_of(ADD_BAND)).lock_timeout_ms == 1000


def test_unknown_engine_is_a_spec_error() -> None:
    with pytest.raises(SpecError) as caught:
        plan_migration(make_spec(ADD_BAND), engine="oracle")
    [(path, message)] = caught.value.problems
    assert path == "engine"
    assert "oracle" in message


# --- cross-operation refusals ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("operations", "path"),
    [
        ((ADD_BAND, ADD_BAND), "operations.1.add_column.column.name"),
        (
            (ADD_BAND, {"add_column": {"table": "users", "column": {"name": "band", "type": "integer"}}}),
            "operations.1.add_column.column.name",
        ),
        (
            (ADD_BAND, {"drop_column": {"table": "users", "column": "band"}}),
            "operations.1.drop_column.column",
        ),
        ((DROP_LEGACY, DROP_LEGACY), "operations.1.drop_column.column"),
        ((INDEX_BAND, INDEX_BAND), "operations.1.create_index.name"),
        (
            (INDEX_BAND, {"create_index": {"table": "accounts", "name": "users_band_idx", "columns": ["x"]}}),
            "operations.1.create_index.name",
        ),
        (
            (
                {"drop_column": {"table": "users", "column": "band"}},
                {"backfill": {"table": "users", "column": "band", "expression": "1"}},
            ),
            "operations.1.backfill.column",
        ),
        (
            (
                {
                    "create_index": {
                        "table": "users",
                        "name": "u",
                        "columns": ["tags"],
                        "unique": True,
                        "method": "gin",
                    }
                },
            ),
            "operations.0.create_index.method",
        ),
        (
            (
                {
                    "create_index": {
                        "table": "users",
                        "name": "u",
                        "columns": ["h"],
                        "unique": True,
                        "method": "hash",
                    }
                },
            ),
            "operations.0.create_index.method",
        ),
    ],
)
def test_cross_operation_refusals(operations: tuple[dict[str, Any], ...], path: str) -> None:
    assert [p for p, _ in planning_problems(*operations)] == [path]


def test_the_same_column_on_two_tables_is_fine() -> None:
    other = {"add_column": {"table": "accounts", "column": {"name": "band", "type": "text"}}}
    assert len(plan_of(ADD_BAND, other).steps()) == 2


def test_every_planning_problem_is_reported_at_once() -> None:
    problems = planning_problems(
        ADD_BAND,
        ADD_BAND,
        {"backfill": {"table": "users", "column": "band", "expression": "1; drop table users"}},
        INDEX_BAND,
        INDEX_BAND,
    )
    assert [path for path, _ in problems] == [
        "operations.1.add_column.column.name",
        "operations.2.backfill.expression",
        "operations.4.create_index.name",
    ]


def test_backfill_of_a_column_the_spec_drops_is_refused_in_either_order() -> None:
    problems = planning_problems(
        {"backfill": {"table": "users", "column": "band", "expression": "1"}},
        {"drop_column": {"table": "users", "column": "band"}},
    )
    assert problems


# --- backfill expressions ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "expression",
    [
        "1; drop table users",
        "1); drop table users; select (1",
        "1) from users where (true",
        "1), (2",
        "1) union select (2",
        "(1",
        "1)",
        "lower(email",
        "1 where true",
        "1 -- comment",
        "1 /* unterminated",
    ],
)
def test_bad_expressions_are_refused_at_their_path(expression: str) -> None:
    op = {"backfill": {"table": "users", "column": "band", "expression": expression}}
    problems = planning_problems(ADD_BAND, op)
    assert [path for path, _ in problems] == ["operations.1.backfill.expression"]


@pytest.mark.parametrize(
    ("expression", "reason"),
    [
        ("1; drop table users", "not a valid SQL expression"),
        ("1); drop table users; select (1", "not several statements"),
        ("1) from users where (true", "single scalar expression"),
        ("1), (2", "single scalar expression"),
    ],
)
def test_expression_refusals_say_why(expression: str, reason: str) -> None:
    [(_, message)] = planning_problems(
        {"backfill": {"table": "users", "column": "band", "expression": expression}}
    )
    assert reason in message


@pytest.mark.parametrize(
    "expression",
    [
        "lower(email)",
        "coalesce(nickname, first_name || ' ' || last_name)",
        "case when score > 10 then 'high' else 'low' end",
        "now()",
        "amount * 100",
        "'it''s'",
        "email ~ '@example\\.com$'",
        "(1)",
    ],
)
def test_good_expressions_are_planned_verbatim(expression: str) -> None:
    step = only_step(plan_of({"backfill": {"table": "users", "column": "band", "expression": expression}}))
    assert step.backfill is not None
    assert step.backfill.expression == expression


# --- rendering ---------------------------------------------------------------------------------


def _blocks(text: str) -> dict[str, list[str]]:
    """Step id -> the detail lines under it."""
    blocks: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        if line.startswith("   - "):
            step_id = line.removeprefix("   - ").split(":", 1)[0]
            current = blocks.setdefault(step_id, [])
        elif line.startswith("       ") and current is not None:
            current.append(line.strip())
        else:
            current = None
    return blocks


def test_render_plan_text_covers_every_step() -> None:
    plan = plan_of(ADD_BAND, INDEX_BAND, BACKFILL_BAND, DROP_LEGACY, lock_timeout_ms=300, ddl_attempts=7)
    text = render_plan_text(plan)
    assert text.splitlines()[0] == (
        "Migration demo (postgres); lock_timeout 300 ms, up to 7 attempts per DDL step"
    )
    for number, stage in enumerate(PLAN_STAGES, start=1):
        assert f"{number}. {stage.value}: {STAGE_PURPOSE[stage]}" in text
    assert "(waits for approval)" in text

    blocks = _blocks(text)
    assert set(blocks) == {step.id for step in plan.steps()}
    for step in plan.steps():
        lines = blocks[step.id]
        assert any(line.startswith("risk:") and step.risk in line for line in lines), step.id
        assert sum(line.startswith("rollback:") for line in lines) == 1, step.id
        if step.sql:
            assert f"sql:      {step.sql}" in lines

    assert 'rollback: ALTER TABLE "users" DROP COLUMN IF EXISTS "band"' in blocks["expand.00.add_column.band"]
    assert (
        'rollback: DROP INDEX CONCURRENTLY IF EXISTS "users_band_idx"'
        in blocks["expand.01.create_index.users_band_idx"]
    )
    # a backfill of a column added by the same spec: undone by dropping the column
    assert "rollback: nothing to undo" in blocks["backfill.02.backfill.band"]
    assert (
        "rollback: none - dropping users.legacy discards its values"
        in blocks["contract.03.drop_column.legacy"]
    )


def test_render_plan_text_shows_irreversible_backfill_and_empty_stages() -> None:
    text = render_plan_text(plan_of(BACKFILL_BAND))
    blocks = _blocks(text)
    [line] = [line for line in blocks["backfill.00.backfill.band"] if line.startswith("rollback:")]
    assert line.startswith("rollback: none - the backfill overwrites existing values of users.band")
    assert text.count("(nothing to do)") == 2  # expand and contract
    assert "(waits for approval)" in text
