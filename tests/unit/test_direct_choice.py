"""strategy auto on MySQL: the server's own online DDL when it can make the change without blocking
writes and the table is small enough for one unthrottled statement, else a copy tool; the plan says
why either way. Planned against live TableInfo snapshots (no database here)."""

from __future__ import annotations

import pytest

from orchestrator.config import load_settings
from orchestrator.domain.direct_ddl import (
    DirectLimits,
    OnlineCost,
    OnlineVerdict,
    TableSize,
    choose_direct,
)
from orchestrator.domain.errors import SpecError
from orchestrator.domain.plan import Plan, Stage, StepAction
from orchestrator.domain.schema import ColumnInfo, TableInfo
from orchestrator.engine.planner import plan_migration
from orchestrator.engine.planner.mysql.online_ddl import normal_type, server_version
from tests.unit.fakes import make_spec

MARIADB = "10.11.19-MariaDB-0+deb12u1-log"
MYSQL = "8.0.36-0ubuntu0.22.04.1"


def orders(rows: int = 1_000, size: int = 1 << 20, version: str | None = MARIADB) -> TableInfo:
    columns = [
        ColumnInfo(name="id", type="bigint(20)", nullable=False),
        ColumnInfo(name="note", type="varchar(32)", nullable=True),
        ColumnInfo(name="code", type="int(11)", nullable=False),
        ColumnInfo(name="title", type="varchar(300)", nullable=True),
    ]
    return TableInfo(
        name="orders",
        columns={column.name: column for column in columns},
        primary_key=["id"],
        estimated_rows=rows,
        estimated_bytes=size,
        server_version=version,
    )


def plan_for(
    clause: str, table: TableInfo | None, limits: DirectLimits | None = None, **options: object
) -> Plan:
    spec = make_spec({"alter_table": {"table": "orders", "alter": clause, **options}})
    tables = None if table is None else {"orders": table}
    return plan_migration(spec, "mysql", tables, direct_limits=limits)


def direct_sql(plan: Plan) -> str | None:
    [step] = plan.steps()
    assert step.action is StepAction.DDL, step.description
    return step.sql


def is_copy(plan: Plan) -> bool:
    return all(step.action is StepAction.COPY_TABLE for step in plan.steps())


@pytest.mark.parametrize(
    ("clause", "rows"),
    [
        ("ADD COLUMN extra int NULL", 50_000_000),  # instant: size does not matter
        ("DROP COLUMN note", 50_000_000),
        ("CHANGE note memo varchar(32) NULL", 50_000_000),  # a rename, catalog only
        ("MODIFY note varchar(48) NULL", 50_000_000),  # same length prefix: catalog only
        ("MODIFY title varchar(400) NULL", 50_000_000),
        ("DROP INDEX some_idx", 50_000_000),
        ("ALTER COLUMN code SET DEFAULT 7", 50_000_000),
        ("ADD INDEX code_idx (code)", 5_000),  # reads every row: only a small table
        ("ADD UNIQUE KEY code_uq (code)", 5_000),
        ("MODIFY note varchar(32) NOT NULL", 5_000),  # a rebuild: only a small table
        ("ENGINE=InnoDB", 5_000),
    ],
)
def test_auto_lets_the_server_do_what_it_does_online(clause: str, rows: int) -> None:
    plan = plan_for(clause, orders(rows))
    sql = direct_sql(plan)
    assert sql == f"ALTER TABLE `orders` {clause}, ALGORITHM=INPLACE, LOCK=NONE"
    assert "[auto: MariaDB 10.11 makes it" in plan.steps()[0].description


@pytest.mark.parametrize(
    ("clause", "reason"),
    [
        ("MODIFY code bigint NOT NULL", "the type changes (int(11) to bigint), the table is copied"),
        ("MODIFY note varchar(100) NULL", "the type changes (varchar(32) to varchar(100))"),  # prefix grows
        ("MODIFY note varchar(32) CHARACTER SET latin1 NULL", "a new character set"),
        ("ADD FULLTEXT INDEX ft (note)", "ADD FULLTEXT INDEX blocks writes (LOCK=SHARED)"),
        ("ADD COLUMN total int AS (code * 2) STORED", "ADD COLUMN total copies the table"),
        ("ADD CONSTRAINT positive CHECK (code > 0)", "ADD CHECK copies the table"),
        ("ADD CONSTRAINT fk FOREIGN KEY (code) REFERENCES codes (id)", "ADD FOREIGN KEY copies the table"),
        ("CONVERT TO CHARACTER SET utf8mb4", "osctl cannot read this clause in detail"),
        ("ADD COLUMN extra int NULL, MODIFY code bigint NOT NULL", "MODIFY code: the type changes"),
    ],
)
def test_auto_sends_what_would_block_writes_to_a_copy_tool(clause: str, reason: str) -> None:
    plan = plan_for(clause, orders(10))
    assert is_copy(plan)
    copy = next(step for step in plan.steps() if step.copy_work and step.copy_work.phase.value == "copy")
    assert (
        "not the server's own DDL: MariaDB 10.11 cannot make it without blocking writes" in copy.description
    )
    assert reason in copy.description


def test_a_change_nothing_can_make_online_is_refused_with_every_reason() -> None:
    with pytest.raises(SpecError) as caught:
        plan_for("DROP PRIMARY KEY", orders(10))
    [(path, message)] = caught.value.problems
    assert path == "operations.0.alter_table.alter"
    assert "no copy tool can make this change" in message
    assert "not the server's own DDL: MariaDB 10.11 cannot make it without blocking writes" in message


def test_a_large_table_goes_to_a_copy_tool_and_the_plan_says_why() -> None:
    plan = plan_for("ADD INDEX code_idx (code)", orders(rows=2_000_000, size=300 << 20))
    assert is_copy(plan)
    [copy, _cut_over] = plan.steps()
    assert copy.stage is Stage.EXPAND
    assert (
        "gh-ost when the service has a binary (GH_OST_BIN), pt-online-schema-change otherwise; not the "
        "server's own DDL: MariaDB 10.11 could make it in place (ADD INDEX: in place, reads every row), but "
        "on 2000000 rows, 300.0 MiB (above 100000 rows / 256.0 MiB) that is one unthrottled statement"
    ) in copy.description


def test_the_configured_limits_decide_rows_and_bytes_each() -> None:
    small = DirectLimits(max_rows=1_000, max_bytes=1 << 30)
    assert is_copy(plan_for("ADD INDEX code_idx (code)", orders(rows=1_001), small))
    assert direct_sql(plan_for("ADD INDEX code_idx (code)", orders(rows=1_000), small))
    few_bytes = DirectLimits(max_rows=10**9, max_bytes=1 << 20)
    assert is_copy(plan_for("ADD INDEX code_idx (code)", orders(rows=10, size=(1 << 20) + 1), few_bytes))


def test_a_revert_window_needs_a_copy_even_for_an_instant_change() -> None:
    plan = plan_for("ADD COLUMN extra int NULL", orders(10), keep_old_table=True)
    assert is_copy(plan)
    assert "a revert window (keep_old_table) needs a copy" in plan.steps()[0].description


def test_offline_or_an_unknown_server_keeps_the_copy_tools() -> None:
    offline = plan_for("ADD COLUMN extra int NULL", None)
    assert is_copy(offline)
    assert "planned without the live table" in offline.steps()[0].description
    unknown = plan_for("ADD COLUMN extra int NULL", orders(version="5.1.73"))
    assert (
        is_copy(unknown)
        and "does not know what server '5.1.73' runs online" in unknown.steps()[0].description
    )


def test_offline_a_change_no_tool_can_make_is_left_to_the_server() -> None:
    """`osctl plan` without a target, and the service's check before it reads the live table: only the
    live table can say whether the server makes it online, so offline that is the plan."""
    sql = direct_sql(plan_for("DROP COLUMN flag, ADD COLUMN flag int NOT NULL DEFAULT 0", None))
    assert sql == (
        "ALTER TABLE `orders` DROP COLUMN flag, ADD COLUMN flag int NOT NULL DEFAULT 0, "
        "ALGORITHM=INPLACE, LOCK=NONE"
    )
    live = plan_for("DROP COLUMN flag, ADD COLUMN flag int NOT NULL DEFAULT 0", orders(50_000_000))
    assert direct_sql(live) and "[auto: MariaDB 10.11 makes it INSTANT" in live.steps()[0].description


def test_breaking_direct_changes_wait_for_contract_and_additive_ones_run_in_expand() -> None:
    assert plan_for("ADD COLUMN extra int NULL", orders()).steps()[0].stage is Stage.EXPAND
    assert plan_for("DROP COLUMN note", orders()).steps()[0].stage is Stage.CONTRACT


def test_mysql_is_told_instant_where_inplace_would_rebuild() -> None:
    assert direct_sql(plan_for("ADD COLUMN extra int NULL", orders(version=MYSQL))) == (
        "ALTER TABLE `orders` ADD COLUMN extra int NULL, ALGORITHM=INSTANT"
    )
    assert direct_sql(plan_for("ADD INDEX code_idx (code)", orders(version=MYSQL))) == (
        "ALTER TABLE `orders` ADD INDEX code_idx (code), ALGORITHM=INPLACE, LOCK=NONE"
    )
    # Positioned ADD COLUMN is instant only from 8.0.29: before that a rebuild, size-limited.
    old = orders(rows=10**7, version="8.0.20")
    assert is_copy(plan_for("ADD COLUMN extra int NULL AFTER id", old))


def test_an_explicit_tool_is_never_replaced_by_direct() -> None:
    assert is_copy(plan_for("ADD COLUMN extra int NULL", orders(), strategy="pt_osc"))


def test_choose_direct_is_pure_and_says_why() -> None:
    verdict = OnlineVerdict("MariaDB 10.11", OnlineCost.SCAN, "ADD INDEX: in place, reads every row")
    limits = DirectLimits(max_rows=100, max_bytes=1 << 20)
    assert choose_direct(verdict, TableSize(100, 1 << 20), limits, keep_old_table=False).direct
    refused = choose_direct(verdict, TableSize(101, 10), limits, keep_old_table=False)
    assert not refused.direct and "above 100 rows / 1.0 MiB" in refused.why


def test_types_compare_as_the_catalog_and_sqlglot_spell_them() -> None:
    assert normal_type("int(11) unsigned") == normal_type("INT UNSIGNED")
    assert normal_type("decimal(10,2)") == normal_type("DECIMAL(10, 2)")
    assert normal_type("enum('a','b')") == normal_type("ENUM('a', 'b')")
    assert server_version("5.5.5-10.11.2-MariaDB") is not None
    assert server_version(None) is None


def test_limits_come_from_the_environment_with_units() -> None:
    settings = load_settings({"OSCTL_DIRECT_MAX_ROWS": "250k", "OSCTL_DIRECT_MAX_BYTES": "1Gi"})
    assert settings.direct_limits == DirectLimits(max_rows=250_000, max_bytes=1 << 30)
    assert load_settings({}).direct_limits == DirectLimits()
    with pytest.raises(SpecError) as caught:
        load_settings({"OSCTL_DIRECT_MAX_ROWS": "lots"})
    assert caught.value.problems[0][0] == "OSCTL_DIRECT_MAX_ROWS"
