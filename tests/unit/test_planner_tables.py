"""The table operations' planners (create_table, drop_table, rename_table, raw_sql): SQL shape,
quoting, stage placement, rollbacks and refusals with their field paths."""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator.domain.errors import SpecError
from orchestrator.domain.plan import Plan, Stage, Step
from orchestrator.domain.retention import ASIDE_PREFIX, MARKER_PREFIX, aside_name
from orchestrator.domain.spec import spec_json_schema
from orchestrator.engine.planner import plan_migration, render_plan_text
from tests.unit.fakes import make_spec

INVOICES = {
    "create_table": {
        "table": "invoices",
        "columns": [
            {"name": "id", "type": "bigserial"},
            {"name": "owner_id", "type": "bigint", "nullable": False, "references": {"table": "owners"}},
            {"name": "number", "type": "text", "nullable": False, "unique": True},
            {"name": "created_at", "type": "timestamptz", "nullable": False, "default_expression": "now()"},
            {"name": "status", "type": "text", "nullable": False, "default": "it's new"},
        ],
        "primary_key": ["id"],
    }
}


def plan_of(*operations: dict[str, Any], engine: str = "postgres") -> Plan:
    return plan_migration(make_spec(*operations), engine)


def steps_of(plan: Plan, stage: Stage) -> list[Step]:
    return plan.stage(stage).steps


def problems_of(*operations: dict[str, Any], engine: str = "postgres") -> list[tuple[str, str]]:
    with pytest.raises(SpecError) as caught:
        plan_of(*operations, engine=engine)
    return caught.value.problems


def raw(**params: Any) -> dict[str, Any]:
    return {"raw_sql": {"table": "items", "lock": "access_exclusive", "down": "SELECT 1", **params}}


# --- create_table --------------------------------------------------------------------------------


def test_create_table_is_one_expand_step_dropped_on_rollback() -> None:
    plan = plan_of(INVOICES)
    [step] = plan.steps()
    assert step.stage is Stage.EXPAND and step.transactional
    assert step.id == "expand.00.create_table.invoices"
    assert step.sql == (
        'CREATE TABLE IF NOT EXISTS "invoices" (\n'
        '  "id" bigserial,\n'
        '  "owner_id" bigint NOT NULL REFERENCES "owners" ("id"),\n'
        '  "number" text NOT NULL UNIQUE,\n'
        '  "created_at" timestamptz DEFAULT (now()) NOT NULL,\n'
        "  \"status\" text DEFAULT E'it''s new' NOT NULL,\n"
        '  PRIMARY KEY ("id")\n'
        ")"
    )
    assert step.rollback is not None and step.rollback.sql == 'DROP TABLE IF EXISTS "invoices"'
    assert step.rollback.stage is Stage.ROLLBACK
    assert "SHARE ROW EXCLUSIVE lock on owners" in step.risk


@pytest.mark.parametrize(
    ("on_delete", "clause"),
    [
        ("cascade", " ON DELETE CASCADE"),
        ("set_null", " ON DELETE SET NULL"),
        ("restrict", " ON DELETE RESTRICT"),
    ],
)
def test_create_table_foreign_key_actions(on_delete: str, clause: str) -> None:
    column = {"name": "owner_id", "type": "bigint", "references": {"table": "owners", "on_delete": on_delete}}
    [step] = plan_of({"create_table": {"table": "t", "columns": [column]}}).steps()
    assert step.sql is not None and f'REFERENCES "owners" ("id"){clause}' in step.sql


def test_create_table_allows_not_null_without_default() -> None:
    # ColumnDefinition refuses this for add_column (live rows); a new table has none.
    [step] = plan_of(
        {"create_table": {"table": "t", "columns": [{"name": "a", "type": "int", "nullable": False}]}}
    ).steps()
    assert step.sql == 'CREATE TABLE IF NOT EXISTS "t" (\n  "a" int NOT NULL\n)'


@pytest.mark.parametrize(
    ("table", "path", "words"),
    [
        (
            {"columns": [{"name": "a", "type": "int", "backfill": "1"}]},
            "operations.0.create_table.columns.0.backfill",
            "no rows to backfill",
        ),
        (
            {"columns": [{"name": "a", "type": "int"}, {"name": "a", "type": "text"}]},
            "operations.0.create_table.columns.1.name",
            "listed twice",
        ),
        (
            {"columns": [{"name": "a", "type": "int"}], "primary_key": ["b"]},
            "operations.0.create_table.primary_key.0",
            "not one of the table's columns",
        ),
        (
            {"columns": [{"name": "a", "type": "int", "default_expression": "b + 1"}]},
            "operations.0.create_table.columns.0.default_expression",
            "cannot read other columns (b)",
        ),
        (
            {"columns": [{"name": "a", "type": "int", "default_expression": "1; DROP TABLE x"}]},
            "operations.0.create_table.columns.0.default_expression",
            "",
        ),
        (
            {"columns": [{"name": "a", "type": "int", "references": {"table": "o", "columns": ["x", "y"]}}]},
            "operations.0.create_table.columns.0.references.columns",
            "add_foreign_key",
        ),
        (
            {
                "columns": [
                    {
                        "name": "a",
                        "type": "int",
                        "nullable": False,
                        "references": {"table": "o", "on_delete": "set_null"},
                    }
                ]
            },
            "operations.0.create_table.columns.0.references.on_delete",
            "nullable column",
        ),
    ],
)
def test_create_table_refusals_name_the_field(table: dict[str, Any], path: str, words: str) -> None:
    problems = problems_of({"create_table": {"table": "t", **table}})
    assert any(field == path and words in message for field, message in problems), problems


def test_create_table_column_model_still_refuses_two_defaults() -> None:
    with pytest.raises(SpecError) as caught:
        make_spec(
            {
                "create_table": {
                    "table": "t",
                    "columns": [{"name": "a", "type": "int", "default": 1, "default_expression": "2"}],
                }
            }
        )
    [(field, message)] = caught.value.problems
    assert field == "operations.0.create_table.columns.0" and "not both" in message


# --- drop_table ----------------------------------------------------------------------------------


def test_drop_table_sets_aside_in_contract_only() -> None:
    plan = plan_of({"drop_table": {"table": "legacy", "retention_hours": 48}})
    assert steps_of(plan, Stage.EXPAND) == []
    [step] = steps_of(plan, Stage.CONTRACT)
    aside = aside_name("legacy", "demo")
    assert step.id == "contract.00.drop_table.legacy"
    assert step.sql is not None and step.rollback is not None and step.rollback.sql is not None
    assert f'ALTER TABLE "legacy" RENAME TO "{aside}"' in step.sql
    assert "make_interval(hours => 48)" in step.sql
    assert MARKER_PREFIX in step.sql
    assert f'ALTER TABLE "{aside}" RENAME TO "legacy"' in step.rollback.sql
    assert "was purged" in step.rollback.sql  # a rollback after the purge fails loudly
    assert step.irreversible_reason is None


def test_drop_table_with_no_retention_drops_at_once_and_is_irreversible() -> None:
    [step] = plan_of({"drop_table": {"table": "legacy", "retention_hours": 0}}).steps()
    assert step.stage is Stage.CONTRACT
    assert step.sql == 'DROP TABLE IF EXISTS "legacy"'
    assert (
        step.rollback is None
        and step.irreversible_reason
        and "retention_hours is 0" in step.irreversible_reason
    )


def test_aside_names_fit_the_identifier_limit_and_differ_per_migration() -> None:
    long_table = "t" * 63
    name = aside_name(long_table, "m1")
    assert len(name.encode()) <= 63 and name.startswith(ASIDE_PREFIX)
    assert aside_name(long_table, "m1") == name  # deterministic: the checkpoint key of a replay
    assert aside_name(long_table, "m2") != name
    assert aside_name("t" * 62 + "u", "m1") != name  # names cut to the same prefix stay apart


# --- rename_table --------------------------------------------------------------------------------


def test_rename_table_renames_in_expand_and_drops_the_view_in_contract() -> None:
    plan = plan_of({"rename_table": {"table": "items", "new_name": "products"}})
    [expand] = steps_of(plan, Stage.EXPAND)
    [contract] = steps_of(plan, Stage.CONTRACT)
    assert expand.sql is not None and expand.rollback is not None and expand.rollback.sql is not None
    assert 'ALTER TABLE "items" RENAME TO "products";' in expand.sql
    assert 'CREATE VIEW "items" AS SELECT * FROM "products";' in expand.sql
    assert "OWNER TO" in expand.sql and "GRANT %s ON %I TO %s" in expand.sql
    assert 'ALTER VIEW "items" SET (security_invoker = true)' in expand.sql
    assert 'DROP VIEW "items";' in expand.rollback.sql
    assert 'ALTER TABLE "products" RENAME TO "items";' in expand.rollback.sql
    assert contract.sql == 'DROP VIEW IF EXISTS "items"'
    assert contract.rollback is not None and contract.rollback.sql is not None
    assert 'CREATE VIEW "items" AS SELECT * FROM "products";' in contract.rollback.sql


# --- raw_sql -------------------------------------------------------------------------------------


def test_raw_sql_transactional_is_one_step_with_its_down() -> None:
    plan = plan_of(
        raw(
            sql="ALTER TABLE items ADD COLUMN a int; ALTER TABLE items ADD COLUMN b int",
            down="ALTER TABLE items DROP COLUMN a, DROP COLUMN b",
        )
    )
    [step] = steps_of(plan, Stage.EXPAND)
    assert step.transactional
    assert step.sql == "ALTER TABLE items ADD COLUMN a int; ALTER TABLE items ADD COLUMN b int"
    assert step.rollback is not None and step.rollback.sql == "ALTER TABLE items DROP COLUMN a, DROP COLUMN b"
    assert "ACCESS EXCLUSIVE: every read and write waits" in step.risk
    assert "2 statement(s) in one transaction" in step.risk


def test_raw_sql_outside_a_transaction_is_a_step_per_statement_and_one_down() -> None:
    plan = plan_of(
        raw(
            sql="CREATE INDEX CONCURRENTLY a_idx ON items (a); CREATE INDEX CONCURRENTLY b_idx ON items (b);",
            down="DROP INDEX CONCURRENTLY IF EXISTS a_idx; DROP INDEX CONCURRENTLY IF EXISTS b_idx",
            transactional=False,
            lock="share_update_exclusive",
        )
    )
    first, second = steps_of(plan, Stage.EXPAND)
    assert [first.id, second.id] == ["expand.00.raw_sql.items.1", "expand.00.raw_sql.items.2"]
    assert first.sql == "CREATE INDEX CONCURRENTLY a_idx ON items (a)"
    assert second.sql == "CREATE INDEX CONCURRENTLY b_idx ON items (b)"
    assert not first.transactional and not second.transactional
    assert first.rollback is not None and not first.rollback.transactional
    assert (
        first.rollback.sql
        == "DROP INDEX CONCURRENTLY IF EXISTS a_idx; DROP INDEX CONCURRENTLY IF EXISTS b_idx"
    )
    assert second.rollback is None and "undone by the down of 1/2" in second.description
    assert "leaves an INVALID index" in first.risk  # what create_index would have cleaned up


def test_raw_sql_in_contract_irreversible_with_lint_findings_in_its_risk() -> None:
    [step] = plan_of(
        {
            "raw_sql": {
                "table": "items",
                "lock": "share",
                "stage": "contract",
                "irreversible": True,
                "sql": "CREATE INDEX items_note_idx ON items (note)",
            }
        }
    ).steps()
    assert step.stage is Stage.CONTRACT
    assert step.rollback is None and step.irreversible_reason == "raw_sql declared irreversible: true"
    assert "create-index-non-concurrent" in step.risk and "CONCURRENTLY" in step.risk
    assert "lock-timeout-missing" not in step.risk  # osctl sets lock_timeout itself


@pytest.mark.parametrize(
    ("params", "path", "words"),
    [
        (
            {"sql": "CREATE INDEX CONCURRENTLY a ON items (a)"},
            "operations.0.raw_sql.transactional",
            "cannot run inside a transaction block",
        ),
        ({"sql": "VACUUM items"}, "operations.0.raw_sql.transactional", "transactional: false"),
        (
            {"sql": "SELECT 1", "down": "DROP INDEX CONCURRENTLY a"},
            "operations.0.raw_sql.transactional",
            "of 'down'",
        ),
        ({"sql": "BEGIN; UPDATE items SET a = 1; COMMIT"}, "operations.0.raw_sql.sql", "transaction control"),
        ({"sql": "ALTER TABLE items ADD COLUMN"}, "operations.0.raw_sql.sql", "does not parse"),
        ({"sql": "SELECT 1", "down": "DROP TABEL x"}, "operations.0.raw_sql.down", "does not parse"),
        ({"sql": "-- nothing"}, "operations.0.raw_sql.sql", "no SQL statement"),
    ],
)
def test_raw_sql_refusals_name_the_field(params: dict[str, Any], path: str, words: str) -> None:
    problems = problems_of(raw(**params))
    assert any(field == path and words in message for field, message in problems), problems


def test_raw_sql_model_needs_down_or_irreversible() -> None:
    with pytest.raises(SpecError) as caught:
        make_spec({"raw_sql": {"table": "items", "lock": "share", "sql": "SELECT 1"}})
    [(field, message)] = caught.value.problems
    assert field == "operations.0.raw_sql" and "irreversible: true" in message


# --- faces: plan text, JSON Schema, engines ----------------------------------------------------------


def test_plan_text_shows_purpose_sql_risk_rollback_and_estimate_for_each_kind() -> None:
    plan = plan_of(
        INVOICES,
        {"rename_table": {"table": "items", "new_name": "products"}},
        {"drop_table": {"table": "legacy"}},
        raw(sql="UPDATE products SET qty = 0", lock="row_exclusive", stage="contract"),
    )
    text = render_plan_text(plan)
    for step in plan.steps():
        assert f"- {step.id}: {step.description}" in text
        assert step.risk and step.estimate
    assert text.count("rollback: ") == len(plan.steps())
    assert "unbatched-data-change" in text
    assert "Destructive cleanup" in text and "Additive, lock-safe" in text


def test_json_schema_documents_the_table_kinds() -> None:
    schema = spec_json_schema()
    kinds = {
        next(iter(entry["properties"])) for entry in schema["properties"]["operations"]["items"]["oneOf"]
    }
    assert {"create_table", "drop_table", "rename_table", "raw_sql"} <= kinds
    definitions = schema["$defs"]
    assert "TableColumn" in definitions
    assert set(definitions["RawSql"]["properties"]) >= {
        "sql",
        "down",
        "irreversible",
        "lock",
        "stage",
        "transactional",
    }
    assert "retention_hours" in definitions["DropTable"]["properties"]


@pytest.mark.parametrize(
    "operation",
    [
        INVOICES,
        {"drop_table": {"table": "legacy"}},
        {"rename_table": {"table": "items", "new_name": "products"}},
        raw(sql="SELECT 1"),
    ],
)
def test_table_kinds_are_refused_on_mysql(operation: dict[str, Any]) -> None:
    problems = problems_of(operation, engine="mysql")
    assert any("not available on mysql" in message for _field, message in problems), problems
