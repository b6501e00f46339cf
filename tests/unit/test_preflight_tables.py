"""Preflight of the table operations against hand-built snapshots of the live schema."""

from __future__ import annotations

from typing import Any

from orchestrator.domain.retention import aside_name
from orchestrator.domain.schema import ColumnInfo, IndexInfo, TableInfo
from orchestrator.engine.preflight import LiveSchema, preflight_problems
from tests.unit.fakes import make_spec


def table(name: str, *columns: str, **extra: Any) -> TableInfo:
    return TableInfo(
        name=name,
        columns={c: ColumnInfo(name=c, type="bigint", nullable=c != "id") for c in ("id", *columns)},
        primary_key=["id"],
        **extra,
    )


OWNERS = table(
    "owners",
    "code",
    indexes={"owners_code_key": IndexInfo(name="owners_code_key", columns=["code"], valid=True, unique=True)},
)
ITEMS = table("items", "owner_id", "note")


def problems(*operations: dict[str, Any], **live: Any) -> list[tuple[str, str]]:
    schema = LiveSchema(
        tables={"owners": OWNERS, "items": ITEMS, **live.pop("tables", {})},
        relations=live.pop("relations", {}),
    )
    return preflight_problems(make_spec(*operations), schema, "app")


def create(name: str = "invoices", **column: Any) -> dict[str, Any]:
    columns = [{"name": "id", "type": "bigserial"}, {"name": "owner_id", "type": "bigint", **column}]
    return {"create_table": {"table": name, "columns": columns, "primary_key": ["id"]}}


def test_create_table_needs_a_free_name_and_real_references() -> None:
    assert problems(create(references={"table": "owners"}), tables={"invoices": None}) == []
    assert (
        problems(create(references={"table": "owners", "columns": ["code"]}), tables={"invoices": None}) == []
    )
    assert problems(create("items")) == [
        ("operations.0.create_table.table", "a relation named 'items' already exists")
    ]
    assert problems(create(), tables={"invoices": None}, relations={"invoices": True}) == [
        ("operations.0.create_table.table", "a relation named 'invoices' already exists")
    ]
    [(field, message)] = problems(create(references={"table": "nowhere"}), tables={"nowhere": None})
    assert field == "operations.0.create_table.columns.1.references.table" and "nowhere" in message
    [(field, message)] = problems(create(references={"table": "owners", "columns": ["label"]}))
    assert field == "operations.0.create_table.columns.1.references.columns" and "no column label" in message
    [(field, message)] = problems(create(references={"table": "items", "columns": ["note"]}))
    assert "neither its primary key nor unique" in message


def test_later_operations_see_the_tables_the_spec_creates_and_renames() -> None:
    index = {"create_index": {"table": "invoices", "name": "invoices_owner_idx", "columns": ["owner_id"]}}
    assert problems(create(), index, tables={"invoices": None}) == []
    renamed = {"rename_table": {"table": "items", "new_name": "products"}}
    add = {"add_column": {"table": "products", "column": {"name": "band", "type": "text"}}}
    assert problems(renamed, add, tables={"products": None}) == []
    stale = {"add_column": {"table": "items", "column": {"name": "band", "type": "text"}}}
    [(field, _message)] = problems(renamed, stale, tables={"products": None})
    assert field == "operations.1.add_column.table"


def test_drop_table_refuses_dependent_views_foreign_keys_and_a_taken_aside_name() -> None:
    drop = {"drop_table": {"table": "items"}}
    assert problems(drop) == []
    blocked = table(
        "items", "note", dependent_views=["items_report"], referenced_by=["orders.orders_item_fkey"]
    )
    found = problems(drop, tables={"items": blocked})
    assert [field for field, _ in found] == ["operations.0.drop_table.table"] * 2
    assert "items_report" in found[0][1] and "orders.orders_item_fkey" in found[1][1]
    taken = {aside_name("items", "demo"): True}
    [(field, message)] = problems(drop, relations=taken)
    assert "exists already" in message and "osctl purge-dropped" in message
    # Dropped at once, nothing is set aside: the name does not matter.
    assert problems({"drop_table": {"table": "items", "retention_hours": 0}}, relations=taken) == []
    [(field, message)] = problems({"drop_table": {"table": "gone"}}, tables={"gone": None})
    assert field == "operations.0.drop_table.table" and "does not exist" in message


def test_rename_table_needs_the_table_and_a_free_new_name() -> None:
    rename = {"rename_table": {"table": "items", "new_name": "products"}}
    assert problems(rename, tables={"products": None}) == []
    assert problems(rename, relations={"products": True}) == [
        ("operations.0.rename_table.new_name", "a relation named 'products' already exists")
    ]
    [(field, _message)] = problems(
        {"rename_table": {"table": "nope", "new_name": "x"}}, tables={"nope": None}
    )
    assert field == "operations.0.rename_table.table"


def test_raw_sql_is_not_checked_against_the_schema() -> None:
    create_raw = {
        "raw_sql": {
            "table": "brand_new",
            "lock": "none",
            "sql": "CREATE TABLE brand_new (id int)",
            "down": "DROP TABLE brand_new",
        }
    }
    assert problems(create_raw, tables={"brand_new": None}) == []
