"""PostgreSQL rules as tables: SQL in, (rule, severity) out; info findings checked where they matter."""

from __future__ import annotations

import pytest

from orchestrator.lint import Severity, lint_sql

ERROR, WARNING, INFO = Severity.ERROR, Severity.WARNING, Severity.INFO


def risks(sql: str) -> list[tuple[str, Severity]]:
    """(rule, severity) of every finding that is not info, in order."""
    return [(f.rule, f.severity) for f in lint_sql(sql, "postgres").findings if f.severity is not INFO]


def rules(sql: str) -> list[str]:
    return [f.rule for f in lint_sql(sql, "postgres").findings]


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        # indexes
        ("CREATE INDEX i ON t (a)", [("create-index-non-concurrent", ERROR)]),
        ("CREATE UNIQUE INDEX i ON t (lower(a)) WHERE b", [("create-index-non-concurrent", ERROR)]),
        ("CREATE INDEX CONCURRENTLY i ON t (a)", []),
        ("DROP INDEX i", [("drop-index-non-concurrent", WARNING)]),
        ("DROP INDEX CONCURRENTLY IF EXISTS i", []),
        ("REINDEX TABLE t", [("reindex-non-concurrent", ERROR)]),
        ("REINDEX (CONCURRENTLY) TABLE t", []),
        # columns
        ("ALTER TABLE t ADD COLUMN c int", []),
        ("ALTER TABLE t ADD COLUMN c text NOT NULL DEFAULT 'x'", []),
        ("ALTER TABLE t ADD COLUMN c timestamptz NOT NULL DEFAULT now()", []),
        ("ALTER TABLE t ADD COLUMN c timestamptz DEFAULT CURRENT_TIMESTAMP", []),
        (
            "ALTER TABLE t ADD COLUMN c uuid DEFAULT gen_random_uuid()",
            [("add-column-volatile-default", ERROR)],
        ),
        (
            "ALTER TABLE t ADD COLUMN c text DEFAULT md5(random()::text)",
            [("add-column-volatile-default", ERROR)],
        ),
        ("ALTER TABLE t ADD COLUMN c text DEFAULT my_function()", [("add-column-volatile-default", WARNING)]),
        ("ALTER TABLE t ADD COLUMN c bigserial", [("add-column-volatile-default", ERROR)]),
        (
            "ALTER TABLE t ADD COLUMN c int GENERATED ALWAYS AS IDENTITY",
            [("add-column-volatile-default", ERROR)],
        ),
        (
            "ALTER TABLE t ADD COLUMN c int GENERATED ALWAYS AS (a + 1) STORED",
            [("add-column-volatile-default", ERROR)],
        ),
        ("ALTER TABLE t ADD COLUMN c int NOT NULL", [("not-null-column-without-default", ERROR)]),
        ("ALTER TABLE t ADD COLUMN c int CHECK (c > 0)", [("constraint-without-not-valid", ERROR)]),
        ("ALTER TABLE t ADD COLUMN c bigint REFERENCES u (id)", []),
        (
            "ALTER TABLE t ADD COLUMN c bigint DEFAULT 1 REFERENCES u (id)",
            [("constraint-without-not-valid", ERROR)],
        ),
        ("ALTER TABLE t ADD COLUMN c text UNIQUE", [("unique-constraint-without-index", ERROR)]),
        (
            "ALTER TABLE t ADD COLUMN id serial PRIMARY KEY",
            [
                ("add-column-volatile-default", ERROR),
                ("unique-constraint-without-index", ERROR),
                ("integer-primary-key", WARNING),
            ],
        ),
        ("ALTER TABLE t ALTER COLUMN c SET NOT NULL", [("set-not-null", ERROR)]),
        ("ALTER TABLE t ALTER COLUMN c DROP NOT NULL", []),
        ("ALTER TABLE t ALTER COLUMN c SET DEFAULT 1", []),
        ("ALTER TABLE t ALTER COLUMN c TYPE bigint", [("alter-column-type", ERROR)]),
        ("ALTER TABLE t ALTER COLUMN c TYPE varchar(20)", [("alter-column-type", WARNING)]),
        ("ALTER TABLE t ALTER COLUMN c TYPE text USING c::text", [("alter-column-type", ERROR)]),
        ("ALTER TABLE t DROP COLUMN c", [("drop-column", WARNING)]),
        ("ALTER TABLE t RENAME COLUMN a TO b", [("rename-column", ERROR)]),
        # constraints
        (
            "ALTER TABLE t ADD CONSTRAINT f FOREIGN KEY (a) REFERENCES u (id)",
            [("constraint-without-not-valid", ERROR)],
        ),
        ("ALTER TABLE t ADD CONSTRAINT f FOREIGN KEY (a) REFERENCES u (id) NOT VALID", []),
        ("ALTER TABLE t ADD CONSTRAINT c CHECK (a > 0)", [("constraint-without-not-valid", ERROR)]),
        ("ALTER TABLE t ADD CONSTRAINT c CHECK (a > 0) NOT VALID", []),
        ("ALTER TABLE t VALIDATE CONSTRAINT c", []),
        ("ALTER TABLE t ADD CONSTRAINT u UNIQUE (a)", [("unique-constraint-without-index", ERROR)]),
        ("ALTER TABLE t ADD CONSTRAINT u UNIQUE USING INDEX i", []),
        ("ALTER TABLE t ADD PRIMARY KEY (id)", [("unique-constraint-without-index", ERROR)]),
        # tables and maintenance
        ("ALTER TABLE t RENAME TO u", [("rename-table", ERROR)]),
        ("DROP TABLE t", [("drop-table", WARNING)]),
        ("VACUUM FULL t", [("vacuum-full", ERROR)]),
        ("VACUUM ANALYZE t", []),
        ("CLUSTER t USING i", [("cluster", ERROR)]),
        ("ALTER TABLE t SET TABLESPACE fast", [("table-rewrite", ERROR)]),
        ("LOCK TABLE t", [("lock-table", ERROR)]),
        ("LOCK TABLE t IN SHARE UPDATE EXCLUSIVE MODE", []),
        ("CREATE TABLE t (id serial PRIMARY KEY)", [("integer-primary-key", WARNING)]),
        ("CREATE TABLE t (id int, PRIMARY KEY (id))", [("integer-primary-key", WARNING)]),
        ("CREATE TABLE t (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY)", []),
        ("CREATE TABLE t (a int, b int, PRIMARY KEY (a, b))", []),
        # data
        ("UPDATE t SET a = 1", [("unbatched-data-change", ERROR)]),
        ("UPDATE t SET a = 1 WHERE a IS NULL", [("unbatched-data-change", WARNING)]),
        ("UPDATE t SET a = 1 WHERE id = 5", []),
        ("UPDATE t SET a = 1 WHERE id >= 1 AND id < 1000", []),
        ("UPDATE t SET a = 1 WHERE id >= 1", [("unbatched-data-change", WARNING)]),
        ("UPDATE t SET a = 1 WHERE id = ANY($1)", []),
        ("DELETE FROM t", [("unbatched-data-change", ERROR)]),
        ("DELETE FROM t WHERE id IN (SELECT id FROM t WHERE old LIMIT 100)", []),
        ("DELETE FROM t WHERE id IN (SELECT id FROM t WHERE old)", [("unbatched-data-change", WARNING)]),
        ("INSERT INTO t (a) VALUES (1)", []),
    ],
)
def test_rule_table(sql: str, expected: list[tuple[str, Severity]]) -> None:
    assert risks(sql) == expected


def test_statements_on_a_table_created_in_the_same_file_are_not_risky() -> None:
    sql = """
        CREATE TABLE t (id bigint PRIMARY KEY, a int);
        CREATE INDEX t_a ON t (a);
        ALTER TABLE t ADD COLUMN b int NOT NULL, ALTER COLUMN a TYPE bigint, ALTER COLUMN a SET NOT NULL;
        ALTER TABLE t ADD CONSTRAINT f FOREIGN KEY (a) REFERENCES u (id);
        UPDATE t SET a = 1;
        ALTER TABLE t RENAME TO t2;
        ALTER TABLE t2 DROP COLUMN a;
        DROP TABLE t2;
    """
    assert rules(sql) == []


def test_the_exemption_does_not_leak_to_other_tables() -> None:
    sql = "CREATE TABLE t (id bigint PRIMARY KEY);\nCREATE INDEX u_a ON u (a);"
    assert risks(sql) == [("create-index-non-concurrent", ERROR)]


def test_set_not_null_is_safe_after_a_validated_not_null_check_on_the_same_column() -> None:
    proven = """
        ALTER TABLE t ADD CONSTRAINT t_a_nn CHECK (a IS NOT NULL) NOT VALID;
        ALTER TABLE t VALIDATE CONSTRAINT t_a_nn;
        ALTER TABLE t ALTER COLUMN a SET NOT NULL;
    """
    assert risks(proven) == []
    not_validated = "ALTER TABLE t ADD CONSTRAINT t_a_nn CHECK (a IS NOT NULL) NOT VALID;\nALTER TABLE t ALTER COLUMN a SET NOT NULL;"
    assert risks(not_validated) == [("set-not-null", ERROR)]
    other_column = proven.replace("ALTER COLUMN a SET", "ALTER COLUMN b SET")
    assert risks(other_column) == [("set-not-null", ERROR)]


def test_missing_lock_timeout_is_info_and_said_once_per_file() -> None:
    findings = lint_sql(
        "ALTER TABLE t ADD COLUMN a int;\nALTER TABLE u ADD COLUMN b int;", "postgres"
    ).findings
    assert [(f.rule, f.severity, f.statement_index) for f in findings] == [("lock-timeout-missing", INFO, 0)]


@pytest.mark.parametrize(
    "preamble",
    ["SET lock_timeout = '2s';", "SET lock_timeout TO 500;", "BEGIN; SET LOCAL lock_timeout = '1s';"],
)
def test_a_lock_timeout_set_before_ddl_silences_the_hygiene_finding(preamble: str) -> None:
    assert rules(f"{preamble}\nALTER TABLE t ADD COLUMN a int;") == []


@pytest.mark.parametrize(
    "disabled", ["SET lock_timeout = 0;", "SET lock_timeout = '0';", "RESET lock_timeout;"]
)
def test_a_zero_or_reset_lock_timeout_counts_as_none(disabled: str) -> None:
    assert rules(f"SET lock_timeout = '2s';\n{disabled}\nALTER TABLE t ADD COLUMN a int;") == [
        "lock-timeout-missing"
    ]


def test_set_local_lock_timeout_ends_with_its_transaction() -> None:
    sql = "BEGIN; SET LOCAL lock_timeout = '1s'; ALTER TABLE t ADD COLUMN a int; COMMIT;\nALTER TABLE t ADD COLUMN b int;"
    findings = lint_sql(sql, "postgres").findings
    assert [(f.rule, f.statement_index) for f in findings] == [("lock-timeout-missing", 4)]


def test_concurrently_inside_a_transaction_block_is_info_because_it_fails_without_touching_the_table() -> (
    None
):
    findings = lint_sql("BEGIN;\nCREATE INDEX CONCURRENTLY i ON t (a);\nCOMMIT;", "postgres").findings
    assert [(f.rule, f.severity, f.statement_index, f.line) for f in findings] == [
        ("concurrently-in-transaction", INFO, 1, 2)
    ]
    assert rules("BEGIN;\nCOMMIT;\nCREATE INDEX CONCURRENTLY i ON t (a);") == []


def test_every_finding_carries_a_message_and_a_safe_alternative() -> None:
    for finding in lint_sql(
        "CREATE INDEX i ON t (a); UPDATE t SET a = 1; DROP TABLE u;", "postgres"
    ).findings:
        assert finding.message and finding.safe_alternative
