"""rename_column and alter_column planned for PostgreSQL: stages, SQL shape, quoting, the sync
trigger's decisions, carried-over defaults, NOT NULL and indexes, rollbacks and refusals."""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator.domain.errors import IrreversibleError, SpecError
from orchestrator.domain.plan import Plan, Stage, Step, StepAction
from orchestrator.domain.schema import ColumnInfo, ConstraintInfo, IndexInfo, TableInfo
from orchestrator.domain.spec import spec_json_schema
from orchestrator.engine.planner import plan_migration, render_plan_text
from orchestrator.engine.planner.postgres.sync_triggers import (
    SyncPair,
    bare_constant,
    function_sql,
    over_new,
    substitute,
)
from orchestrator.engine.preflight_columns import expression_to_compile, problems
from orchestrator.engine.rollback import rollback_steps
from orchestrator.ports import StepCheckpoint
from tests.unit.fakes import make_spec


def items(**changes: Any) -> TableInfo:
    """`items` as describe_table reads it: an identity key, qty NOT NULL DEFAULT 0 with an index and a
    unique constraint over (qty, name), a nullable note."""
    columns = {
        "id": ColumnInfo(name="id", type="bigint", nullable=False, identity=True),
        "name": ColumnInfo(name="name", type="text", nullable=False),
        "qty": ColumnInfo(name="qty", type="integer", nullable=False, default="0"),
        "note": ColumnInfo(name="note", type="text", nullable=True),
        "created_at": ColumnInfo(
            name="created_at", type="timestamp with time zone", nullable=False, default="now()"
        ),
    }
    indexes = {
        "items_pkey": IndexInfo(
            name="items_pkey",
            columns=["id"],
            valid=True,
            unique=True,
            constraint="items_pkey",
            definition="CREATE UNIQUE INDEX items_pkey ON public.items USING btree (id)",
        ),
        "items_qty_idx": IndexInfo(
            name="items_qty_idx",
            columns=[],
            valid=True,
            unique=False,
            definition="CREATE INDEX items_qty_idx ON public.items USING btree (abs(qty)) WHERE (qty > 0)",
        ),
        "items_qty_key": IndexInfo(
            name="items_qty_key",
            columns=["qty", "name"],
            valid=True,
            unique=True,
            constraint="items_qty_key",
            definition="CREATE UNIQUE INDEX items_qty_key ON public.items USING btree (qty, name)",
        ),
    }
    constraints = {
        "items_pkey": ConstraintInfo(name="items_pkey", kind="p"),
        "items_qty_key": ConstraintInfo(name="items_qty_key", kind="u"),
    }
    fields: dict[str, Any] = {
        "name": "items",
        "columns": columns,
        "indexes": indexes,
        "constraints": constraints,
        "primary_key": ["id"],
        "estimated_rows": 5000,
    }
    return TableInfo(**{**fields, **changes})


def plan_of(*operations: dict[str, Any], table: TableInfo | None = None) -> Plan:
    return plan_migration(make_spec(*operations), tables={"items": table} if table else None)


def refusals(*operations: dict[str, Any], table: TableInfo | None = None) -> list[tuple[str, str]]:
    with pytest.raises(SpecError) as caught:
        plan_of(*operations, table=table)
    return caught.value.problems


def ids(plan: Plan, stage: Stage) -> list[str]:
    return [step.id for step in plan.stage(stage).steps]


def step(plan: Plan, step_id: str) -> Step:
    [found] = [candidate for candidate in plan.steps() if candidate.id == step_id]
    return found


def rename(column: str = "note", new_name: str = "memo") -> dict[str, Any]:
    return {"rename_column": {"table": "items", "column": column, "new_name": new_name}}


def alter(column: str = "qty", **changes: Any) -> dict[str, Any]:
    return {"alter_column": {"table": "items", "column": column, **changes}}


# --- the sync trigger ----------------------------------------------------------------------------


def test_trigger_function_decides_which_column_was_written() -> None:
    pair = SyncPair(
        table="items", old="qty", new="quantity", up='NEW."qty"', down='NEW."quantity"', unset="0"
    )
    assert function_sql(pair) == (
        'CREATE OR REPLACE FUNCTION "_osc_items_qty_sync"() RETURNS trigger LANGUAGE plpgsql AS $osc$\n'
        "BEGIN\n"
        "  IF TG_OP = 'INSERT' THEN\n"
        '    IF NEW."quantity" IS NOT DISTINCT FROM 0 THEN\n'
        '      NEW."quantity" := NEW."qty";\n'
        '    ELSIF NEW."quantity" IS DISTINCT FROM NEW."qty" THEN\n'
        '      NEW."qty" := NEW."quantity";\n'
        "    END IF;\n"
        '  ELSIF NEW."quantity" IS DISTINCT FROM OLD."quantity" AND NEW."qty" IS NOT DISTINCT FROM OLD."qty" THEN\n'
        '    IF NEW."quantity" IS DISTINCT FROM NEW."qty" THEN\n'
        '      NEW."qty" := NEW."quantity";\n'
        "    END IF;\n"
        '  ELSIF NEW."qty" IS DISTINCT FROM OLD."qty" OR NEW."quantity" IS NULL THEN\n'
        '    NEW."quantity" := NEW."qty";\n'
        "  END IF;\n"
        "  RETURN NEW;\n"
        "END\n"
        "$osc$"
    )


def test_dollar_quote_tag_cannot_be_closed_by_an_expression() -> None:
    pair = SyncPair(table="items", old="note", new="memo", up="'$osc$'", down='NEW."memo"')
    sql = function_sql(pair)
    assert sql.endswith("$oscx$") and "AS $oscx$\n" in sql


def test_expressions_read_the_row_through_new() -> None:
    assert (
        over_new("coalesce(note, '') || qty::text", "up") == "COALESCE(new.note, '') || CAST(new.qty AS text)"
    )
    assert over_new("qty / 100", "down", {"qty": "_osc_qty_new"}) == "new._osc_qty_new / 100"


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("(SELECT max(qty) FROM items)", "must not hold a subquery"),
        ("items.qty * 2", "name the row's columns bare"),
    ],
)
def test_expressions_over_other_rows_are_refused(expression: str, message: str) -> None:
    assert any(message in text for _, text in refusals(alter(up=expression, type="bigint")))


def test_defaults_carried_through_up() -> None:
    assert substitute("qty * 100", "qty", "0") == "0 * 100"
    assert substitute("qty * 2", "qty", "1 + 1") == "(1 + 1) * 2"
    assert bare_constant("'new'::text") == "'new'"
    assert bare_constant("now()") is None


# --- rename_column -------------------------------------------------------------------------------


def test_rename_planned_offline_says_what_it_reads_live() -> None:
    plan = plan_of(rename())
    assert ids(plan, Stage.EXPAND) == ["expand.00.rename_column.memo", "expand.00.rename_column.memo.copy"]
    assert ids(plan, Stage.BACKFILL) == []
    assert ids(plan, Stage.CONTRACT) == ["contract.00.rename_column.memo"]
    install = step(plan, "expand.00.rename_column.memo")
    assert install.sql is not None and install.transactional
    assert install.sql.startswith(
        'ALTER TABLE "items" ADD COLUMN IF NOT EXISTS "memo" <type of items.note>;\n'
    )
    assert "planned offline" in install.description
    assert install.rollback is not None and install.rollback.sql == (
        'DROP TRIGGER IF EXISTS "_osc_items_note_sync" ON "items";\n'
        'DROP FUNCTION IF EXISTS "_osc_items_note_sync"();\n'
        'ALTER TABLE "items" DROP COLUMN IF EXISTS "memo"'
    )
    copy = step(plan, "expand.00.rename_column.memo.copy")
    assert copy.action is StepAction.BACKFILL and copy.backfill is not None
    assert (copy.backfill.column, copy.backfill.expression) == ("memo", '"note"')
    assert copy.irreversible_reason is None


def test_rename_copies_type_default_not_null_and_indexes() -> None:
    plan = plan_of(rename("qty", "quantity"), table=items())
    assert ids(plan, Stage.EXPAND) == [
        "expand.00.rename_column.quantity",
        "expand.00.rename_column.quantity.copy",
        "expand.00.rename_column.quantity.not_null",
        "expand.00.rename_column.quantity.validate",
        "expand.00.rename_column.index.items_qty_idx",
        "expand.00.rename_column.index.items_qty_key",
    ]
    install = step(plan, "expand.00.rename_column.quantity").sql
    assert install is not None
    assert install.startswith(
        'ALTER TABLE "items" ADD COLUMN IF NOT EXISTS "quantity" integer;\n'
        'ALTER TABLE "items" ALTER COLUMN "quantity" SET DEFAULT 0;\n'
    )
    # An INSERT that names neither column leaves the new one at the shared constant default.
    assert 'IF NEW."quantity" IS NOT DISTINCT FROM 0 THEN' in install
    assert step(plan, "expand.00.rename_column.index.items_qty_idx").sql == (
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS _osc_items_qty_idx_new ON public.items "
        "((abs(quantity))) WHERE quantity > 0"
    )
    contract = step(plan, "contract.00.rename_column.quantity")
    assert contract.sql is not None
    assert contract.sql.split(";\n")[2:6] == [
        'ALTER TABLE "items" ALTER COLUMN "quantity" SET NOT NULL',
        'ALTER TABLE "items" DROP CONSTRAINT IF EXISTS "_osc_items_quantity_not_null"',
        'ALTER TABLE "items" DROP COLUMN IF EXISTS "qty"',
        'ALTER INDEX IF EXISTS "_osc_items_qty_idx_new" RENAME TO "items_qty_idx"',
    ]
    assert (
        'ALTER TABLE "items" ADD CONSTRAINT "items_qty_key" UNIQUE USING INDEX "_osc_items_qty_key_new"'
        in contract.sql
    )
    assert contract.rollback is not None and contract.rollback.sql is not None
    assert 'ALTER TABLE "items" RENAME COLUMN "quantity" TO "qty"' in contract.rollback.sql


def test_rename_volatile_default_moves_over_at_contract() -> None:
    plan = plan_of(rename("created_at", "made_at"), table=items())
    install = step(plan, "expand.00.rename_column.made_at").sql
    assert install is not None and "SET DEFAULT" not in install
    assert 'IF NEW."made_at" IS NULL THEN' in install
    contract = step(plan, "contract.00.rename_column.made_at").sql
    assert contract is not None
    assert 'ALTER TABLE "items" ALTER COLUMN "made_at" SET DEFAULT now()' in contract


@pytest.mark.parametrize(
    ("operation", "table", "path", "message"),
    [
        (rename("id", "key"), items(), "column", "is part of the primary key"),
        (rename("id", "key"), items(primary_key=[]), "column", "is an identity column"),
        (rename("note", "name"), items(), "new_name", "exists already"),
        (rename("note", "note"), None, "new_name", "is the column's name already"),
        (rename("gone", "memo"), items(), "column", "does not exist"),
        (rename(), items(primary_key=[]), "column", "has no primary key, nor a unique index"),
        (
            rename("note", "memo"),
            items(column_dependents={"note": ["rule _RETURN on view item_notes"]}),
            "column",
            "cannot take these over at contract: view item_notes",
        ),
    ],
)
def test_rename_refusals_name_the_field(
    operation: dict[str, Any], table: TableInfo | None, path: str, message: str
) -> None:
    found = refusals(operation, table=table)
    assert any(where == f"operations.0.rename_column.{path}" and message in text for where, text in found), (
        found
    )


def test_rename_refuses_an_exclusion_constraint_and_an_invalid_index() -> None:
    table = items()
    indexes = {
        **table.indexes,
        "items_note_excl": IndexInfo(
            name="items_note_excl",
            columns=["note"],
            valid=True,
            unique=False,
            constraint="items_note_excl",
            definition="CREATE INDEX items_note_excl ON public.items USING gist (note)",
        ),
        "items_note_idx": IndexInfo(
            name="items_note_idx",
            columns=["note"],
            valid=False,
            unique=False,
            definition="CREATE INDEX items_note_idx ON public.items USING btree (note)",
        ),
    }
    constraints = {**table.constraints, "items_note_excl": ConstraintInfo(name="items_note_excl", kind="x")}
    found = refusals(rename(), table=items(indexes=indexes, constraints=constraints))
    messages = " ".join(text for _, text in found)
    assert "exclusion constraint items_note_excl" in messages
    assert "items_note_idx on items.note is INVALID" in messages


# --- alter_column: synced column -----------------------------------------------------------------


def test_alter_type_stages_and_swap() -> None:
    plan = plan_of(alter(type="bigint"), table=items())
    assert ids(plan, Stage.EXPAND) == ["expand.00.alter_column._osc_qty_new"]
    assert ids(plan, Stage.BACKFILL) == [
        "backfill.00.alter_column._osc_qty_new.copy",
        "backfill.00.alter_column._osc_qty_new.not_null",
        "backfill.00.alter_column._osc_qty_new.validate",
        "backfill.00.alter_column.index.items_qty_idx",
        "backfill.00.alter_column.index.items_qty_key",
    ]
    install = step(plan, "expand.00.alter_column._osc_qty_new").sql
    assert install is not None
    assert install.split(";\n")[:4] == [
        'ALTER TABLE "items" ADD COLUMN IF NOT EXISTS "_osc_qty_new" bigint',
        'UPDATE "items" SET "_osc_qty_new" = CAST(("qty") AS bigint) WHERE false',
        'SELECT _osc_qty_new FROM "items" WHERE false',
        'SELECT CAST(0 AS bigint) FROM "items" WHERE false',
    ]
    copy = step(plan, "backfill.00.alter_column._osc_qty_new.copy").backfill
    assert copy is not None and copy.expression == 'coalesce("_osc_qty_new", CAST(("qty") AS bigint))'
    contract = step(plan, "contract.00.alter_column._osc_qty_new")
    assert contract.sql is not None and contract.rollback is None
    assert contract.irreversible_reason is not None and "to integer again" in contract.irreversible_reason
    # Replayed after its commit, the swap must not drop the column that took the old name.
    assert "AND attname = E'_osc_qty_new'" in contract.sql.splitlines()[2]
    body = [line.strip() for line in contract.sql.splitlines()[3:-3]]
    assert body == [
        'DROP TRIGGER IF EXISTS "_osc_items_qty_sync" ON "items";',
        'DROP FUNCTION IF EXISTS "_osc_items_qty_sync"();',
        'ALTER TABLE "items" DROP COLUMN "qty";',
        'ALTER TABLE "items" RENAME COLUMN "_osc_qty_new" TO "qty";',
        'ALTER TABLE "items" ALTER COLUMN "qty" SET NOT NULL;',
        'ALTER TABLE "items" DROP CONSTRAINT IF EXISTS "_osc_items_qty_not_null";',
        'ALTER TABLE "items" ALTER COLUMN "qty" SET DEFAULT 0;',
        'ALTER INDEX IF EXISTS "_osc_items_qty_idx_new" RENAME TO "items_qty_idx";',
        'ALTER TABLE "items" ADD CONSTRAINT "items_qty_key" UNIQUE USING INDEX "_osc_items_qty_key_new";',
    ]


def test_alter_with_up_and_down_maps_both_ways() -> None:
    plan = plan_of(alter(up="qty * 100", down="qty / 100"), table=items())
    install = step(plan, "expand.00.alter_column._osc_qty_new").sql
    assert install is not None
    assert 'NEW."_osc_qty_new" := CAST(new.qty * 100 AS integer);' in install
    assert 'NEW."qty" := new._osc_qty_new / 100;' in install
    contract = step(plan, "contract.00.alter_column._osc_qty_new").sql
    assert contract is not None and "SET DEFAULT CAST((0 * 100) AS integer);" in contract


def test_alter_not_null_through_up() -> None:
    plan = plan_of(alter("note", nullable=False, up="coalesce(note, '')"), table=items())
    assert "backfill.00.alter_column._osc_note_new.validate" in ids(plan, Stage.BACKFILL)
    contract = step(plan, "contract.00.alter_column._osc_note_new").sql
    assert contract is not None and 'ALTER COLUMN "note" SET NOT NULL' in contract


def test_alter_nullable_with_a_type_change_relaxes_the_live_column_first() -> None:
    plan = plan_of(alter(type="bigint", nullable=True), table=items())
    assert ids(plan, Stage.EXPAND) == [
        "expand.00.alter_column.qty.drop_not_null",
        "expand.00.alter_column._osc_qty_new",
    ]
    assert "backfill.00.alter_column._osc_qty_new.not_null" not in ids(plan, Stage.BACKFILL)


def test_alter_default_that_up_cannot_carry_is_refused() -> None:
    found = refusals(alter(up="qty * char_length(name)"), table=items())
    assert found[0][0] == "operations.0.alter_column.default"
    assert "give 'default' or 'drop_default: true'" in found[0][1]
    plan = plan_of(alter(up="qty * char_length(name)", default=1), table=items())
    contract = step(plan, "contract.00.alter_column._osc_qty_new").sql
    assert contract is not None and "SET DEFAULT 1;" in contract


def test_alter_refusals() -> None:
    assert refusals(alter(down="qty", nullable=False)) == [
        (
            "operations.0.alter_column.down",
            "'down' maps new values back to old ones: give it with 'type' or 'up'",
        )
    ]
    [(path, _)] = refusals(alter(type="bigint", up="qty +"))
    assert path == "operations.0.alter_column.up"
    table = items(
        columns={
            **items().columns,
            "_osc_qty_new": ColumnInfo(name="_osc_qty_new", type="bigint", nullable=True),
        }
    )
    assert "a leftover of an earlier attempt" in refusals(alter(type="bigint"), table=table)[0][1]
    assert "altered twice" in refusals(alter(type="bigint"), alter(type="numeric"), table=items())[0][1]


def test_alter_primary_key_type_goes_to_the_shadow_table() -> None:
    table = items(columns={**items().columns, "id": ColumnInfo(name="id", type="integer", nullable=False)})
    plan = plan_of(alter("id", type="bigint"), table=table)
    assert any("shadow" in step_id for step_id in ids(plan, Stage.EXPAND))
    assert not any("_sync" in (candidate.sql or "") for candidate in plan.steps())
    # Asked for explicitly, a synced column is refused for a primary-key column, with the way out.
    [(path, message)] = refusals(alter("id", type="bigint", strategy="sync_column"), table=table)
    assert path == "operations.0.alter_column.column" and "use alter_column with strategy: shadow" in message


# --- alter_column: in place ----------------------------------------------------------------------


def test_alter_in_place_stages() -> None:
    plan = plan_of(alter("note", nullable=False), table=items())
    assert ids(plan, Stage.EXPAND) == []
    assert ids(plan, Stage.BACKFILL) == [
        "backfill.00.alter_column.note.not_null",
        "backfill.00.alter_column.note.validate",
    ]
    assert step(plan, "contract.00.alter_column.note.set_not_null").sql == (
        'ALTER TABLE "items" ALTER COLUMN "note" SET NOT NULL;\n'
        'ALTER TABLE "items" DROP CONSTRAINT IF EXISTS "_osc_items_note_not_null"'
    )
    relaxed = step(plan_of(alter(nullable=True), table=items()), "expand.00.alter_column.qty.drop_not_null")
    assert relaxed.rollback is not None
    assert relaxed.rollback.sql == 'ALTER TABLE "items" ALTER COLUMN "qty" SET NOT NULL'
    # Already as asked: nothing to do, and nothing a rollback would wrongly undo.
    assert plan_of(alter("note", nullable=True), table=items()).steps() == []


def test_alter_default_rollback_restores_the_live_default() -> None:
    set_default = step(plan_of(alter(default=5), table=items()), "expand.00.alter_column.qty.set_default")
    assert set_default.sql == 'ALTER TABLE "items" ALTER COLUMN "qty" SET DEFAULT 5'
    assert set_default.rollback is not None
    assert set_default.rollback.sql == 'ALTER TABLE "items" ALTER COLUMN "qty" SET DEFAULT 0'
    dropped = step(
        plan_of(alter(drop_default=True), table=items()), "contract.00.alter_column.qty.drop_default"
    )
    assert dropped.rollback is not None and dropped.rollback.sql.endswith("SET DEFAULT 0")  # type: ignore[union-attr]
    offline = step(plan_of(alter(default="x")), "expand.00.alter_column.qty.set_default")
    assert offline.rollback is None and offline.irreversible_reason is not None


# --- rollback, rendering, schema, preflight ------------------------------------------------------


def test_rollback_after_the_type_swap_is_refused_with_the_reason() -> None:
    plan = plan_of(alter(type="bigint"), table=items())
    checkpoints = {candidate.id: StepCheckpoint(candidate.id, "done", 1) for candidate in plan.steps()}
    with pytest.raises(IrreversibleError, match="alter the column to integer again"):
        rollback_steps(plan, checkpoints)
    del checkpoints["contract.00.alter_column._osc_qty_new"]
    undo = [candidate.id for candidate in rollback_steps(plan, checkpoints)]
    assert undo[-1] == "rollback.expand.00.alter_column._osc_qty_new"


def test_plan_text_says_purpose_risk_rollback_and_estimate() -> None:
    text = render_plan_text(plan_of(rename(), alter(type="bigint"), table=items()))
    for expected in (
        "expand: Additive",
        "risk:",
        "estimate:",
        "rollback: DROP TRIGGER",
        "rollback: none - the old",
    ):
        assert expected in text


def test_schema_documents_both_kinds() -> None:
    text = str(spec_json_schema())
    assert "rename_column" in text and "alter_column" in text and "sync_column" in text


def test_preflight_checks_names_and_compiles_up() -> None:
    table = items()
    assert (
        expression_to_compile(_op(alter(type="bigint", up="qty * 2")), table) == "CAST((qty * 2) AS bigint)"
    )
    assert expression_to_compile(_op(alter(up="qty * 2")), table) == "CAST((qty * 2) AS integer)"
    assert expression_to_compile(_op(alter(type="bigint")), table) is None
    added: set[tuple[str, str]] = set()
    dropped: set[tuple[str, str]] = set()
    found = problems(
        _op(rename("gone", "name")), "p", lambda column: column in table.columns, added, dropped, None
    )
    assert found == [
        ("p.column", "column items.gone does not exist"),
        ("p.new_name", "column items.name already exists"),
    ]
    assert added == {("items", "name")} and dropped == {("items", "gone")}
    assert problems(_op(alter(up="nope")), "p", lambda _: True, added, dropped, "no such column") == [
        ("p.up", "no such column")
    ]


def _op(operation: dict[str, Any]) -> Any:
    return make_spec(operation).ops()[0]
