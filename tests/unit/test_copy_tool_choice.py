"""Which copy tool makes which change, as a table: what each refuses or mishandles, and the preference
for gh-ost when a binary is configured. Pure: AlterFacts from the planner's reading, TableFacts as the
target reads them from the live table."""

from __future__ import annotations

import pytest

from orchestrator.domain.copy_tools import (
    AlterFacts,
    CopyTool,
    TableFacts,
    choose_tool,
    ghost_server_problem,
    shared_columns,
    tool_refusals,
)
from orchestrator.engine.planner.mysql.alter_clause import analyse

PLAIN = TableFacts(unique_keys={"PRIMARY": ("id",)})
GH, PT = CopyTool.GH_OST, CopyTool.PT_OSC


def facts(clause: str) -> AlterFacts:
    return analyse("orders", clause)


@pytest.mark.parametrize(
    ("clause", "table", "ghost_available", "strategy", "tool", "why"),
    [
        ("ADD COLUMN note text", PLAIN, True, "auto", GH, "gh-ost: preferred"),
        ("ADD COLUMN note text", PLAIN, False, "auto", PT, "no gh-ost binary is configured"),
        ("ADD COLUMN note text", PLAIN, None, "auto", GH, "gh-ost when the service has a binary"),
        ("ADD COLUMN note text", PLAIN, True, "pt_osc", PT, "as the spec asks"),
        ("ADD COLUMN note text", PLAIN, False, "gh_ost", None, "gh-ost was asked for, but no gh-ost binary"),
        # gh-ost and foreign keys, either way round
        (
            "ADD CONSTRAINT fk FOREIGN KEY (customer_id) REFERENCES customers (id)",
            PLAIN,
            True,
            "auto",
            PT,
            "foreign keys",
        ),
        (
            "ADD COLUMN note text",
            TableFacts(references_other_tables=True, unique_keys={"PRIMARY": ("id",)}),
            True,
            "auto",
            PT,
            "has foreign keys",
        ),
        (
            "ADD COLUMN note text",
            TableFacts(referenced_by=("lines",), unique_keys={"PRIMARY": ("id",)}),
            True,
            "auto",
            None,
            "lines",
        ),
        # no shared unique key: gh-ost refuses; pt-osc needs some key too
        ("ADD COLUMN note text", TableFacts(unique_keys={}), True, "auto", None, "no primary key"),
        (
            "DROP COLUMN code",
            TableFacts(unique_keys={"code_uq": ("code",)}),
            True,
            "auto",
            None,
            "no unique key over NOT NULL columns in common",
        ),
        (
            "ADD COLUMN note text",
            TableFacts(unique_keys={}, nullable_unique_keys={"u": ("x",)}),
            True,
            "gh_ost",
            None,
            "only nullable",
        ),
        # CHANGE-like words inside strings: each tool reads its own way
        (
            "ADD COLUMN note varchar(9) DEFAULT 'change a b'",
            PLAIN,
            False,
            "auto",
            None,
            "pt-online-schema-change reads the ALTER as renaming {'a': 'b'}",
        ),
        ("ADD COLUMN note varchar(9) DEFAULT 'change a b'", PLAIN, True, "auto", GH, "preferred"),
        (
            'ADD COLUMN note varchar(9) COMMENT "change x y z"',
            PLAIN,
            True,
            "auto",
            PT,
            "gh-ost reads the ALTER as renaming {'x': 'y'}",
        ),
        ("CHANGE code sku varchar(32) NOT NULL", PLAIN, True, "auto", GH, "preferred"),
        ("RENAME COLUMN code TO sku", PLAIN, True, "auto", None, "RENAME COLUMN"),
        # both copy by name
        (
            "DROP COLUMN note, ADD COLUMN note int NOT NULL DEFAULT 0",
            PLAIN,
            True,
            "auto",
            None,
            "dropped and added again",
        ),
        ("DROP PRIMARY KEY", PLAIN, True, "auto", None, "without a new one"),
        (
            "DROP PRIMARY KEY, ADD PRIMARY KEY (id, created_at)",
            TableFacts(unique_keys={"PRIMARY": ("id",), "code": ("code",)}),
            True,
            "pt_osc",
            None,
            "DROP PRIMARY KEY",
        ),
        ("DROP FOREIGN KEY fk_customer", PLAIN, False, "auto", None, "_fk"),
        # triggers of the application's own
        (
            "ADD COLUMN note text",
            TableFacts(triggers=("audit",), unique_keys={"PRIMARY": ("id",)}),
            True,
            "auto",
            None,
            "triggers (audit)",
        ),
        ("ADD COLUMN note text", TableFacts(exists=False), True, "auto", None, "does not exist"),
    ],
)
def test_choice(
    clause: str,
    table: TableFacts,
    ghost_available: bool | None,
    strategy: str,
    tool: CopyTool | None,
    why: str,
) -> None:
    choice = choose_tool(strategy, facts(clause), table, ghost_available=ghost_available)  # type: ignore[arg-type]
    assert choice.tool is tool, choice
    assert why in choice.why, choice.why


def test_plan_time_choice_names_the_fallback_and_why() -> None:
    choice = choose_tool("auto", facts("ADD COLUMN note text"), None, ghost_available=None)
    assert choice.why == (
        "gh-ost when the service has a binary (GH_OST_BIN), pt-online-schema-change otherwise"
    )
    only_ghost = choose_tool(
        "auto", facts("ADD COLUMN note varchar(9) DEFAULT 'change a b'"), None, ghost_available=None
    )
    assert only_ghost.tool is GH and "and nothing otherwise" in only_ghost.why


def test_refusals_list_every_reason_per_tool() -> None:
    refusals = tool_refusals(
        facts("ADD CONSTRAINT fk FOREIGN KEY (a) REFERENCES p (id)"),
        TableFacts(triggers=("audit",), unique_keys={"PRIMARY": ("id",)}),
    )
    assert [reason.split(" ")[0:3] for reason in refusals[GH]] == [
        ["gh-ost", "does", "not"],
        ["the", "table", "has"],
    ]
    assert len(refusals[PT]) == 1


def test_shared_columns_follow_renames_and_skip_type_changes() -> None:
    old = [("id", "bigint"), ("code", "varchar(8) utf8mb4"), ("note", "text utf8mb4"), ("gone", "int")]
    new = [("id", "bigint"), ("sku", "varchar(8) utf8mb4"), ("note", "varchar(64) utf8mb4"), ("added", "int")]
    assert shared_columns(old, new, [("code", "sku")]) == ([("id", "id"), ("code", "sku")], ["note"])


@pytest.mark.parametrize(
    ("version", "refused"),
    [
        ("10.11.19-MariaDB-0+deb12u1-log", True),
        ("10.6.12-MariaDB", True),
        ("11.0.2-MariaDB", True),
        ("11.1.0-MariaDB", False),
        ("11.4.3-MariaDB-log", False),
        ("8.0.36", False),
        ("5.7.44-log", False),
        ("", False),
    ],
)
def test_released_gh_ost_cannot_run_on_mariadb_before_11_1(version: str, refused: bool) -> None:
    problem = ghost_server_problem(version)
    assert (problem is not None) is refused
    if refused:
        assert "transaction_isolation" in problem and "#1488" in problem  # type: ignore[operator]


def test_auto_takes_pt_osc_on_old_mariadb_but_an_explicit_gh_ost_still_runs() -> None:
    table = TableFacts(unique_keys={"PRIMARY": ("id",)}, server_version="10.11.19-MariaDB-log")
    auto = choose_tool("auto", facts("ADD COLUMN c int"), table, ghost_available=True)
    assert auto.tool is CopyTool.PT_OSC
    assert "transaction_isolation" in auto.why
    explicit = choose_tool("gh_ost", facts("ADD COLUMN c int"), table, ghost_available=True)
    assert explicit.tool is CopyTool.GH_OST and "built for it" in explicit.why
    modern = TableFacts(unique_keys={"PRIMARY": ("id",)}, server_version="11.4.3-MariaDB")
    assert (
        choose_tool("auto", facts("ADD COLUMN c int"), modern, ghost_available=True).tool is CopyTool.GH_OST
    )
