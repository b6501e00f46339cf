"""Which normalised statements use a table or a column, decided on the parse tree."""

from __future__ import annotations

import pytest

from orchestrator.engine.statement_refs import contains_expression, references, tokens

T, C = "accounts", "status"

PG = [
    ("SELECT status FROM accounts WHERE id = $1", True, False),
    ("SELECT a.status FROM accounts a", True, False),
    ("SELECT accounts.status FROM accounts", True, False),
    ("UPDATE accounts SET status = $1 WHERE id = $2", True, False),
    ("INSERT INTO accounts (email, status) VALUES ($1, $2)", True, False),
    ("INSERT INTO accounts (email) VALUES ($1) ON CONFLICT (email) DO UPDATE SET status = $2", True, False),
    ("COPY accounts (id, status) TO STDOUT", True, False),
    ("DELETE FROM accounts WHERE status = $1", True, False),
    ("SELECT * FROM accounts", False, True),
    ("INSERT INTO accounts VALUES ($1, $2)", False, True),
    ("SELECT email FROM accounts WHERE id = $1", False, False),
    # `status` of another table, in a statement that also reads accounts: not a use of accounts.status.
    ("SELECT o.status FROM orders o JOIN accounts a ON a.id = o.account_id", False, False),
    ("SELECT status AS s FROM accounts_archive", None, None),
    ("SELECT 'status' FROM orders", None, None),
    ("ALTER TABLE accounts DROP COLUMN status", None, None),
    ("CREATE INDEX ON accounts (status)", None, None),
]


@pytest.mark.parametrize(("sql", "column", "star"), PG)
def test_postgres(sql: str, column: bool | None, star: bool | None) -> None:
    found = references(sql, "postgres", T, C)
    if column is None:
        assert found is None
    else:
        assert found is not None and (found.column, found.star, found.parsed) == (column, star, True)


MYSQL = [
    ("SELECT `status` FROM `accounts` WHERE ID = ? ", True, False),
    ("SELECT `a` . `status` FROM `accounts` `a` ", True, False),
    ("UPDATE `accounts` SET `status` = `upper` ( `status` ) WHERE ID IN (...) ", True, False),
    ("INSERT INTO `accounts` ( `email` , `status` ) VALUES (...) /* , ... */ ", True, False),
    ("INSERT INTO `accounts` VALUES (...) /* , ... */ ", False, True),
    ("SELECT * FROM `accounts` WHERE `email` = ? ", False, True),
    (
        "SELECT `o` . `status` FROM `orders` `o` JOIN `accounts` `a` ON `a` . ID = `o` . `account_id` ",
        False,
        False,
    ),
    ("SELECT `status` FROM `orders` ", None, None),
    ("ALTER TABLE `accounts` DROP COLUMN `status` ", None, None),
]


@pytest.mark.parametrize(("sql", "column", "star"), MYSQL)
def test_mysql_digests(sql: str, column: bool | None, star: bool | None) -> None:
    found = references(sql, "mysql", T, C)
    if column is None:
        assert found is None
    else:
        assert found is not None and (found.column, found.star, found.parsed) == (column, star, True)


def test_a_digest_cut_short_falls_back_to_whole_identifiers_and_says_so() -> None:
    found = references("SELECT `status` FROM `accounts` WHERE `a` = ? AND `b` ...", "mysql", T, C)
    assert found is not None and found.column and not found.parsed
    assert references("SELECT `statuses` FROM `accounts` WHERE `a` = ? ...", "mysql", T, C) is not None
    assert not references("SELECT `statuses` FROM `accounts` WHERE `a` = ? ...", "mysql", T, C).column  # type: ignore[union-attr]


def test_tokens_normalise_quotes_constants_and_lists_across_engines() -> None:
    assert tokens("band = CASE WHEN \"score\" >= 50 THEN 'high' END AND id IN (1, 2)") == tokens(
        "`band` = CASE WHEN `score` >= ? THEN ? END AND ID IN (...)"
    )


def test_contains_expression_finds_the_backfill_expression_in_either_normal_form() -> None:
    expression = "CASE WHEN score >= 50 THEN 'high' ELSE 'low' END"
    pg = "WITH u AS (UPDATE accounts SET band = (CASE WHEN score >= $3 THEN $4 ELSE $5 END) WHERE id > $1) SELECT 1"
    mysql = "UPDATE `accounts` SET `band` = ( CASE WHEN `score` >= ? THEN ? ELSE ? END ) WHERE ID > ?"
    assert contains_expression(pg, expression) and contains_expression(mysql, expression)
    assert not contains_expression("UPDATE accounts SET band = score", expression)
