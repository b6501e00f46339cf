"""Which online algorithm each server version runs each change with, as a table; the planner's ALTER
statements parsed back and re-rendered for the server at hand."""

from __future__ import annotations

import pytest

from adapters.mysql.algorithms import (
    Algorithm,
    AlterStatement,
    Change,
    Flavour,
    ServerVersion,
    online_algorithm,
    parse_alter,
    parse_server_version,
)
from adapters.mysql.target import lock_wait_seconds

MARIADB, MYSQL = Flavour.MARIADB, Flavour.MYSQL
INSTANT, INPLACE = Algorithm.INSTANT, Algorithm.INPLACE


@pytest.mark.parametrize(
    ("text", "version"),
    [
        ("10.11.19-MariaDB-0+deb12u1-log", ServerVersion(MARIADB, 10, 11, 19)),
        ("11.4.2-MariaDB", ServerVersion(MARIADB, 11, 4, 2)),
        ("5.5.5-10.3.39-MariaDB", ServerVersion(MARIADB, 10, 3, 39)),
        ("10.2.44-MariaDB-log", ServerVersion(MARIADB, 10, 2, 44)),
        ("8.0.36", ServerVersion(MYSQL, 8, 0, 36)),
        ("8.0.36-0ubuntu0.22.04.1", ServerVersion(MYSQL, 8, 0, 36)),
        ("8.0.35-27", ServerVersion(MYSQL, 8, 0, 35)),  # Percona Server
        ("8.4.0", ServerVersion(MYSQL, 8, 4, 0)),
        ("5.7.44-log", ServerVersion(MYSQL, 5, 7, 44)),
    ],
)
def test_server_version_from_select_version(text: str, version: ServerVersion) -> None:
    assert parse_server_version(text) == version


def test_an_unreadable_version_is_refused() -> None:
    with pytest.raises(ValueError, match="cannot read a server version"):
        parse_server_version("banana")


def v(flavour: Flavour, text: str) -> ServerVersion:
    major, minor, patch = (int(part) for part in text.split("."))
    return ServerVersion(flavour, major, minor, patch)


@pytest.mark.parametrize(
    ("change", "version", "algorithm"),
    [
        # ADD COLUMN: instant from MariaDB 10.3.7 and MySQL 8.0.12, an online rebuild before.
        (Change.ADD_COLUMN, v(MARIADB, "10.11.19"), INSTANT),
        (Change.ADD_COLUMN, v(MARIADB, "11.4.2"), INSTANT),
        (Change.ADD_COLUMN, v(MARIADB, "10.3.7"), INSTANT),
        (Change.ADD_COLUMN, v(MARIADB, "10.3.6"), INPLACE),
        (Change.ADD_COLUMN, v(MARIADB, "10.2.44"), INPLACE),
        (Change.ADD_COLUMN, v(MARIADB, "5.5.68"), None),
        (Change.ADD_COLUMN, v(MYSQL, "8.0.36"), INSTANT),
        (Change.ADD_COLUMN, v(MYSQL, "8.0.12"), INSTANT),
        (Change.ADD_COLUMN, v(MYSQL, "8.0.11"), INPLACE),
        (Change.ADD_COLUMN, v(MYSQL, "5.7.44"), INPLACE),
        (Change.ADD_COLUMN, v(MYSQL, "5.6.51"), INPLACE),
        (Change.ADD_COLUMN, v(MYSQL, "5.5.62"), None),
        # DROP COLUMN: instant from MariaDB 10.4 (MDEV-15562) and MySQL 8.0.29.
        (Change.DROP_COLUMN, v(MARIADB, "10.11.19"), INSTANT),
        (Change.DROP_COLUMN, v(MARIADB, "10.5.0"), INSTANT),
        (Change.DROP_COLUMN, v(MARIADB, "10.4.0"), INSTANT),
        (Change.DROP_COLUMN, v(MARIADB, "10.3.39"), INPLACE),
        (Change.DROP_COLUMN, v(MYSQL, "8.0.29"), INSTANT),
        (Change.DROP_COLUMN, v(MYSQL, "8.4.0"), INSTANT),
        (Change.DROP_COLUMN, v(MYSQL, "8.0.28"), INPLACE),
        (Change.DROP_COLUMN, v(MYSQL, "5.7.44"), INPLACE),
        (Change.DROP_COLUMN, v(MYSQL, "5.5.62"), None),
        # Indexes: built and dropped in place with concurrent DML everywhere online DDL exists.
        (Change.ADD_INDEX, v(MARIADB, "10.11.19"), INPLACE),
        (Change.ADD_INDEX, v(MARIADB, "10.0.38"), INPLACE),
        (Change.ADD_INDEX, v(MYSQL, "8.0.36"), INPLACE),
        (Change.ADD_INDEX, v(MYSQL, "5.6.51"), INPLACE),
        (Change.ADD_INDEX, v(MYSQL, "5.5.62"), None),
        (Change.ADD_UNIQUE_INDEX, v(MARIADB, "10.11.19"), INPLACE),
        (Change.ADD_UNIQUE_INDEX, v(MYSQL, "5.7.44"), INPLACE),
        (Change.DROP_INDEX, v(MARIADB, "10.11.19"), INPLACE),
        (Change.DROP_INDEX, v(MYSQL, "8.0.36"), INPLACE),
        (Change.DROP_INDEX, v(MARIADB, "5.5.68"), None),
    ],
)
def test_online_algorithm_per_change_and_version(
    change: Change, version: ServerVersion, algorithm: Algorithm | None
) -> None:
    assert online_algorithm(change, version) is algorithm


@pytest.mark.parametrize(
    ("sql", "statement"),
    [
        (
            "ALTER TABLE `users` ADD COLUMN `band` varchar(8) NOT NULL DEFAULT 'x', ALGORITHM=INSTANT",
            AlterStatement("users", Change.ADD_COLUMN, "band", " varchar(8) NOT NULL DEFAULT 'x'", INSTANT),
        ),
        (
            "ALTER TABLE `users` DROP COLUMN `legacy`, ALGORITHM=INSTANT",
            AlterStatement("users", Change.DROP_COLUMN, "legacy", "", INSTANT),
        ),
        (
            "ALTER TABLE `users` ADD UNIQUE INDEX `users_email_key` (`email`), ALGORITHM=INPLACE, LOCK=NONE",
            AlterStatement("users", Change.ADD_UNIQUE_INDEX, "users_email_key", " (`email`)", INPLACE),
        ),
        (
            "ALTER TABLE `users` ADD INDEX `users_ab_idx` (`a`, `b`), ALGORITHM=INPLACE, LOCK=NONE",
            AlterStatement("users", Change.ADD_INDEX, "users_ab_idx", " (`a`, `b`)", INPLACE),
        ),
        (
            "ALTER TABLE `users` DROP INDEX `users_ab_idx`, ALGORITHM=INPLACE, LOCK=NONE",
            AlterStatement("users", Change.DROP_INDEX, "users_ab_idx", "", INPLACE),
        ),
        (
            # A default that looks like the clause stays part of the body.
            "ALTER TABLE `t` ADD COLUMN `c` text DEFAULT ', ALGORITHM=INPLACE', ALGORITHM=INSTANT",
            AlterStatement("t", Change.ADD_COLUMN, "c", " text DEFAULT ', ALGORITHM=INPLACE'", INSTANT),
        ),
    ],
)
def test_planner_statements_parse_back_and_render_unchanged(sql: str, statement: AlterStatement) -> None:
    assert parse_alter(sql) == statement
    assert statement.render() == sql


def test_a_statement_is_rendered_with_the_algorithm_the_server_has() -> None:
    statement = parse_alter("ALTER TABLE `users` DROP COLUMN `legacy`, ALGORITHM=INSTANT")
    assert statement is not None
    old = online_algorithm(statement.change, parse_server_version("5.7.44-log"))
    assert statement.render(old) == "ALTER TABLE `users` DROP COLUMN `legacy`, ALGORITHM=INPLACE, LOCK=NONE"


@pytest.mark.parametrize(
    "sql",
    [
        "ALTER TABLE users ADD COLUMN band text, ALGORITHM=INSTANT",  # unquoted: not ours
        "ALTER TABLE `users` ADD COLUMN `band` text",  # no algorithm clause
        "ALTER TABLE `users` MODIFY COLUMN `band` text, ALGORITHM=INSTANT",
        "ALTER TABLE `users` ADD COLUMN `band` text, ALGORITHM=COPY",
        "DROP TABLE `users`",
    ],
)
def test_other_statements_are_left_alone(sql: str) -> None:
    assert parse_alter(sql) is None


@pytest.mark.parametrize(
    ("ms", "seconds"), [(50, 1), (999, 1), (1000, 1), (1001, 2), (2500, 3), (60_000, 60)]
)
def test_lock_timeout_rounds_up_to_whole_seconds(ms: int, seconds: int) -> None:
    assert lock_wait_seconds(ms) == seconds
