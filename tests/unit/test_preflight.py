"""preflight_problems: the spec judged against hand-built snapshots of the live schema."""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator.domain.errors import SpecError
from orchestrator.domain.schema import ColumnInfo, IndexInfo, TableInfo
from orchestrator.engine.preflight import LiveSchema, preflight, preflight_problems, read_live_schema
from tests.unit.fakes import ScriptedTarget, make_spec


def table(
    name: str = "users",
    columns: tuple[str, ...] = ("id", "email", "legacy"),
    *,
    primary_key: tuple[str, ...] = ("id",),
    indexes: tuple[str, ...] = (),
) -> TableInfo:
    return TableInfo(
        name=name,
        columns={c: ColumnInfo(name=c, type="text", nullable=c not in primary_key) for c in columns},
        indexes={i: IndexInfo(name=i, columns=["email"], valid=True, unique=False) for i in indexes},
        primary_key=list(primary_key),
        estimated_rows=1000,
    )


USERS = table()
LIVE = LiveSchema(tables={"users": USERS})


def add(column: str, table: str = "users") -> dict[str, Any]:
    return {"add_column": {"table": table, "column": {"name": column, "type": "text"}}}


def index(name: str, *columns: str, table: str = "users") -> dict[str, Any]:
    return {"create_index": {"table": table, "name": name, "columns": list(columns)}}


def backfill(column: str, expression: str = "lower(email)", table: str = "users") -> dict[str, Any]:
    return {"backfill": {"table": table, "column": column, "expression": expression}}


def drop(column: str, table: str = "users") -> dict[str, Any]:
    return {"drop_column": {"table": table, "column": column}}


def problems(*operations: dict[str, Any], live: LiveSchema = LIVE) -> list[tuple[str, str]]:
    return preflight_problems(make_spec(*operations), live, "app")


def paths(*operations: dict[str, Any], live: LiveSchema = LIVE) -> list[str]:
    return [path for path, _ in problems(*operations, live=live)]


@pytest.mark.parametrize(
    "operations",
    [
        (add("band"),),
        (add("band"), backfill("band"), index("users_band_idx", "band")),
        (index("users_email_idx", "email"),),
        (backfill("email"),),
        (drop("legacy"),),
        (add("band"), drop("legacy"), backfill("band", "coalesce(legacy, email)")),
    ],
)
def test_a_spec_that_fits_the_schema_has_no_problems(operations: tuple[dict[str, Any], ...]) -> None:
    assert problems(*operations) == []


def test_missing_table() -> None:
    [(path, message)] = problems(add("band", table="accounts"))
    assert path == "operations.0.add_column.table"
    assert "'accounts' does not exist on target 'app'" in message


def test_missing_table_snapshot_of_none_is_missing_too() -> None:
    live = LiveSchema(tables={"users": None})
    assert paths(add("band"), drop("legacy"), live=live) == [
        "operations.0.add_column.table",
        "operations.1.drop_column.table",
    ]


def test_a_missing_table_is_reported_once_per_operation_and_nothing_more() -> None:
    # No follow-on complaints (columns, primary key) about a table that is not there.
    assert paths(backfill("band", table="accounts"), index("i", "x", table="accounts")) == [
        "operations.0.backfill.table",
        "operations.1.create_index.table",
    ]


def test_column_already_exists() -> None:
    [(path, message)] = problems(add("email"))
    assert path == "operations.0.add_column.column.name"
    assert "users.email already exists" in message


def test_drop_of_a_missing_column() -> None:
    [(path, message)] = problems(drop("nope"))
    assert path == "operations.0.drop_column.column"
    assert "users.nope does not exist" in message


def test_drop_of_a_primary_key_column() -> None:
    [(path, message)] = problems(drop("id"))
    assert path == "operations.0.drop_column.column"
    assert "primary key" in message


def test_drop_of_one_column_of_a_composite_primary_key() -> None:
    live = LiveSchema(
        tables={
            "memberships": table("memberships", ("org_id", "user_id", "x"), primary_key=("org_id", "user_id"))
        }
    )
    assert paths(drop("user_id", table="memberships"), live=live) == ["operations.0.drop_column.column"]


def test_backfill_without_primary_key() -> None:
    live = LiveSchema(tables={"events": table("events", ("payload", "kind"), primary_key=())})
    [(path, message)] = problems(backfill("kind", "lower(payload)", table="events"), live=live)
    assert path == "operations.0.backfill.table"
    assert "no primary key" in message


def test_backfill_of_a_missing_column() -> None:
    assert paths(backfill("band")) == ["operations.0.backfill.column"]


def test_backfill_of_a_column_added_earlier_in_the_spec_is_fine() -> None:
    assert problems(add("band"), backfill("band")) == []


def test_backfill_of_a_column_dropped_earlier_is_refused() -> None:
    assert paths(drop("legacy"), backfill("legacy")) == ["operations.1.backfill.column"]


def test_index_name_taken() -> None:
    live = LiveSchema(tables={"users": USERS}, relations={"users_email_idx": True})
    [(path, message)] = problems(index("users_email_idx", "email"), live=live)
    assert path == "operations.0.create_index.name"
    assert "'users_email_idx' already exists" in message


def test_index_name_known_free() -> None:
    live = LiveSchema(tables={"users": USERS}, relations={"users_email_idx": False})
    assert problems(index("users_email_idx", "email"), live=live) == []


def test_index_on_a_column_added_earlier_in_the_same_spec_is_fine() -> None:
    assert problems(add("band"), index("users_band_idx", "band")) == []


def test_index_on_a_column_added_later_in_the_spec_is_refused() -> None:
    # Steps run in spec order within expand, so the index would be built before the column exists.
    assert paths(index("users_band_idx", "band"), add("band")) == ["operations.0.create_index.columns.0"]


def test_index_on_a_column_added_to_another_table_is_refused() -> None:
    live = LiveSchema(tables={"users": USERS, "accounts": table("accounts", ("id",))})
    assert paths(add("band", table="accounts"), index("users_band_idx", "band"), live=live) == [
        "operations.1.create_index.columns.0"
    ]


def test_index_columns_are_checked_one_by_one() -> None:
    assert paths(index("i", "email", "nope", "id", "gone")) == [
        "operations.0.create_index.columns.1",
        "operations.0.create_index.columns.3",
    ]


def test_index_on_a_column_dropped_earlier_is_refused() -> None:
    assert paths(drop("legacy"), index("i", "legacy")) == ["operations.1.create_index.columns.0"]


def test_drop_of_a_column_dropped_earlier_is_refused() -> None:
    # The planner refuses this too; preflight sees it as the column no longer existing.
    assert "operations.1.drop_column.column" in paths(drop("legacy"), drop("legacy"))


def test_expression_error_is_reported_at_the_expression() -> None:
    live = LiveSchema(tables={"users": USERS}, expression_errors={1: 'column "emial" does not exist'})
    [(path, message)] = problems(add("band"), backfill("email", "lower(emial)"), live=live)
    assert path == "operations.1.backfill.expression"
    assert message == 'column "emial" does not exist'


def test_every_problem_is_reported() -> None:
    live = LiveSchema(tables={"users": USERS}, relations={"taken": True}, expression_errors={3: "boom"})
    assert paths(
        add("email"),
        drop("id"),
        index("taken", "nope"),
        backfill("email", "x"),
        add("ok", table="missing"),
        live=live,
    ) == [
        "operations.0.add_column.column.name",
        "operations.1.drop_column.column",
        "operations.2.create_index.name",
        "operations.2.create_index.columns.0",
        "operations.3.backfill.expression",
        "operations.4.add_column.table",
    ]


# --- read_live_schema / preflight through a fake target (pure: no database) -----------------------


class ExpressionCheckingTarget(ScriptedTarget):
    def __init__(self, tables: dict[str, TableInfo], bad: dict[str, str]) -> None:
        super().__init__(tables=tables)
        self.bad = bad
        self.checked: list[str] = []

    async def check_expression(self, table: str, expression: str) -> str | None:
        self.checked.append(expression)
        return self.bad.get(expression)


async def test_read_live_schema_skips_expressions_over_columns_the_spec_adds() -> None:
    target = ExpressionCheckingTarget(
        {"users": table(indexes=("users_email_idx",))}, bad={"lower(emial)": "no such column"}
    )
    spec = make_spec(
        add("band"),
        backfill("band", "upper(band)"),  # needs a column that does not exist yet: checked at run time
        backfill("email", "lower(emial)"),
        index("users_email_idx", "email"),
        add("x", table="missing"),
    )
    live = await read_live_schema(spec, target)
    assert target.checked == ["lower(emial)"]
    assert live.expression_errors == {2: "no such column"}
    assert live.relations == {"users_email_idx": True}
    assert live.tables["missing"] is None
    with pytest.raises(SpecError) as caught:
        await preflight(spec, target, "app")
    assert [path for path, _ in caught.value.problems] == [
        "operations.2.backfill.expression",
        "operations.3.create_index.name",
        "operations.4.add_column.table",
    ]


async def test_preflight_passes_quietly() -> None:
    target = ExpressionCheckingTarget({"users": USERS}, bad={})
    await preflight(make_spec(add("band"), backfill("band")), target, "app")
