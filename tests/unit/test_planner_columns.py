"""The PostgreSQL add_column and drop_column planners as golden SQL: every variant's steps, their
stages and order, their inverses, and refusals at the field to fix. Also the MySQL refusals."""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator.domain.errors import SpecError
from orchestrator.domain.identifiers import check_identifier
from orchestrator.domain.plan import Plan, Stage, Step, StepAction
from orchestrator.domain.schema import ColumnInfo, TableInfo
from orchestrator.engine.planner import plan_migration
from orchestrator.engine.planner.postgres.ddl_text import derived_name, do_block, is_constant
from orchestrator.engine.rollback import rollback_steps
from orchestrator.ports import StepCheckpoint
from tests.unit.fakes import make_spec


def add(**column: Any) -> dict[str, Any]:
    return {"add_column": {"table": "users", "column": {"name": "band", "type": "text", **column}}}


def plan_of(*operations: dict[str, Any], tables: dict[str, TableInfo | None] | None = None) -> Plan:
    return plan_migration(make_spec(*operations), tables=tables)


def ids(plan: Plan, stage: Stage) -> list[str]:
    return [step.id for step in plan.stage(stage).steps]


def step(plan: Plan, step_id: str) -> Step:
    [found] = [s for s in plan.steps() if s.id == step_id]
    return found


def problems(*operations: dict[str, Any], engine: str = "postgres") -> list[tuple[str, str]]:
    with pytest.raises(SpecError) as caught:
        plan_migration(make_spec(*operations), engine=engine)
    return caught.value.problems


# --- add_column: catalog-only variants ------------------------------------------------------------


@pytest.mark.parametrize(
    ("column", "sql"),
    [
        ({}, 'ALTER TABLE "users" ADD COLUMN IF NOT EXISTS "band" text'),
        ({"default": "x"}, 'ALTER TABLE "users" ADD COLUMN IF NOT EXISTS "band" text DEFAULT E\'x\''),
        (
            {"default": "x", "nullable": False},
            'ALTER TABLE "users" ADD COLUMN IF NOT EXISTS "band" text DEFAULT E\'x\' NOT NULL',
        ),
    ],
)
def test_catalog_only_variants_are_one_expand_step(column: dict[str, Any], sql: str) -> None:
    plan = plan_of(add(**column))
    [only] = plan.steps()
    assert (only.stage, only.action, only.sql) == (Stage.EXPAND, StepAction.DDL, sql)
    assert only.rollback is not None
    assert only.rollback.sql == 'ALTER TABLE "users" DROP COLUMN IF EXISTS "band"'


# --- add_column: filled variants ------------------------------------------------------------------


def test_volatile_default_sets_the_default_in_the_same_transaction_then_fills_nulls() -> None:
    plan = plan_of(add(name="seen_at", type="timestamptz", default_expression="now()"))
    assert ids(plan, Stage.EXPAND) == ["expand.00.add_column.seen_at"]
    assert ids(plan, Stage.BACKFILL) == ["backfill.00.add_column.seen_at.fill"]
    added = step(plan, "expand.00.add_column.seen_at")
    assert added.transactional is True
    assert added.sql == (
        'ALTER TABLE "users" ADD COLUMN IF NOT EXISTS "seen_at" timestamptz; '
        'ALTER TABLE "users" ALTER COLUMN "seen_at" SET DEFAULT (now())'
    )
    fill = step(plan, "backfill.00.add_column.seen_at.fill")
    assert fill.action is StepAction.BACKFILL
    assert fill.backfill is not None
    assert fill.backfill.expression == 'coalesce("seen_at", (now())::timestamptz)'
    # Undone by the column's own drop: nothing to refuse a rollback over.
    assert fill.irreversible_reason is None and fill.rollback is None


def test_backfill_expression_wins_over_the_default_for_existing_rows() -> None:
    plan = plan_of(
        add(name="code", type="uuid", default_expression="gen_random_uuid()", backfill="md5(email)::uuid")
    )
    fill = step(plan, "backfill.00.add_column.code.fill")
    assert fill.backfill is not None
    assert fill.backfill.expression == 'coalesce("code", (md5(email)::uuid)::uuid)'


def test_a_constant_default_with_a_backfill_is_set_for_new_rows_only() -> None:
    plan = plan_of(add(default="none", backfill="lower(email)"))
    assert step(plan, "expand.00.add_column.band").sql == (
        'ALTER TABLE "users" ADD COLUMN IF NOT EXISTS "band" text; '
        'ALTER TABLE "users" ALTER COLUMN "band" SET DEFAULT E\'none\''
    )


def test_not_null_is_proven_after_the_backfill_never_in_expand() -> None:
    plan = plan_of(add(nullable=False, backfill="lower(email)"))
    assert ids(plan, Stage.EXPAND) == ["expand.00.add_column.band"]
    assert (
        step(plan, "expand.00.add_column.band").sql
        == 'ALTER TABLE "users" ADD COLUMN IF NOT EXISTS "band" text'
    )
    assert ids(plan, Stage.BACKFILL) == [
        "backfill.00.add_column.band.fill",
        "backfill.00.add_column.band.not_null_check",
        "backfill.00.add_column.band.validate_not_null",
        "backfill.00.add_column.band.set_not_null",
    ]
    check = step(plan, "backfill.00.add_column.band.not_null_check")
    assert check.sql is not None
    assert 'ADD CONSTRAINT "users_band_osc_not_null" CHECK ("band" IS NOT NULL) NOT VALID' in check.sql
    assert check.sql.startswith("DO $osc$ BEGIN IF NOT EXISTS (SELECT FROM pg_constraint")
    assert check.rollback is not None
    assert check.rollback.sql == 'ALTER TABLE "users" DROP CONSTRAINT IF EXISTS "users_band_osc_not_null"'
    validate = step(plan, "backfill.00.add_column.band.validate_not_null")
    assert validate.sql == 'ALTER TABLE "users" VALIDATE CONSTRAINT "users_band_osc_not_null"'
    set_not_null = step(plan, "backfill.00.add_column.band.set_not_null")
    assert set_not_null.sql == (
        'ALTER TABLE "users" ALTER COLUMN "band" SET NOT NULL; '
        'ALTER TABLE "users" DROP CONSTRAINT IF EXISTS "users_band_osc_not_null"'
    )
    assert set_not_null.rollback is not None
    assert set_not_null.rollback.sql == 'ALTER TABLE "users" ALTER COLUMN "band" DROP NOT NULL'
    assert plan.stage(Stage.CONTRACT).steps == []


def test_unique_builds_the_index_concurrently_then_attaches_it() -> None:
    plan = plan_of(add(name="code", type="uuid", default_expression="gen_random_uuid()", unique=True))
    assert ids(plan, Stage.EXPAND) == [
        "expand.00.add_column.code",
        "expand.00.add_column.code.unique_index",
        "expand.00.add_column.code.unique",
    ]
    build = step(plan, "expand.00.add_column.code.unique_index")
    assert build.action is StepAction.CREATE_INDEX_CONCURRENTLY and build.transactional is False
    assert (
        build.sql
        == 'CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS "users_code_key" ON "users" USING btree ("code")'
    )
    assert build.index_name == "users_code_key"
    assert build.rollback is not None and build.rollback.action is StepAction.DROP_INDEX_CONCURRENTLY
    attach = step(plan, "expand.00.add_column.code.unique")
    assert attach.sql is not None
    assert 'ADD CONSTRAINT "users_code_key" UNIQUE USING INDEX "users_code_key"' in attach.sql
    assert attach.rollback is not None
    assert attach.rollback.sql == 'ALTER TABLE "users" DROP CONSTRAINT IF EXISTS "users_code_key"'


def test_references_index_first_not_valid_in_expand_validated_after_the_fill() -> None:
    plan = plan_of(
        add(
            name="team_id",
            type="bigint",
            backfill="1",
            references={"table": "teams", "on_delete": "set_null"},
        )
    )
    assert ids(plan, Stage.EXPAND) == [
        "expand.00.add_column.team_id",
        "expand.00.add_column.team_id.foreign_key_index",
        "expand.00.add_column.team_id.foreign_key",
    ]
    assert ids(plan, Stage.BACKFILL) == [
        "backfill.00.add_column.team_id.fill",
        "backfill.00.add_column.team_id.validate_foreign_key",
    ]
    assert step(plan, "expand.00.add_column.team_id.foreign_key_index").sql == (
        'CREATE INDEX CONCURRENTLY IF NOT EXISTS "users_team_id_idx" ON "users" USING btree ("team_id")'
    )
    fk = step(plan, "expand.00.add_column.team_id.foreign_key")
    assert fk.sql is not None
    assert (
        'ADD CONSTRAINT "users_team_id_fkey" FOREIGN KEY ("team_id") REFERENCES "teams" ("id") '
        "ON DELETE SET NULL NOT VALID" in fk.sql
    )


def test_a_unique_column_needs_no_second_index_for_its_foreign_key() -> None:
    plan = plan_of(add(name="team_id", type="bigint", unique=True, references={"table": "teams"}))
    assert "expand.00.add_column.team_id.foreign_key_index" not in ids(plan, Stage.EXPAND)


def test_every_step_id_is_unique_and_every_expand_step_has_an_inverse() -> None:
    plan = plan_of(
        add(
            name="code",
            type="uuid",
            nullable=False,
            default_expression="gen_random_uuid()",
            unique=True,
            references={"table": "codes", "columns": ["code"]},
        )
    )
    every = [s.id for s in plan.steps()] + [s.rollback.id for s in plan.steps() if s.rollback]
    assert len(every) == len(set(every))
    assert all(s.rollback is not None for s in plan.stage(Stage.EXPAND).steps)


@pytest.mark.parametrize(
    ("column", "path", "fragment"),
    [
        ({"default_expression": "now(); drop table users"}, "column.default_expression", "not a valid"),
        ({"backfill": "lower(email"}, "column.backfill", "not a valid"),
        ({"default_expression": "lower(email)"}, "column.default_expression", "cannot read columns (email)"),
        ({"default": "x", "unique": True}, "column.unique", "would collide"),
    ],
)
def test_refusals_name_the_field(column: dict[str, Any], path: str, fragment: str) -> None:
    [(found, message)] = problems(add(**column))
    assert found == f"operations.0.add_column.{path}"
    assert fragment in message


# --- MySQL: what add_column cannot honour there ---------------------------------------------------


@pytest.mark.parametrize(
    ("column", "field"),
    [
        ({"default_expression": "now()"}, "default_expression"),
        ({"backfill": "lower(email)"}, "backfill"),
        ({"unique": True}, "unique"),
        ({"references": {"table": "teams"}}, "references"),
    ],
)
def test_mysql_refuses_what_it_cannot_do_online(column: dict[str, Any], field: str) -> None:
    [(path, message)] = problems(add(**column), engine="mysql")
    assert path == f"operations.0.add_column.column.{field}"
    assert "not available on MySQL" in message


# --- drop_column with its archive -----------------------------------------------------------------


def users(**columns: ColumnInfo) -> TableInfo:
    base = {"id": ColumnInfo(name="id", type="bigint", nullable=False)}
    return TableInfo(name="users", columns={**base, **columns}, primary_key=["id"])


def archived(table: TableInfo | None, column: str = "legacy") -> Plan:
    tables: dict[str, TableInfo | None] | None = None if table is None else {"users": table}
    return plan_of({"drop_column": {"table": "users", "column": column, "archive": True}}, tables=tables)


def test_archive_then_drop_in_contract_nothing_before() -> None:
    plan = archived(users(legacy=ColumnInfo(name="legacy", type="text", nullable=True)))
    assert plan.stage(Stage.EXPAND).steps == [] and plan.stage(Stage.BACKFILL).steps == []
    assert ids(plan, Stage.CONTRACT) == [
        "contract.00.drop_column.legacy.archive_table",
        "contract.00.drop_column.legacy.archive_values",
        "contract.00.drop_column.legacy",
    ]
    table = step(plan, "contract.00.drop_column.legacy.archive_table")
    assert table.sql is not None
    assert table.sql.startswith(
        'CREATE TABLE IF NOT EXISTS "_osc_archive_users_legacy" AS SELECT "id", "legacy" FROM "users" WITH NO DATA; '
        'CREATE UNIQUE INDEX IF NOT EXISTS "_osc_archive_users_legacy_key" ON "_osc_archive_users_legacy" ("id"); '
        'COMMENT ON TABLE "_osc_archive_users_legacy" IS'
    )
    assert table.rollback is not None
    assert table.rollback.sql == 'DROP TABLE IF EXISTS "_osc_archive_users_legacy"'
    copy = step(plan, "contract.00.drop_column.legacy.archive_values")
    assert copy.sql == (
        'DELETE FROM "_osc_archive_users_legacy"; '
        'INSERT INTO "_osc_archive_users_legacy" SELECT "id", "legacy" FROM "users"'
    )
    restore = copy.rollback
    assert restore is not None and restore.action is StepAction.BACKFILL and restore.backfill is not None
    assert restore.backfill.expression == (
        'CASE WHEN EXISTS (SELECT FROM "_osc_archive_users_legacy" AS a WHERE a."id" = "users"."id") '
        'THEN (SELECT a."legacy" FROM "_osc_archive_users_legacy" AS a WHERE a."id" = "users"."id") '
        'ELSE "legacy" END'
    )
    drop = step(plan, "contract.00.drop_column.legacy")
    assert drop.irreversible_reason is None
    assert drop.rollback is not None
    assert drop.rollback.sql == 'ALTER TABLE "users" ADD COLUMN IF NOT EXISTS "legacy" text'


@pytest.mark.parametrize(
    ("info", "sql"),
    [
        (
            ColumnInfo(name="legacy", type="integer", nullable=False, default="0"),
            'ALTER TABLE "users" ADD COLUMN IF NOT EXISTS "legacy" integer DEFAULT 0 NOT NULL',
        ),
        (
            ColumnInfo(
                name="legacy", type="character varying(20)", nullable=True, default="'x'::character varying"
            ),
            'ALTER TABLE "users" ADD COLUMN IF NOT EXISTS "legacy" character varying(20); '
            'ALTER TABLE "users" ALTER COLUMN "legacy" SET DEFAULT \'x\'::character varying',
        ),
        (
            ColumnInfo(name="legacy", type="timestamp with time zone", nullable=False, default="now()"),
            'ALTER TABLE "users" ADD COLUMN IF NOT EXISTS "legacy" timestamp with time zone; '
            'ALTER TABLE "users" ALTER COLUMN "legacy" SET DEFAULT now()',
        ),
    ],
)
def test_the_rollback_re_adds_the_column_as_it_was(info: ColumnInfo, sql: str) -> None:
    drop = step(archived(users(legacy=info)), "contract.00.drop_column.legacy")
    assert drop.rollback is not None
    assert drop.rollback.sql == sql


def test_not_null_without_a_constant_default_is_restored_after_the_values() -> None:
    plan = archived(users(legacy=ColumnInfo(name="legacy", type="text", nullable=False)))
    contract = plan.stage(Stage.CONTRACT).steps
    checkpoints = {s.id: StepCheckpoint(s.id, "done", 1) for s in contract}
    undo = rollback_steps(plan, checkpoints)
    assert [s.description for s in undo] == [
        "re-add column users.legacy",
        "restore users.legacy from _osc_archive_users_legacy",
        "add check users_legacy_osc_not_null (legacy IS NOT NULL) NOT VALID",
        "validate check users_legacy_osc_not_null: every restored row has a value",
        "set users.legacy NOT NULL using the validated check, drop the check",
        "drop archive _osc_archive_users_legacy (the values are back in users.legacy)",
    ]
    assert all(s.action is StepAction.NOOP for s in contract if "not_null" in s.id)
    assert undo[3].sql == 'ALTER TABLE "users" VALIDATE CONSTRAINT "users_legacy_osc_not_null"'


def test_a_composite_key_matches_every_part() -> None:
    table = TableInfo(
        name="users",
        columns={
            "tenant": ColumnInfo(name="tenant", type="integer", nullable=False),
            "id": ColumnInfo(name="id", type="bigint", nullable=False),
            "legacy": ColumnInfo(name="legacy", type="text", nullable=True),
        },
        primary_key=["tenant", "id"],
    )
    restore = step(archived(table), "contract.00.drop_column.legacy.archive_values").rollback
    assert restore is not None and restore.backfill is not None
    assert 'a."tenant" = "users"."tenant" AND a."id" = "users"."id"' in restore.backfill.expression


def test_offline_the_type_comes_from_the_archive() -> None:
    drop = step(archived(None), "contract.00.drop_column.legacy")
    assert drop.rollback is not None and drop.rollback.sql is not None
    assert drop.rollback.sql.startswith(
        "DO $osc$ BEGIN EXECUTE format('ALTER TABLE %I ADD COLUMN IF NOT EXISTS %I %s'"
    )
    assert "to_regclass(E'\"_osc_archive_users_legacy\"')" in drop.rollback.sql
    assert "assumed to be id" in step(archived(None), "contract.00.drop_column.legacy.archive_table").risk


@pytest.mark.parametrize(
    ("table", "fragment"),
    [
        (
            TableInfo(
                name="users", columns={"legacy": ColumnInfo(name="legacy", type="text", nullable=True)}
            ),
            "no primary key",
        ),
        (
            users(legacy=ColumnInfo(name="legacy", type="interval day to second", nullable=True)),
            "cannot plan re-adding",
        ),
    ],
)
def test_archive_refusals(table: TableInfo, fragment: str) -> None:
    with pytest.raises(SpecError) as caught:
        archived(table)
    [(path, message)] = caught.value.problems
    assert path == "operations.0.drop_column.archive"
    assert fragment in message


def test_without_archive_the_drop_stays_irreversible() -> None:
    [drop] = plan_of({"drop_column": {"table": "users", "column": "legacy"}}).steps()
    assert drop.rollback is None
    assert drop.irreversible_reason == "dropping users.legacy discards its values"


# --- shared SQL text ------------------------------------------------------------------------------


def test_derived_names_fit_and_stay_distinct() -> None:
    assert derived_name("users", "band", suffix="key") == "users_band_key"
    first = derived_name("t" * 40, "a" * 30, suffix="key")
    second = derived_name("t" * 40, "b" * 30, suffix="key")
    assert len(first) == len(second) == 63
    assert first != second and first.endswith("_key")
    long_suffix = derived_name("_osc_archive", "t" * 40, suffix="c" * 60)
    assert len(long_suffix) <= 63 and check_identifier(long_suffix) == long_suffix


def test_do_block_tag_never_appears_inside() -> None:
    assert do_block("SELECT 1;") == "DO $osc$ BEGIN SELECT 1; END $osc$"
    assert do_block("SELECT '$osc$';") == "DO $osc1$ BEGIN SELECT '$osc$'; END $osc1$"


@pytest.mark.parametrize(
    ("expression", "constant"),
    [
        ("0", True),
        ("'new'::text", True),
        ("'{}'::text[]", True),
        ("'-1'::integer", True),
        ("(- 1)", True),
        ("now()", False),
        ("nextval('users_id_seq'::regclass)", False),
        ("(1 + 1)", False),
    ],
)
def test_constant_defaults(expression: str, constant: bool) -> None:
    assert is_constant(expression) is constant
