"""`osctl plan --from-sql --engine mysql`: ALTER TABLE and CREATE/DROP INDEX to alter_table operations,
the strategy left to the planner, and a reason for every statement left out."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.cli import main
from orchestrator.lint.convert import Outcome, writable_spec
from orchestrator.lint.convert_mysql import convert_mysql_sql


@pytest.mark.parametrize(
    ("sql", "alter"),
    [
        ("ALTER TABLE accounts MODIFY note varchar(64) NULL", "MODIFY note varchar(64) NULL"),
        ("ALTER TABLE `accounts` ADD INDEX i (a, b), ALGORITHM=INPLACE, LOCK=NONE", "ADD INDEX i (a, b)"),
        (
            "ALTER TABLE accounts ADD COLUMN c varchar(9) COMMENT 'x, y (z)', DROP COLUMN d",
            "ADD COLUMN c varchar(9) COMMENT 'x, y (z)', DROP COLUMN d",
        ),
        ("CREATE UNIQUE INDEX i ON accounts (email)", "ADD UNIQUE INDEX i (email)"),
        ("CREATE INDEX `i` ON `accounts` (a(10), b)", "ADD INDEX i (a(10), b)"),
        ("DROP INDEX i ON accounts", "DROP INDEX i"),
        ("ALTER TABLE accounts RENAME COLUMN a TO b", "RENAME COLUMN a TO b"),
    ],
)
def test_statements_become_alter_table(sql: str, alter: str) -> None:
    conversion = convert_mysql_sql(sql)
    assert conversion.spec is not None, conversion.notes
    assert writable_spec(conversion.spec)["operations"] == [
        {"alter_table": {"table": "accounts", "alter": alter}}
    ]


@pytest.mark.parametrize(
    ("sql", "reason"),
    [
        ("ALTER TABLE accounts RENAME TO clients", "renaming the table"),
        ("RENAME TABLE accounts TO clients", "RENAME TABLE"),
        ("ALTER TABLE shop.accounts ADD COLUMN c int", "own database"),
        ("ALTER TABLE accounts ALGORITHM=INPLACE", "nothing to change"),
        ("DELETE FROM accounts", "DELETE FROM"),
        ("ALTER TABLE Accounts ADD COLUMN c int", "not a valid identifier"),
    ],
)
def test_what_is_left_out_says_why(sql: str, reason: str) -> None:
    [note] = convert_mysql_sql(sql).notes
    assert note.outcome is Outcome.NOT_CONVERTED
    assert reason in note.reason


def test_cli_plans_mysql_and_refuses_a_live_preflight(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sql = tmp_path / "m.sql"
    sql.write_text("SET lock_wait_timeout = 5;\nALTER TABLE accounts MODIFY note varchar(64) NULL;\n")
    assert main(["plan", "--from-sql", str(sql), "--engine", "mysql"]) == 0
    out = capsys.readouterr().out
    assert "0 (line 1) skipped" in out and "1 (line 2) converted" in out
    assert "alter_table" in out
    dsn = "mysql://root@127.0.0.1:1/x"
    assert main(["plan", "--from-sql", str(sql), "--engine", "mysql", "--target-dsn", dsn]) == 2
    assert "PostgreSQL targets only" in capsys.readouterr().err
