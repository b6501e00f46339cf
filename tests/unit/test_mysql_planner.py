"""The MySQL planner as golden SQL: statements, stages, inverses, refusals; every DDL it writes is one
the target can parse back and re-render for the server it meets."""

from __future__ import annotations

from typing import Any

import pytest

from adapters.mysql.algorithms import parse_alter
from orchestrator.domain.errors import SpecError
from orchestrator.domain.plan import BackfillWork, Plan, Stage, Step, StepAction
from orchestrator.engine.planner import plan_migration, render_plan_text
from orchestrator.engine.planner.mysql.backfill import check_expression, referenced_columns
from tests.unit.fakes import make_spec

ADD_BAND = {"add_column": {"table": "users", "column": {"name": "band", "type": "varchar(8)"}}}
INDEX_EMAIL = {"create_index": {"table": "users", "name": "users_email_idx", "columns": ["email"]}}
BACKFILL_BAND = {
    "backfill": {
        "table": "users",
        "column": "band",
        "expression": "CASE WHEN score >= 50 THEN 'high' ELSE 'low' END",
        "batch_size": 500,
    }
}
DROP_LEGACY = {"drop_column": {"table": "users", "column": "legacy"}}


def plan_of(*operations: dict[str, Any], **settings: int) -> Plan:
    return plan_migration(make_spec(*operations, **settings), "mysql")


def only_step(plan: Plan) -> Step:
    [step] = plan.steps()
    return step


def planning_problems(*operations: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(SpecError) as caught:
        plan_of(*operations)
    return caught.value.problems


@pytest.mark.parametrize(
    ("column", "sql"),
    [
        ({"name": "band", "type": "text"}, "ALTER TABLE `users` ADD COLUMN `band` text, ALGORITHM=INSTANT"),
        (
            {"name": "band", "type": "VARCHAR(64)"},
            "ALTER TABLE `users` ADD COLUMN `band` varchar(64), ALGORITHM=INSTANT",
        ),
        (
            {"name": "status", "type": "varchar(16)", "nullable": False, "default": "new"},
            "ALTER TABLE `users` ADD COLUMN `status` varchar(16) NOT NULL DEFAULT 'new', ALGORITHM=INSTANT",
        ),
        (
            {"name": "note", "type": "varchar(32)", "default": "it's a \\ test"},
            "ALTER TABLE `users` ADD COLUMN `note` varchar(32) DEFAULT 'it''s a \\\\ test', ALGORITHM=INSTANT",
        ),
        (
            {"name": "score", "type": "integer", "nullable": False, "default": 0},
            "ALTER TABLE `users` ADD COLUMN `score` integer NOT NULL DEFAULT 0, ALGORITHM=INSTANT",
        ),
        (
            {"name": "ratio", "type": "decimal(5,2)", "default": -1.5},
            "ALTER TABLE `users` ADD COLUMN `ratio` decimal(5,2) DEFAULT -1.5, ALGORITHM=INSTANT",
        ),
        (
            {"name": "active", "type": "boolean", "nullable": False, "default": True},
            "ALTER TABLE `users` ADD COLUMN `active` boolean NOT NULL DEFAULT TRUE, ALGORITHM=INSTANT",
        ),
        (
            {"name": "ratio", "type": "double precision"},
            "ALTER TABLE `users` ADD COLUMN `ratio` double precision, ALGORITHM=INSTANT",
        ),
    ],
)
def test_add_column_sql(column: dict[str, Any], sql: str) -> None:
    step = only_step(plan_of({"add_column": {"table": "users", "column": column}}))
    assert step.sql == sql
    assert (step.stage, step.action, step.transactional) == (Stage.EXPAND, StepAction.DDL, False)
    assert step.rollback is not None
    assert step.rollback.sql == f"ALTER TABLE `users` DROP COLUMN `{column['name']}`, ALGORITHM=INSTANT"
    assert step.rollback.stage is Stage.ROLLBACK


def test_create_index_builds_in_place_without_locking_writes() -> None:
    step = only_step(
        plan_of(
            {
                "create_index": {
                    "table": "users",
                    "name": "users_tenant_email_key",
                    "columns": ["tenant_id", "email"],
                    "unique": True,
                }
            }
        )
    )
    assert step.sql == (
        "ALTER TABLE `users` ADD UNIQUE INDEX `users_tenant_email_key` (`tenant_id`, `email`), "
        "ALGORITHM=INPLACE, LOCK=NONE"
    )
    assert step.index_name == "users_tenant_email_key"
    assert step.rollback is not None
    assert step.rollback.sql == (
        "ALTER TABLE `users` DROP INDEX `users_tenant_email_key`, ALGORITHM=INPLACE, LOCK=NONE"
    )
    assert "duplicates" in step.risk


def test_drop_column_is_a_contract_step_without_an_inverse() -> None:
    step = only_step(plan_of(DROP_LEGACY))
    assert step.stage is Stage.CONTRACT
    assert step.sql == "ALTER TABLE `users` DROP COLUMN `legacy`, ALGORITHM=INSTANT"
    assert step.rollback is None
    assert step.irreversible_reason == "dropping users.legacy discards its values"


def test_the_whole_flow_in_stages() -> None:
    plan = plan_of(ADD_BAND, INDEX_EMAIL, BACKFILL_BAND, DROP_LEGACY, lock_timeout_ms=2000)
    assert plan.engine == "mysql"
    ids = {stage.stage: [step.id for step in stage.steps] for stage in plan.stages}
    assert ids == {
        Stage.EXPAND: ["expand.00.add_column.band", "expand.01.create_index.users_email_idx"],
        Stage.DEPLOY_GATE: [],
        Stage.BACKFILL: ["backfill.02.backfill.band"],
        Stage.CONTRACT: ["contract.03.drop_column.legacy"],
    }
    [backfill] = plan.stage(Stage.BACKFILL).steps
    assert backfill.backfill == BackfillWork(
        table="users",
        column="band",
        expression="CASE WHEN score >= 50 THEN 'high' ELSE 'low' END",
        batch_size=500,
        pause_ms=0,
    )
    assert backfill.irreversible_reason is None  # dropping the added column undoes it
    assert all(step.lock_timeout_ms == 2000 for step in plan.stage(Stage.EXPAND).steps)
    text = render_plan_text(plan)
    assert "(mysql)" in text and "ALGORITHM=INSTANT" in text and "LOCK=NONE" in text


def test_every_ddl_statement_parses_back_for_the_target() -> None:
    plan = plan_of(ADD_BAND, INDEX_EMAIL, BACKFILL_BAND, DROP_LEGACY)
    statements = [step.sql for step in plan.steps() if step.sql] + [
        step.rollback.sql for step in plan.steps() if step.rollback and step.rollback.sql
    ]
    assert len(statements) == 5
    for sql in statements:
        parsed = parse_alter(sql)
        assert parsed is not None, sql
        assert parsed.render() == sql


def test_a_backfill_of_an_existing_column_cannot_be_rolled_back() -> None:
    step = only_step(plan_of(BACKFILL_BAND))
    assert step.irreversible_reason is not None and "overwrites" in step.irreversible_reason


@pytest.mark.parametrize(
    ("type_name", "message"),
    [
        ("timestamptz", "timestamptz is a PostgreSQL type"),
        ("jsonb", "on MySQL use json"),
        ("text[]", "no array types"),
        ("timestamp with time zone", "no time zone clause"),
    ],
)
def test_postgres_types_are_refused(type_name: str, message: str) -> None:
    problems = planning_problems(
        {"add_column": {"table": "users", "column": {"name": "c", "type": type_name}}}
    )
    assert problems[0][0] == "operations.0.add_column.column.type"
    assert message in problems[0][1]


def test_a_nan_default_is_refused() -> None:
    problems = planning_problems(
        {"add_column": {"table": "users", "column": {"name": "c", "type": "double", "default": float("nan")}}}
    )
    assert problems == [
        ("operations.0.add_column.column.default", "MySQL has no NaN or infinity to use as a default")
    ]


def test_only_btree_indexes() -> None:
    problems = planning_problems(
        {"create_index": {"table": "users", "name": "users_tags_idx", "columns": ["tags"], "method": "gin"}}
    )
    assert problems == [("operations.0.create_index.method", "InnoDB builds btree indexes only, not gin")]


def test_conflicts_within_a_spec_are_refused_with_paths() -> None:
    problems = planning_problems(ADD_BAND, ADD_BAND, INDEX_EMAIL, INDEX_EMAIL)
    assert [path for path, _ in problems] == [
        "operations.1.add_column.column.name",
        "operations.3.create_index.name",
    ]


@pytest.mark.parametrize(
    "expression",
    [
        "lower(email)",
        "CASE WHEN score >= 50 THEN 'high' ELSE 'low' END",
        "IF(score >= 50, 'high', 'low')",
        "CONCAT(`code`, ':', amount)",
        "score % 10",
        "email LIKE 'a%' OR email IS NULL",
        "'it''s; -- not a comment'",
        "COALESCE(JSON_EXTRACT(doc, '$.band'), 'none')",
        "created_at + INTERVAL 1 DAY",
        "NULL",
    ],
)
def test_scalar_expressions_are_accepted(expression: str) -> None:
    check_expression(expression)


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("0) -- ", "comments"),
        ("1 /*! , band = 2 */", "comments"),
        ("score # x", "comments"),
        ("1); DROP TABLE users; SELECT (1", "several statements"),
        ("1) FROM users WHERE (1", "no FROM"),
        ("1) OR (1", "single scalar expression"),
        ("a, b", "single scalar expression"),
        ("*", "single scalar expression"),
        ("(SELECT MAX(id) FROM users)", "subqueries"),
        ("score IN (SELECT 1)", "subqueries"),
        ("@counter := @counter + 1", "variables"),
        ("@@version", "variables"),
        ("SLEEP(1)", "side effects"),
        ("GET_LOCK('x', 10)", "side effects"),
        ("score +", "not a valid MySQL expression"),
    ],
)
def test_expressions_that_could_escape_the_statement_are_refused(expression: str, message: str) -> None:
    with pytest.raises(SpecError) as refused:
        check_expression(expression)
    [(path, problem)] = refused.value.problems
    assert path == "expression"
    assert message in problem


def test_a_refused_expression_is_reported_at_its_path() -> None:
    problems = planning_problems({"backfill": {"table": "users", "column": "band", "expression": "1) OR (1"}})
    assert problems[0][0] == "operations.0.backfill.expression"


def test_referenced_columns() -> None:
    assert referenced_columns("CONCAT(`code`, ':', t.amount, lower(email))") == {"code", "amount", "email"}
    assert referenced_columns("1) OR (1") == set()
