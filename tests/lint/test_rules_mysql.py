"""MySQL and MariaDB: the INSTANT/INPLACE table per release line, the stated ALGORITHM/LOCK clauses,
and the rules shared with PostgreSQL."""

from __future__ import annotations

import pytest

from orchestrator.lint import Severity, lint_sql, parse_server_version
from orchestrator.lint.mysql.versions import (
    GRID,
    RELEASE_LINES,
    Algorithm,
    Change,
    ServerVersion,
    algorithm_for,
)

ERROR, WARNING, INFO = Severity.ERROR, Severity.WARNING, Severity.INFO


def findings(sql: str, version: str | None = None) -> list[tuple[str, Severity]]:
    server = parse_server_version(version) if version else None
    return [
        (f.rule, f.severity)
        for f in lint_sql(sql, "mysql", server_version=server).findings
        if f.rule != "lock-timeout-missing"
    ]


@pytest.mark.parametrize(
    ("text", "flavor", "numbers", "line"),
    [
        ("5.7", "mysql", (5, 7, 0), "mysql-5.7"),
        ("5.7.44-log", "mysql", (5, 7, 44), "mysql-5.7"),
        ("8.0.28", "mysql", (8, 0, 28), "mysql-8.0"),
        ("8.0.29", "mysql", (8, 0, 29), "mysql-8.0.29"),
        ("mysql-8.4.2", "mysql", (8, 4, 2), "mysql-8.0.29"),
        ("10.3.39-MariaDB", "mariadb", (10, 3, 39), "mariadb-10.3"),
        ("10.4", "mariadb", (10, 4, 0), "mariadb-10.4"),
        ("10.6.16", "mariadb", (10, 6, 16), "mariadb-10.5"),
        ("10.11.6-MariaDB-0+deb12u1", "mariadb", (10, 11, 6), "mariadb-10.11"),
        ("mariadb-11.4", "mariadb", (11, 4, 0), "mariadb-10.11"),
    ],
)
def test_server_versions_map_to_their_release_line(
    text: str, flavor: str, numbers: tuple[int, int, int], line: str
) -> None:
    version = parse_server_version(text)
    assert (version.flavor, version.numbers, version.release_line) == (flavor, numbers, line)


@pytest.mark.parametrize("text", ["5.6.51", "10.2.44", "mysql-10.5", "mariadb-8.0", "latest", ""])
def test_unknown_or_too_old_versions_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_server_version(text)


def test_the_grid_covers_every_change_on_every_release_line() -> None:
    assert set(GRID) == set(Change)
    assert all(len(row) == len(RELEASE_LINES) for row in GRID.values())


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (Change.ADD_COLUMN, ["REBUILD", "INSTANT", "INSTANT", "INSTANT", "INSTANT", "INSTANT", "INSTANT"]),
        (
            Change.ADD_COLUMN_POSITIONED,
            ["REBUILD", "REBUILD", "INSTANT", "REBUILD", "INSTANT", "INSTANT", "INSTANT"],
        ),
        (Change.DROP_COLUMN, ["REBUILD", "REBUILD", "INSTANT", "REBUILD", "INSTANT", "INSTANT", "INSTANT"]),
        (
            Change.RENAME_COLUMN,
            ["UNSUPPORTED", "INPLACE", "INSTANT", "UNSUPPORTED", "UNSUPPORTED", "INSTANT", "INSTANT"],
        ),
        (Change.ADD_FOREIGN_KEY, ["COPY"] * 7),
        (Change.ADD_FOREIGN_KEY_UNCHECKED, ["INPLACE"] * 7),
        (Change.ADD_INDEX, ["INPLACE"] * 7),
        (Change.ADD_FULLTEXT_INDEX, ["SHARED"] * 7),
    ],
)
def test_the_documented_algorithms_per_release_line(change: Change, expected: list[str]) -> None:
    lines = ["5.7.44", "8.0.28", "8.0.35", "10.3.39", "10.4.33", "10.5.25", "10.11.6"]
    assert [algorithm_for(change, parse_server_version(line)).name for line in lines] == expected


@pytest.mark.parametrize(
    ("sql", "version", "expected"),
    [
        ("ALTER TABLE t ADD COLUMN c INT", "5.7.44", [("mysql-table-rebuild", WARNING)]),
        ("ALTER TABLE t ADD COLUMN c INT", "8.0.28", []),
        ("ALTER TABLE t ADD COLUMN c INT AFTER b", "8.0.28", [("mysql-table-rebuild", WARNING)]),
        ("ALTER TABLE t ADD COLUMN c INT AFTER b", "8.0.29", []),
        ("ALTER TABLE t ADD COLUMN c INT FIRST", "10.3.39", [("mysql-table-rebuild", WARNING)]),
        ("ALTER TABLE t ADD COLUMN c INT FIRST", "10.4.33", []),
        (
            "ALTER TABLE t DROP COLUMN c",
            "8.0.28",
            [("drop-column", WARNING), ("mysql-table-rebuild", WARNING)],
        ),
        ("ALTER TABLE t DROP COLUMN c", "10.11.6", [("drop-column", WARNING)]),
        (
            "ALTER TABLE t RENAME COLUMN a TO b",
            "10.4.33",
            [("rename-column", ERROR), ("mysql-not-supported", INFO)],
        ),
        ("ALTER TABLE t RENAME COLUMN a TO b", "10.5.25", [("rename-column", ERROR)]),
        ("ALTER TABLE t ADD COLUMN c INT, ALGORITHM=INSTANT", "5.7.44", [("mysql-not-supported", INFO)]),
        (
            "ALTER TABLE t ADD COLUMN c INT AFTER b, ALGORITHM=INSTANT",
            "8.0.28",
            [("mysql-not-supported", INFO)],
        ),
        ("ALTER TABLE t ADD COLUMN c INT AFTER b, ALGORITHM=INSTANT", "8.0.35", []),
    ],
)
def test_version_dependent_verdicts(sql: str, version: str, expected: list[tuple[str, Severity]]) -> None:
    assert findings(sql, version) == expected


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("ALTER TABLE t MODIFY c VARCHAR(20) NOT NULL", [("mysql-blocking-alter", WARNING)]),
        ("ALTER TABLE t MODIFY c VARCHAR(20) NOT NULL, ALGORITHM=INPLACE, LOCK=NONE", []),
        ("ALTER TABLE t MODIFY c VARCHAR(20), ALGORITHM=COPY", [("mysql-blocking-alter", ERROR)]),
        ("ALTER TABLE t ADD INDEX i (a), LOCK=SHARED", [("mysql-blocking-alter", ERROR)]),
        (
            "ALTER TABLE t ADD CONSTRAINT f FOREIGN KEY (a) REFERENCES u (id)",
            [("mysql-blocking-alter", ERROR)],
        ),
        (
            "ALTER TABLE t ADD CONSTRAINT f FOREIGN KEY (a) REFERENCES u (id), ALGORITHM=INPLACE",
            [("mysql-not-supported", INFO)],
        ),
        ("ALTER TABLE t ADD FULLTEXT INDEX f (body)", [("mysql-blocking-alter", ERROR)]),
        ("ALTER TABLE t ADD FULLTEXT INDEX f (body), LOCK=NONE", [("mysql-not-supported", INFO)]),
        ("CREATE FULLTEXT INDEX f ON t (body)", [("mysql-blocking-alter", ERROR)]),
        ("CREATE INDEX i ON t (a) ALGORITHM=INPLACE LOCK=NONE", []),
        ("ALTER TABLE t CONVERT TO CHARACTER SET utf8mb4", [("mysql-blocking-alter", ERROR)]),
        ("ALTER TABLE t ENGINE=InnoDB", [("mysql-table-rebuild", WARNING)]),
        ("OPTIMIZE TABLE t", [("mysql-table-rebuild", WARNING)]),
        ("ALTER TABLE t DROP PRIMARY KEY", [("mysql-blocking-alter", ERROR)]),
        ("ALTER TABLE t DROP PRIMARY KEY, ADD PRIMARY KEY (a, id)", [("mysql-table-rebuild", WARNING)]),
        ("ALTER TABLE t ADD COLUMN c INT AS (a + 1) STORED", [("mysql-blocking-alter", ERROR)]),
        ("ALTER TABLE t ADD COLUMN c INT AS (a + 1) VIRTUAL", []),
        ("ALTER TABLE t ADD COLUMN c INT NOT NULL", [("not-null-column-without-default", ERROR)]),
        ("ALTER TABLE t ADD COLUMN c INT NOT NULL DEFAULT 0", []),
        ("ALTER TABLE t CHANGE a b INT", [("rename-column", ERROR), ("mysql-blocking-alter", WARNING)]),
        ("RENAME TABLE a TO b, c TO d", [("rename-table", ERROR), ("rename-table", ERROR)]),
        ("DROP TABLE a", [("drop-table", WARNING)]),
        ("LOCK TABLES t WRITE", [("lock-table", ERROR)]),
        ("CREATE TABLE t (id INT UNSIGNED AUTO_INCREMENT PRIMARY KEY)", [("integer-primary-key", WARNING)]),
        ("CREATE TABLE t (id BIGINT AUTO_INCREMENT, PRIMARY KEY (id))", []),
        ("UPDATE t SET a = 1", [("unbatched-data-change", ERROR)]),
        ("UPDATE t SET a = 1 LIMIT 1000", []),
        ("DELETE FROM t WHERE created < NOW()", [("unbatched-data-change", WARNING)]),
        ("ALTER ONLINE TABLE t ADD COLUMN c INT", []),
        ("ALTER TABLE t PARTITION BY HASH(id) PARTITIONS 4", [("unanalysed-alter", WARNING)]),
    ],
)
def test_rule_table_on_the_default_mariadb_10_11(sql: str, expected: list[tuple[str, Severity]]) -> None:
    assert findings(sql) == expected


def test_foreign_key_checks_off_lets_a_foreign_key_run_in_place_until_switched_back() -> None:
    sql = (
        "SET foreign_key_checks = 0;\n"
        "ALTER TABLE t ADD CONSTRAINT f FOREIGN KEY (a) REFERENCES u (id);\n"
        "SET foreign_key_checks = 1;\n"
        "ALTER TABLE t ADD CONSTRAINT g FOREIGN KEY (b) REFERENCES u (id);"
    )
    report = lint_sql(sql, "mysql")
    assert [(f.rule, f.statement_index) for f in report.findings if f.severity is ERROR] == [
        ("mysql-blocking-alter", 3)
    ]


def test_ddl_in_a_prepared_statement_is_judged_where_it_executes() -> None:
    sql = (
        "SET @s = (SELECT IF(1, 'ALTER TABLE t DROP COLUMN c;', 'SELECT 1'));\n"
        "PREPARE p FROM @s;\n"
        "EXECUTE p;\n"
        "DEALLOCATE PREPARE p;"
    )
    report = lint_sql(sql, "mysql")
    assert [(f.rule, f.statement_index, f.line) for f in report.findings if f.severity is not INFO] == [
        ("drop-column", 2, 3)
    ]
    assert report.statements == 4


def test_a_procedure_body_is_judged_where_it_is_called() -> None:
    sql = (
        "CREATE PROCEDURE fix()\nBEGIN\n  IF (SELECT 1) THEN\n    UPDATE t SET a = 1;\n"
        "    ALTER TABLE t MODIFY COLUMN b TEXT, ALGORITHM=COPY;\n  END IF;\nEND;\n"
        "CALL fix();\nDROP PROCEDURE fix;"
    )
    report = lint_sql(sql, "mysql")
    risky = [(f.rule, f.statement_index) for f in report.findings if f.severity is not INFO]
    assert risky == [("unbatched-data-change", 1), ("mysql-blocking-alter", 1)]


def test_the_version_appears_in_the_message() -> None:
    [finding] = [
        f
        for f in lint_sql(
            "ALTER TABLE t ADD COLUMN c INT", "mysql", server_version=parse_server_version("5.7.44")
        ).findings
        if f.rule == "mysql-table-rebuild"
    ]
    assert "MySQL 5.7.44" in finding.message


def test_release_lines_are_ordered_by_disruption() -> None:
    assert Algorithm.INSTANT < Algorithm.INPLACE < Algorithm.REBUILD < Algorithm.SHARED < Algorithm.COPY
    assert str(ServerVersion("mariadb", (10, 11, 0), precise=False)) == "MariaDB 10.11"
