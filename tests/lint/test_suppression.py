"""Suppression per statement, with a reason or not at all."""

from __future__ import annotations

import pytest

from orchestrator.lint import lint_sql

INDEX = "CREATE INDEX i ON flags (name);"


def found(sql: str) -> list[tuple[str, int, int]]:
    return [
        (f.rule, f.statement_index, f.line)
        for f in lint_sql(sql, "postgres").findings
        if f.rule != "lock-timeout-missing"
    ]


@pytest.mark.parametrize(
    "sql",
    [
        f"-- osctl:ignore create-index-non-concurrent reason: flags holds 30 rows\n{INDEX}",
        f"{INDEX} -- osctl:ignore create-index-non-concurrent reason: flags holds 30 rows",
        f"/* osctl:ignore create-index-non-concurrent reason: flags holds 30 rows */\n{INDEX}",
        f"-- osctl:ignore create-index-non-concurrent, lock-timeout-missing REASON: tiny table\n{INDEX}",
        "CREATE INDEX i\n  -- osctl:ignore create-index-non-concurrent reason: tiny\n  ON flags (name);",
    ],
)
def test_a_reasoned_suppression_silences_its_rule_on_its_statement(sql: str) -> None:
    assert found(sql) == []


def test_a_suppression_without_a_reason_suppresses_nothing_and_is_reported() -> None:
    sql = f"SELECT 1;\n-- osctl:ignore create-index-non-concurrent\n{INDEX}"
    assert found(sql) == [
        ("create-index-non-concurrent", 1, 3),
        ("suppression-without-reason", 1, 2),
    ]
    assert lint_sql(sql, "postgres").has_errors


def test_an_empty_reason_is_no_reason() -> None:
    assert found(f"-- osctl:ignore create-index-non-concurrent reason:   \n{INDEX}") == [
        ("create-index-non-concurrent", 0, 2),
        ("suppression-without-reason", 0, 1),
    ]


def test_a_suppression_applies_to_its_own_statement_only() -> None:
    sql = f"-- osctl:ignore create-index-non-concurrent reason: small\n{INDEX}\nCREATE INDEX j ON flags (id);"
    assert found(sql) == [("create-index-non-concurrent", 1, 3)]


def test_unknown_and_unused_rules_are_reported() -> None:
    sql = f"-- osctl:ignore no-such-rule, drop-column reason: typo\n{INDEX}"
    assert found(sql) == [
        ("create-index-non-concurrent", 0, 2),
        ("suppression-unknown-rule", 0, 1),
        ("suppression-unused", 0, 1),
    ]


def test_a_suppression_after_the_last_statement_applies_to_nothing() -> None:
    assert found(f"{INDEX}\n\n-- osctl:ignore drop-column reason: later") == [
        ("create-index-non-concurrent", 0, 1),
        ("suppression-unused", 0, 3),
    ]


def test_suppressions_work_for_mysql_hash_comments() -> None:
    sql = "# osctl:ignore mysql-blocking-alter reason: table is empty on every install\nALTER TABLE t CONVERT TO CHARACTER SET utf8mb4;"
    assert [f.rule for f in lint_sql(sql, "mysql").findings if f.rule != "lock-timeout-missing"] == []
