"""The data preflight's pure decisions: which checks a spec needs, and how findings judge the plan."""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator.domain.data_checks import (
    DataCheck,
    DataCheckKind,
    DataFinding,
    DataSample,
    LiveData,
    ReplicaInfo,
    TableSize,
)
from orchestrator.domain.schema import ColumnInfo, TableInfo
from orchestrator.domain.sessions import SessionInfo
from orchestrator.domain.spec import MigrationSpec, parse_spec
from orchestrator.engine.preflight import LiveSchema, preflight_problems, preflight_warnings
from orchestrator.engine.preflight_data import (
    data_notes,
    data_problems,
    data_warnings,
    describe_finding,
    locked_tables,
    plan_data_checks,
)


def table(name: str, *columns: str, primary_key: tuple[str, ...] = ("id",)) -> TableInfo:
    return TableInfo(
        name=name,
        columns={c: ColumnInfo(name=c, type="text", nullable=c not in primary_key) for c in columns},
        primary_key=list(primary_key),
        estimated_rows=100,
    )


USERS = table("users", "id", "email", "age", "org_id", "score")
ORGS = table("orgs", "id")
TABLES = {"users": USERS, "orgs": ORGS}


def spec(*operations: dict[str, Any], **preflight: Any) -> MigrationSpec:
    return parse_spec(
        {
            "name": "demo",
            "target": "app",
            "settings": {"preflight": preflight},
            "operations": list(operations),
        }
    )


def checks(*operations: dict[str, Any]) -> list[tuple[DataCheckKind, str, tuple[str, ...]]]:
    return [(c.kind, c.path, c.expressions) for c in plan_data_checks(spec(*operations), TABLES)]


# -- which checks ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("operation", "expected"),
    [
        (
            {"alter_column": {"table": "users", "column": "email", "nullable": False}},
            [(DataCheckKind.NULLS, "operations.0.alter_column.nullable", ('"email"',))],
        ),
        (
            {"alter_column": {"table": "users", "column": "age", "type": "integer"}},
            [(DataCheckKind.CAST, "operations.0.alter_column.type", ('"age"',))],
        ),
        (
            {
                "alter_column": {
                    "table": "users",
                    "column": "age",
                    "type": "integer",
                    "up": "age::int * 2",
                    "nullable": False,
                }
            },
            [
                (DataCheckKind.CAST, "operations.0.alter_column.up", ("age::int * 2",)),
                (DataCheckKind.NULLS, "operations.0.alter_column.nullable", ("age::int * 2",)),
            ],
        ),
        ({"alter_column": {"table": "users", "column": "nope", "nullable": False}}, []),
        ({"alter_column": {"table": "users", "column": "email", "default": "x"}}, []),
        (
            {
                "add_column": {
                    "table": "users",
                    "column": {"name": "e2", "type": "text", "nullable": False, "backfill": "lower(email)"},
                }
            },
            [
                (DataCheckKind.CAST, "operations.0.add_column.column.backfill", ("lower(email)",)),
                (DataCheckKind.NULLS, "operations.0.add_column.column.backfill", ("lower(email)",)),
            ],
        ),
        # A constant default fills every row with one value: two rows are a duplicate.
        (
            {
                "add_column": {
                    "table": "users",
                    "column": {"name": "code", "type": "text", "default": "x", "unique": True},
                }
            },
            [(DataCheckKind.DUPLICATES, "operations.0.add_column.column.unique", ("E'x'",))],
        ),
        ({"add_column": {"table": "users", "column": {"name": "code", "type": "text", "unique": True}}}, []),
        (
            {
                "add_column": {
                    "table": "users",
                    "column": {
                        "name": "o2",
                        "type": "bigint",
                        "backfill": "org_id",
                        "references": {"table": "orgs"},
                    },
                }
            },
            [
                (DataCheckKind.CAST, "operations.0.add_column.column.backfill", ("org_id",)),
                (DataCheckKind.ORPHANS, "operations.0.add_column.column.references", ("org_id",)),
            ],
        ),
        (
            {"create_index": {"table": "users", "name": "u_email", "columns": ["email"], "unique": True}},
            [(DataCheckKind.DUPLICATES, "operations.0.create_index.columns", ('"email"',))],
        ),
        ({"create_index": {"table": "users", "name": "u_email", "columns": ["email"]}}, []),
        (
            {
                "create_index": {
                    "table": "users",
                    "name": "u_x",
                    "expressions": ["lower(nope)"],
                    "unique": True,
                }
            },
            [],
        ),
        (
            {"add_unique": {"table": "users", "name": "u_email", "columns": ["email", "org_id"]}},
            [(DataCheckKind.DUPLICATES, "operations.0.add_unique.columns", ('"email"', '"org_id"'))],
        ),
        (
            {
                "add_foreign_key": {
                    "table": "users",
                    "name": "fk",
                    "columns": ["org_id"],
                    "references": {"table": "orgs"},
                }
            },
            [(DataCheckKind.ORPHANS, "operations.0.add_foreign_key.columns", ('"org_id"',))],
        ),
        (
            {
                "add_foreign_key": {
                    "table": "users",
                    "name": "fk",
                    "columns": ["org_id"],
                    "references": {"table": "gone"},
                }
            },
            [],
        ),
        (
            {"add_check": {"table": "users", "name": "c", "expression": "score >= 0"}},
            [(DataCheckKind.CHECK, "operations.0.add_check.expression", ("score >= 0",))],
        ),
        ({"add_check": {"table": "missing", "name": "c", "expression": "score >= 0"}}, []),
        ({"add_check": {"table": "users", "name": "c", "expression": "score >= 0; DROP TABLE users"}}, []),
    ],
)
def test_each_operation_gets_the_checks_its_constraint_needs(
    operation: dict[str, Any], expected: list[tuple[DataCheckKind, str, tuple[str, ...]]]
) -> None:
    assert checks(operation) == expected


def test_an_expression_over_a_column_this_spec_adds_is_not_checked() -> None:
    add = {"add_column": {"table": "users", "column": {"name": "band", "type": "text"}}}
    check = {"add_check": {"table": "users", "name": "c", "expression": "band IS NOT NULL"}}
    unique = {"add_unique": {"table": "users", "name": "u", "columns": ["band"]}}
    assert checks(add, check, unique) == []


def test_samples_are_keyed_by_the_primary_key_and_show_what_the_check_read() -> None:
    [check] = plan_data_checks(
        spec({"add_check": {"table": "users", "name": "c", "expression": "score > age::int"}}), TABLES
    )
    assert (check.key, check.shown, check.table) == (("id",), ("age", "score"), "users")


def test_locked_tables_include_referenced_ones_and_not_created_ones() -> None:
    operations = (
        {"create_table": {"table": "fresh", "columns": [{"name": "id", "type": "bigint"}]}},
        {
            "add_foreign_key": {
                "table": "users",
                "name": "fk",
                "columns": ["org_id"],
                "references": {"table": "orgs"},
            }
        },
        {"add_check": {"table": "fresh", "name": "c", "expression": "id > 0"}},
    )
    assert locked_tables(spec(*operations)) == ["users", "orgs"]


# -- judging findings ----------------------------------------------------------------------------------


def finding(kind: DataCheckKind, count: int, **fields: Any) -> DataFinding:
    check = DataCheck(
        path="operations.0.x",
        kind=kind,
        table="users",
        expressions=('"email"',),
        labels=("email",),
        key=("id",),
        shown=("email",),
        type_name="integer",
        referenced_table="orgs",
        referenced_columns=("id",),
        fix="fix it",
    )
    return DataFinding(check=check, count=count, **fields)


def test_duplicate_groups_read_as_counts_with_examples() -> None:
    groups = finding(
        DataCheckKind.DUPLICATES,
        4,
        samples=(DataSample(values=("a@x",), count=3), DataSample(values=("it's",), count=2)),
    )
    assert describe_finding(groups) == (
        "4 duplicate groups in users, e.g. (email)=('a@x') x3, (email)=('it''s') x2; fix it"
    )


@pytest.mark.parametrize(
    ("kind", "text"),
    [
        (
            DataCheckKind.NULLS,
            "2 rows of users would be NULL in (email), e.g. id=3 (email=NULL), id=9 (email=NULL)",
        ),
        (
            DataCheckKind.CHECK,
            "2 rows of users fail CHECK (email), e.g. id=3 (email=NULL), id=9 (email=NULL)",
        ),
        (
            DataCheckKind.ORPHANS,
            "2 rows of users with (email) have no match in orgs (id), e.g. id=3 (email=NULL)",
        ),
        (
            DataCheckKind.CAST,
            "2 rows of users fail the conversion of (email) to integer, e.g. id=3 (email=NULL)",
        ),
    ],
)
def test_row_findings_name_counts_and_sample_keys(kind: DataCheckKind, text: str) -> None:
    rows = finding(
        kind, 2, samples=(DataSample(key=("3",), values=(None,)), DataSample(key=("9",), values=(None,)))
    )
    assert describe_finding(rows).startswith(text)
    assert describe_finding(rows).endswith("; fix it")


def test_a_bounded_count_says_at_least_and_carries_the_database_error() -> None:
    text = describe_finding(finding(DataCheckKind.CAST, 1000, exact=False, error='invalid input syntax: "x"'))
    assert text.startswith("at least 1000 rows of users fail the conversion")
    assert '(invalid input syntax: "x")' in text


def test_failing_findings_refuse_and_unfinished_ones_only_warn() -> None:
    data = LiveData(
        findings=(
            finding(DataCheckKind.NULLS, 3),
            finding(DataCheckKind.CHECK, 0),
            finding(DataCheckKind.CAST, 0, error="UndefinedFunction (42883): no such function"),
            finding(DataCheckKind.ORPHANS, 0, incomplete="ran past 100 ms"),
        )
    )
    problems = data_problems(spec(ADD_CHECK), data)
    assert [text for _, text in problems] == [
        "3 rows of users would be NULL in (email); fix it",
        "(email) cannot be evaluated over users: UndefinedFunction (42883): no such function",
    ]
    warnings = data_warnings(spec(ADD_CHECK), data)
    assert warnings == [
        ("operations.0.x", "not checked: ran past 100 ms; the migration's own step still enforces it")
    ]


def test_the_engine_preflight_adds_data_problems_to_schema_problems() -> None:
    live = LiveSchema(tables={"users": USERS}, data=LiveData(findings=(finding(DataCheckKind.CHECK, 2),)))
    assert [path for path, _ in preflight_problems(spec(ADD_CHECK), live, "app")] == ["operations.0.x"]
    assert preflight_warnings(spec(ADD_CHECK), LiveSchema(tables={"users": USERS})) == []


# -- sessions and replicas -------------------------------------------------------------------------------

ADD_CHECK = {"add_check": {"table": "users", "name": "c", "expression": "score >= 0"}}
INDEX = {"create_index": {"table": "users", "name": "u_email", "columns": ["email"]}}


def session(
    pid: int, seconds: float | None, *, locked: tuple[str, ...] = (), snapshot: bool = False
) -> SessionInfo:
    return SessionInfo(
        pid=pid,
        state="idle in transaction",
        query="SELECT 1",
        transaction_seconds=seconds,
        application_name="report",
        locked_tables=locked,
        holds_snapshot=snapshot,
    )


def test_an_old_transaction_holding_a_lock_refuses_the_operation_on_that_table() -> None:
    other = {"add_check": {"table": "orgs", "name": "c2", "expression": "id > 0"}}
    data = LiveData(sessions=(session(41, 120.0, locked=("users",)), session(42, 5.0, locked=("users",))))
    problems = data_problems(spec(other, ADD_CHECK), data)
    assert len(problems) == 1
    path, message = problems[0]
    assert path == "operations.1.add_check.table"
    assert message.startswith("pid 41 (report) idle in transaction, in a transaction for 120.0 s: SELECT 1;")
    assert "pg_terminate_backend(41)" in message and "override: [blocking_sessions]" in message


def test_the_override_is_explicit_and_turns_the_refusal_into_a_recorded_warning() -> None:
    data = LiveData(sessions=(session(41, 120.0, locked=("users",)),))
    overridden = spec(ADD_CHECK, override=["blocking_sessions"])
    assert data_problems(overridden, data) == []
    [(path, message)] = data_warnings(overridden, data)
    assert path == "operations.0.add_check.table"
    assert message.endswith("(overridden by settings.preflight.override)")


def test_a_snapshot_blocks_only_a_concurrent_index_build() -> None:
    data = LiveData(sessions=(session(7, 90.0, snapshot=True),))
    assert [path for path, _ in data_problems(spec(INDEX), data)] == ["operations.0.create_index.table"]
    assert data_problems(spec(ADD_CHECK), data) == []
    assert [path for path, _ in data_warnings(spec(ADD_CHECK), data)] == [
        "settings.preflight.long_transaction_seconds"
    ]


def test_the_threshold_comes_from_the_spec() -> None:
    data = LiveData(sessions=(session(41, 20.0, locked=("users",)), session(42, None, locked=("users",))))
    assert data_problems(spec(ADD_CHECK), data) == []  # default: 60 s
    assert [
        m.split(" ")[1] for _, m in data_problems(spec(ADD_CHECK, long_transaction_seconds=10), data)
    ] == ["41"]


def test_replica_lag_warns_above_the_threshold_and_never_refuses() -> None:
    data = LiveData(
        replicas=(
            ReplicaInfo(name="r1", state="streaming", lag_bytes=10, lag_seconds=30.0),
            ReplicaInfo(name="r2", state="streaming", lag_bytes=0, lag_seconds=None),
        )
    )
    assert data_problems(spec(ADD_CHECK), data) == []
    [(path, message)] = data_warnings(spec(ADD_CHECK), data)
    assert path == "settings.preflight.replica_lag_seconds"
    assert message.startswith("replica r1 is 30.0 s behind")
    assert data_warnings(spec(ADD_CHECK, replica_lag_seconds=60), data) == []


def test_notes_give_sizes_and_replicas() -> None:
    data = LiveData(
        sizes={"users": TableSize("users", 3 * 1_048_576, 1234)},
        replicas=(ReplicaInfo(name="r1", state="streaming", lag_bytes=512, lag_seconds=None),),
    )
    assert data_notes(data) == [
        "table users: 3.0 MB, about 1234 rows",
        "replica r1 (streaming): lag unknown, 512 bytes behind",
    ]
    assert data_notes(LiveData(replicas=())) == ["replicas: none streaming from this primary"]
    assert data_notes(LiveData()) == ["replicas: pg_stat_replication could not be read"]
