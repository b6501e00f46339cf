"""The PostgreSQL create_index, drop_index, add_unique, add_foreign_key and add_check planners as golden
SQL, their rendering in `osctl plan` and `osctl schema`, and the pure schema preflight they share."""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator.domain.errors import IrreversibleError, SpecError
from orchestrator.domain.plan import Plan, Stage, Step, StepAction
from orchestrator.domain.schema import ColumnInfo, ConstraintInfo, IndexInfo, TableInfo
from orchestrator.domain.spec import spec_json_schema
from orchestrator.engine.planner import plan_migration, render_plan_text
from orchestrator.engine.preflight import LiveSchema, preflight_problems
from orchestrator.engine.rollback import rollback_steps
from orchestrator.ports import StepCheckpoint
from tests.unit.fakes import make_spec


def plan_of(*operations: dict[str, Any], tables: dict[str, TableInfo | None] | None = None) -> Plan:
    return plan_migration(make_spec(*operations), tables=tables)


def step(plan: Plan, step_id: str) -> Step:
    [found] = [s for s in plan.steps() if s.id == step_id]
    return found


def ids(plan: Plan, stage: Stage) -> list[str]:
    return [s.id for s in plan.stage(stage).steps]


def problems(*operations: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(SpecError) as caught:
        plan_of(*operations)
    return caught.value.problems


def index(**fields: Any) -> dict[str, Any]:
    return {"create_index": {"table": "users", "name": "users_x_idx", **fields}}


# --- create_index -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "sql"),
    [
        (
            {"columns": ["tenant"], "expressions": ["lower(email)"]},
            'CREATE INDEX CONCURRENTLY IF NOT EXISTS "users_x_idx" ON "users" USING btree ("tenant", (lower(email)))',
        ),
        (
            {"columns": ["email"], "unique": True, "where": "deleted_at IS NULL"},
            'CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS "users_x_idx" ON "users" USING btree ("email") '
            "WHERE (deleted_at IS NULL)",
        ),
        (
            {"columns": ["created_at"], "method": "brin"},
            'CREATE INDEX CONCURRENTLY IF NOT EXISTS "users_x_idx" ON "users" USING brin ("created_at")',
        ),
        (
            {"expressions": ["to_tsvector('simple', bio)"], "method": "gin"},
            'CREATE INDEX CONCURRENTLY IF NOT EXISTS "users_x_idx" ON "users" USING gin '
            "((to_tsvector('simple', bio)))",
        ),
    ],
)
def test_create_index_variants(fields: dict[str, Any], sql: str) -> None:
    [built] = plan_of(index(**fields)).steps()
    assert built.sql == sql
    assert (built.action, built.transactional, built.index_name) == (
        StepAction.CREATE_INDEX_CONCURRENTLY,
        False,
        "users_x_idx",
    )
    assert built.rollback is not None
    assert built.rollback.sql == 'DROP INDEX CONCURRENTLY IF EXISTS "users_x_idx"'


@pytest.mark.parametrize(
    ("fields", "path"),
    [
        ({"expressions": ["lower(email)", "1); drop table users; select (1"]}, "expressions.1"),
        ({"columns": ["email"], "where": "true) union select (1"}, "where"),
        ({"columns": ["a", "b"], "method": "hash"}, "method"),
    ],
)
def test_create_index_refusals(fields: dict[str, Any], path: str) -> None:
    assert [found for found, _ in problems(index(**fields))] == [f"operations.0.create_index.{path}"]


# --- drop_index ---------------------------------------------------------------------------------


def drop_index(**fields: Any) -> dict[str, Any]:
    return {"drop_index": {"table": "users", "name": "users_x_idx", **fields}}


def test_drop_index_in_contract_rebuilt_on_rollback() -> None:
    [dropped] = plan_of(
        drop_index(expressions=["lower(email)"], unique=True, where="deleted_at IS NULL")
    ).steps()
    assert dropped.stage is Stage.CONTRACT
    assert (dropped.action, dropped.transactional) == (StepAction.DROP_INDEX_CONCURRENTLY, False)
    assert dropped.sql == 'DROP INDEX CONCURRENTLY IF EXISTS "users_x_idx"'
    rebuild = dropped.rollback
    assert rebuild is not None
    assert (rebuild.action, rebuild.transactional, rebuild.index_name) == (
        StepAction.CREATE_INDEX_CONCURRENTLY,
        False,
        "users_x_idx",
    )
    assert rebuild.sql == (
        'CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS "users_x_idx" ON "users" USING btree ((lower(email))) '
        "WHERE (deleted_at IS NULL)"
    )


def test_an_undescribed_drop_index_is_irreversible_and_says_why() -> None:
    plan = plan_of(drop_index())
    [dropped] = plan.steps()
    assert dropped.rollback is None
    assert dropped.irreversible_reason is not None
    assert "not described" in dropped.irreversible_reason
    with pytest.raises(IrreversibleError, match="not described"):
        rollback_steps(plan, {dropped.id: StepCheckpoint(dropped.id, "done", 1)})


@pytest.mark.parametrize(
    ("operations", "path"),
    [
        ((drop_index(unique=True),), "operations.0.drop_index.columns"),
        ((index(columns=["email"]), drop_index(columns=["email"])), "operations.1.drop_index.name"),
        ((drop_index(columns=["email"], where="x > 0; drop table users"),), "operations.0.drop_index.where"),
    ],
)
def test_drop_index_refusals(operations: tuple[dict[str, Any], ...], path: str) -> None:
    assert [found for found, _ in problems(*operations)] == [path]


# --- add_unique, add_foreign_key, add_check -----------------------------------------------------


def test_add_unique_builds_then_attaches_under_one_name() -> None:
    plan = plan_of(
        {"add_unique": {"table": "users", "name": "users_email_key", "columns": ["tenant", "email"]}}
    )
    assert ids(plan, Stage.EXPAND) == [
        "expand.00.add_unique.users_email_key.index",
        "expand.00.add_unique.users_email_key",
    ]
    build = step(plan, "expand.00.add_unique.users_email_key.index")
    assert build.sql == (
        'CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS "users_email_key" ON "users" USING btree ("tenant", "email")'
    )
    attach = step(plan, "expand.00.add_unique.users_email_key")
    assert attach.sql == (
        "DO $osc$ BEGIN IF NOT EXISTS (SELECT FROM pg_constraint WHERE conrelid = to_regclass(E'\"users\"') "
        'AND conname = E\'users_email_key\') THEN ALTER TABLE "users" ADD CONSTRAINT "users_email_key" '
        'UNIQUE USING INDEX "users_email_key"; END IF; END $osc$'
    )
    assert attach.rollback is not None
    assert attach.rollback.sql == 'ALTER TABLE "users" DROP CONSTRAINT IF EXISTS "users_email_key"'


FOREIGN_KEY: dict[str, Any] = {
    "add_foreign_key": {
        "table": "users",
        "name": "users_team_fkey",
        "columns": ["team_id"],
        "references": {"table": "teams", "on_delete": "cascade"},
    }
}


def users_with(*indexes: IndexInfo) -> dict[str, TableInfo | None]:
    columns = {c: ColumnInfo(name=c, type="bigint", nullable=True) for c in ("id", "team_id", "created_at")}
    return {"users": TableInfo(name="users", columns=columns, indexes={i.name: i for i in indexes})}


def test_add_foreign_key_not_valid_in_expand_validated_in_backfill() -> None:
    plan = plan_of(FOREIGN_KEY)
    assert ids(plan, Stage.EXPAND) == [
        "expand.00.add_foreign_key.users_team_fkey.index",
        "expand.00.add_foreign_key.users_team_fkey",
    ]
    assert ids(plan, Stage.BACKFILL) == ["backfill.00.add_foreign_key.users_team_fkey.validate"]
    fk = step(plan, "expand.00.add_foreign_key.users_team_fkey")
    assert fk.sql is not None
    assert (
        'ALTER TABLE "users" ADD CONSTRAINT "users_team_fkey" FOREIGN KEY ("team_id") REFERENCES "teams" ("id") '
        "ON DELETE CASCADE NOT VALID" in fk.sql
    )
    validate = step(plan, "backfill.00.add_foreign_key.users_team_fkey.validate")
    assert validate.sql == 'ALTER TABLE "users" VALIDATE CONSTRAINT "users_team_fkey"'
    assert validate.rollback is None and validate.irreversible_reason is None


@pytest.mark.parametrize(
    ("live", "builds"),
    [
        (IndexInfo(name="i", columns=["team_id", "created_at"], valid=True, unique=False), False),
        (IndexInfo(name="i", columns=["created_at", "team_id"], valid=True, unique=False), True),
        (IndexInfo(name="i", columns=["team_id"], valid=False, unique=False), True),
        (IndexInfo(name="i", columns=["team_id"], valid=True, unique=False, predicate="team_id > 0"), True),
        (
            IndexInfo(name="i", columns=["team_id"], keys=["lower(x)", "team_id"], valid=True, unique=False),
            True,
        ),
    ],
    ids=["leading", "second", "invalid", "partial", "expression-first"],
)
def test_the_referencing_index_is_built_only_when_none_leads(live: IndexInfo, builds: bool) -> None:
    plan = plan_of(FOREIGN_KEY, tables=users_with(live))
    assert ("expand.00.add_foreign_key.users_team_fkey.index" in ids(plan, Stage.EXPAND)) is builds


def test_create_index_false_builds_none() -> None:
    operation = {"add_foreign_key": {**FOREIGN_KEY["add_foreign_key"], "create_index": False}}
    assert ids(plan_of(operation), Stage.EXPAND) == ["expand.00.add_foreign_key.users_team_fkey"]


def test_a_foreign_key_needs_as_many_columns_on_each_side() -> None:
    operation = {
        "add_foreign_key": {
            **FOREIGN_KEY["add_foreign_key"],
            "references": {"table": "t", "columns": ["a", "b"]},
        }
    }
    assert [path for path, _ in problems(operation)] == ["operations.0.add_foreign_key.references.columns"]


def test_add_check_not_valid_then_validated() -> None:
    plan = plan_of({"add_check": {"table": "users", "name": "users_age_check", "expression": "age >= 0"}})
    check = step(plan, "expand.00.add_check.users_age_check")
    assert check.sql is not None
    assert 'ADD CONSTRAINT "users_age_check" CHECK (age >= 0) NOT VALID' in check.sql
    assert check.rollback is not None
    assert check.rollback.sql == 'ALTER TABLE "users" DROP CONSTRAINT IF EXISTS "users_age_check"'
    assert ids(plan, Stage.BACKFILL) == ["backfill.00.add_check.users_age_check.validate"]


def test_add_check_expression_is_one_expression() -> None:
    operation = {
        "add_check": {"table": "users", "name": "c", "expression": "true) NOT VALID; DROP TABLE users; --"}
    }
    assert [path for path, _ in problems(operation)] == ["operations.0.add_check.expression"]


# --- what a DBA reads ---------------------------------------------------------------------------

EVERY_KIND = (
    {
        "add_column": {
            "table": "users",
            "column": {"name": "band", "type": "text", "nullable": False, "backfill": "1"},
        }
    },
    index(columns=["email"]),
    drop_index(name="users_legacy_idx", columns=["legacy"]),
    {"add_unique": {"table": "users", "name": "users_email_key", "columns": ["email"]}},
    FOREIGN_KEY,
    {"add_check": {"table": "users", "name": "users_age_check", "expression": "age >= 0"}},
    {"drop_column": {"table": "users", "column": "legacy", "archive": True}},
)


def test_plan_text_says_purpose_sql_risk_rollback_and_estimate_for_every_step() -> None:
    plan = plan_of(*EVERY_KIND)
    text = render_plan_text(plan)
    for planned in plan.steps():
        block = text.split(f"- {planned.id}: ", 1)[1].split("\n   - ", 1)[0]
        assert "risk:" in block and "estimate:" in block and "rollback:" in block, block
        if planned.sql:
            assert "sql:" in block


def test_the_schema_documents_every_kind() -> None:
    documented = {
        next(iter(entry["properties"]))
        for entry in spec_json_schema()["properties"]["operations"]["items"]["oneOf"]
    }
    assert {"drop_index", "add_unique", "add_foreign_key", "add_check"} <= documented


# --- the schema preflight -----------------------------------------------------------------------


def live_users() -> LiveSchema:
    columns = {
        c: ColumnInfo(name=c, type="text", nullable=c != "id") for c in ("id", "email", "team_id", "note")
    }
    users = TableInfo(
        name="users",
        columns=columns,
        indexes={
            "users_pkey": IndexInfo(
                name="users_pkey",
                columns=["id"],
                keys=["id"],
                valid=True,
                unique=True,
                constraint="users_pkey",
            ),
            "users_note_idx": IndexInfo(
                name="users_note_idx",
                columns=[],
                keys=["lower(note)"],
                valid=True,
                unique=False,
                predicate="(note IS NOT NULL)",
            ),
        },
        constraints={"users_pkey": ConstraintInfo(name="users_pkey", kind="p")},
        primary_key=["id"],
    )
    teams = TableInfo(
        name="teams",
        columns={
            "id": ColumnInfo(name="id", type="bigint", nullable=False),
            "code": ColumnInfo(name="code", type="text", nullable=True),
        },
        indexes={
            "teams_pkey": IndexInfo(name="teams_pkey", columns=["id"], keys=["id"], valid=True, unique=True)
        },
    )
    return LiveSchema(tables={"users": users, "teams": teams}, relations={"users_note_idx": True})


@pytest.mark.parametrize(
    ("operation", "path"),
    [
        (drop_index(name="users_pkey", columns=["id"], unique=True), "operations.0.drop_index.name"),
        (
            drop_index(name="users_note_idx", expressions=["lower(email)"], where="note IS NOT NULL"),
            "operations.0.drop_index.columns",
        ),
        (drop_index(name="users_note_idx", expressions=["lower(note)"]), "operations.0.drop_index.columns"),
        (
            {"add_unique": {"table": "users", "name": "users_note_idx", "columns": ["email"]}},
            "operations.0.add_unique.name",
        ),
        (
            {"add_check": {"table": "users", "name": "users_pkey", "expression": "true"}},
            "operations.0.add_check.name",
        ),
        (
            {
                "add_foreign_key": {
                    **FOREIGN_KEY["add_foreign_key"],
                    "references": {"table": "teams", "columns": ["code"]},
                }
            },
            "operations.0.add_foreign_key.references.columns",
        ),
        (
            {
                "add_column": {
                    "table": "users",
                    "column": {"name": "x", "type": "bigint", "references": {"table": "nope"}},
                }
            },
            "operations.0.add_column.column.references.table",
        ),
        (index(expressions=["lower(nickname)"]), "operations.0.create_index.expressions.0"),
        (
            {"drop_column": {"table": "users", "column": "email", "archive": True}},
            "operations.0.drop_column.archive",
        ),
    ],
)
def test_preflight_refusals(operation: dict[str, Any], path: str) -> None:
    live = live_users()
    live.relations["_osc_archive_users_email"] = True
    found = preflight_problems(make_spec(operation), live, "app")
    assert [p for p, _ in found] == [path], found


def test_preflight_accepts_a_description_that_matches_as_the_catalog_prints_it() -> None:
    accepted = (
        drop_index(name="users_note_idx", expressions=["LOWER( note )"], where="note is not null"),
        {"add_foreign_key": {**FOREIGN_KEY["add_foreign_key"], "references": {"table": "teams"}}},
        {"add_unique": {"table": "users", "name": "users_email_key", "columns": ["email"]}},
    )
    assert preflight_problems(make_spec(*accepted), live_users(), "app") == []


def test_an_archived_column_must_lose_its_indexes_first_by_a_rebuildable_drop() -> None:
    live = live_users()
    archive = {"drop_column": {"table": "users", "column": "note", "archive": True}}
    [(path, message)] = preflight_problems(make_spec(archive), live, "app")
    assert path == "operations.0.drop_column.archive"
    assert "index users_note_idx" in message
    described = drop_index(name="users_note_idx", expressions=["lower(note)"], where="note IS NOT NULL")
    assert preflight_problems(make_spec(described, archive), live, "app") == []
