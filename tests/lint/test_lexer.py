"""Statement splitting: every statement counted (BEGIN, COMMIT, SET too), 1-based lines, quotes and
bodies that hold semicolons, comments kept for suppressions."""

from __future__ import annotations

import pytest

from orchestrator.lint.lexer import Dialect, split_statements


def shape(sql: str, dialect: Dialect = "postgres") -> list[tuple[int, int, str]]:
    return [(s.index, s.line, s.text) for s in split_statements(sql, dialect).statements]


def test_every_statement_is_counted_with_its_first_token_line() -> None:
    sql = (
        "BEGIN;\n\nSET lock_timeout = '1s';\n-- a comment\n  ALTER TABLE t\n    ADD COLUMN c int;\nCOMMIT;\n"
    )
    assert shape(sql) == [
        (0, 1, "BEGIN"),
        (1, 3, "SET lock_timeout = '1s'"),
        (2, 5, "ALTER TABLE t\n    ADD COLUMN c int"),
        (3, 7, "COMMIT"),
    ]


def test_empty_statements_are_not_counted_and_a_last_statement_needs_no_semicolon() -> None:
    assert shape(";;\nSELECT 1;;\n\nSELECT 2") == [(0, 2, "SELECT 1"), (1, 4, "SELECT 2")]


@pytest.mark.parametrize(
    ("sql", "dialect", "texts"),
    [
        ("SELECT 'a;b'; SELECT 2", "postgres", ["SELECT 'a;b'", "SELECT 2"]),
        ("SELECT 'it''s;'; SELECT 2", "postgres", ["SELECT 'it''s;'", "SELECT 2"]),
        ("SELECT E'\\';'; SELECT 2", "postgres", ["SELECT E'\\';'", "SELECT 2"]),
        ('SELECT 1 AS "x;y"; SELECT 2', "postgres", ['SELECT 1 AS "x;y"', "SELECT 2"]),
        (
            "DO $$ BEGIN PERFORM 1; END $$; SELECT 2",
            "postgres",
            ["DO $$ BEGIN PERFORM 1; END $$", "SELECT 2"],
        ),
        ("DO $f$ a; $$ b; $f$; SELECT 2", "postgres", ["DO $f$ a; $$ b; $f$", "SELECT 2"]),
        (
            "SELECT 1 /* a; /* nested; */ b; */; SELECT 2",
            "postgres",
            ["SELECT 1 /* a; /* nested; */ b; */", "SELECT 2"],
        ),
        ("SELECT 'a\\';b'; SELECT 2", "mysql", ["SELECT 'a\\';b'", "SELECT 2"]),
        ("SELECT `a;b` FROM t; SELECT 2", "mysql", ["SELECT `a;b` FROM t", "SELECT 2"]),
        ("SELECT 1 # c;\n; SELECT 2", "mysql", ["SELECT 1 # c;", "SELECT 2"]),
        ("SELECT 1--1; SELECT 2", "mysql", ["SELECT 1--1", "SELECT 2"]),
    ],
)
def test_semicolons_inside_quotes_and_comments_do_not_split(
    sql: str, dialect: Dialect, texts: list[str]
) -> None:
    assert [text for _, _, text in shape(sql, dialect)] == texts


def test_mysql_delimiter_command_is_not_a_statement_and_changes_the_terminator() -> None:
    sql = "DELIMITER $$\nCREATE TRIGGER t BEFORE INSERT ON x FOR EACH ROW BEGIN SET NEW.a = 1; END$$\nDELIMITER ;\nSELECT 2;"
    assert shape(sql, "mysql") == [
        (0, 2, "CREATE TRIGGER t BEFORE INSERT ON x FOR EACH ROW BEGIN SET NEW.a = 1; END"),
        (1, 4, "SELECT 2"),
    ]


def test_a_routine_body_is_one_statement_without_a_delimiter() -> None:
    sql = (
        "CREATE PROCEDURE p()\nBEGIN\n  IF 1 THEN\n    UPDATE t SET a = CASE WHEN b THEN 1 END;\n  END IF;\n"
        "END;\nCALL p();\nBEGIN;\nCOMMIT;"
    )
    statements = shape(sql, "mysql")
    assert [index for index, _, _ in statements] == [0, 1, 2, 3]
    assert statements[0][2].endswith("END IF;\nEND")
    assert statements[1:] == [(1, 7, "CALL p()"), (2, 8, "BEGIN"), (3, 9, "COMMIT")]


def test_psql_meta_commands_are_skipped() -> None:
    assert shape("\\set ON_ERROR_STOP on\nSELECT 1;") == [(0, 2, "SELECT 1")]


def test_comments_go_to_the_statement_they_precede_or_trail() -> None:
    sql = "-- before a\nSELECT 1; -- after a\n\n-- before b\nSELECT /* inside b */ 2;\n-- stray"
    result = split_statements(sql, "postgres")
    first, second = result.statements
    assert [c.text for c in first.comments] == ["-- before a", "-- after a"]
    assert [c.text for c in second.comments] == ["-- before b", "/* inside b */"]
    assert [(c.text, c.line) for c in result.stray_comments] == [("-- stray", 6)]
