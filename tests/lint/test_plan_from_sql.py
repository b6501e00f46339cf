"""`osctl plan --from-sql`: statements to operations, the reason for each one left out, the plan
document."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orchestrator.cli import main
from orchestrator.domain.plan import Stage
from orchestrator.domain.spec import parse_spec
from orchestrator.engine.planner import plan_migration
from orchestrator.lint.convert import Outcome, convert_sql, spec_name, writable_spec
from orchestrator.lint.plan_document import assess_risk, render_plan_document


def converted(sql: str) -> list[dict[str, object]]:
    conversion = convert_sql(sql)
    assert conversion.spec is not None, [note.reason for note in conversion.notes]
    return writable_spec(conversion.spec)["operations"]  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("sql", "operations"),
    [
        (
            "ALTER TABLE accounts ADD COLUMN band text",
            [{"add_column": {"table": "accounts", "column": {"name": "band", "type": "text"}}}],
        ),
        (
            "ALTER TABLE public.accounts ADD COLUMN IF NOT EXISTS n integer NOT NULL DEFAULT 0",
            [
                {
                    "add_column": {
                        "table": "accounts",
                        "column": {"name": "n", "type": "integer", "nullable": False, "default": 0},
                    }
                }
            ],
        ),
        (
            "ALTER TABLE accounts ADD COLUMN active boolean DEFAULT 'true'::boolean NOT NULL",
            [
                {
                    "add_column": {
                        "table": "accounts",
                        "column": {"name": "active", "type": "boolean", "nullable": False, "default": True},
                    }
                }
            ],
        ),
        (
            "CREATE INDEX accounts_email_idx ON accounts (email)",
            [{"create_index": {"table": "accounts", "name": "accounts_email_idx", "columns": ["email"]}}],
        ),
        (
            "CREATE UNIQUE INDEX CONCURRENTLY ON accounts USING btree (email, id)",
            [
                {
                    "create_index": {
                        "table": "accounts",
                        "name": "accounts_email_id_key",
                        "columns": ["email", "id"],
                        "unique": True,
                    }
                }
            ],
        ),
        (
            "UPDATE accounts SET band = lower(email)",
            [{"backfill": {"table": "accounts", "column": "band", "expression": "lower(email)"}}],
        ),
        (
            "UPDATE accounts SET band = 'x' WHERE band IS NULL",
            [
                {
                    "backfill": {
                        "table": "accounts",
                        "column": "band",
                        "expression": "CASE WHEN band IS NULL THEN 'x' ELSE band END",
                    }
                }
            ],
        ),
        (
            "ALTER TABLE accounts DROP COLUMN legacy",
            [{"drop_column": {"table": "accounts", "column": "legacy"}}],
        ),
        (
            "ALTER TABLE t ALTER COLUMN a TYPE bigint, ALTER COLUMN a SET NOT NULL",
            [{"alter_column": {"table": "t", "column": "a", "type": "bigint", "nullable": False}}],
        ),
        (
            "ALTER TABLE t ALTER COLUMN a TYPE varchar(20) USING substr(a, 1, 20)",
            [
                {
                    "alter_column": {
                        "table": "t",
                        "column": "a",
                        "type": "varchar(20)",
                        "up": "substr(a, 1, 20)",
                    }
                }
            ],
        ),
        (
            "ALTER TABLE t ALTER COLUMN a SET DEFAULT 5, ALTER COLUMN b DROP DEFAULT, ALTER COLUMN c DROP NOT NULL",
            [
                {"alter_column": {"table": "t", "column": "a", "default": 5}},
                {"alter_column": {"table": "t", "column": "b", "drop_default": True}},
                {"alter_column": {"table": "t", "column": "c", "nullable": True}},
            ],
        ),
        (
            "ALTER TABLE t ADD COLUMN a uuid NOT NULL DEFAULT gen_random_uuid()",
            [
                {
                    "add_column": {
                        "table": "t",
                        "column": {
                            "name": "a",
                            "type": "uuid",
                            "nullable": False,
                            "default_expression": "gen_random_uuid()",
                        },
                    }
                }
            ],
        ),
        (
            "ALTER TABLE t ADD COLUMN a int UNIQUE REFERENCES u (id) ON DELETE CASCADE",
            [
                {
                    "add_column": {
                        "table": "t",
                        "column": {
                            "name": "a",
                            "type": "integer",
                            "unique": True,
                            "references": {"table": "u", "on_delete": "cascade"},
                        },
                    }
                }
            ],
        ),
        (
            "ALTER TABLE t ADD CONSTRAINT t_a_fk FOREIGN KEY (a) REFERENCES u (uid) NOT VALID;\n"
            "ALTER TABLE t VALIDATE CONSTRAINT t_a_fk;",
            [
                {
                    "add_foreign_key": {
                        "table": "t",
                        "name": "t_a_fk",
                        "columns": ["a"],
                        "references": {"table": "u", "columns": ["uid"]},
                    }
                }
            ],
        ),
        (
            "ALTER TABLE t ADD CHECK (a > 0), ADD UNIQUE (b, c)",
            [
                {"add_check": {"table": "t", "name": "t_check", "expression": "a > 0"}},
                {"add_unique": {"table": "t", "name": "t_b_c_key", "columns": ["b", "c"]}},
            ],
        ),
        (
            "ALTER TABLE t RENAME COLUMN a TO b;\nALTER TABLE t RENAME TO u;\nDROP TABLE v, w;",
            [
                {"rename_column": {"table": "t", "column": "a", "new_name": "b"}},
                {"rename_table": {"table": "t", "new_name": "u"}},
                {"drop_table": {"table": "v"}},
                {"drop_table": {"table": "w"}},
            ],
        ),
        (
            "CREATE TABLE t (id bigint PRIMARY KEY, label text NOT NULL UNIQUE, at timestamptz DEFAULT now())",
            [
                {
                    "create_table": {
                        "table": "t",
                        "columns": [
                            {"name": "id", "type": "bigint", "nullable": False},
                            {"name": "label", "type": "text", "nullable": False, "unique": True},
                            {"name": "at", "type": "timestamptz", "default_expression": "now()"},
                        ],
                        "primary_key": ["id"],
                    }
                }
            ],
        ),
        (
            "CREATE INDEX t_lower ON t (lower(a)) WHERE b > 0",
            [
                {
                    "create_index": {
                        "table": "t",
                        "name": "t_lower",
                        "expressions": ["lower(a)"],
                        "where": "b > 0",
                    }
                }
            ],
        ),
    ],
)
def test_recognised_statements_become_operations(sql: str, operations: list[dict[str, object]]) -> None:
    assert converted(sql) == operations


@pytest.mark.parametrize(
    ("sql", "reason"),
    [
        ("ALTER TABLE t ADD COLUMN a int NOT NULL", "'backfill' expression"),
        ("ALTER TABLE t ALTER COLUMN a SET DEFAULT now()", "not a constant"),
        ("ALTER TABLE t ADD CONSTRAINT x EXCLUDE USING gist (a WITH =)", "EXCLUSION"),
        ("ALTER TABLE t VALIDATE CONSTRAINT elsewhere", "does not add"),
        ("ALTER TABLE t ADD CONSTRAINT f FOREIGN KEY (a) REFERENCES u (id) ON UPDATE CASCADE", "ON UPDATE"),
        ("ALTER TABLE t DROP COLUMN a CASCADE", "CASCADE"),
        ("DROP TABLE t CASCADE", "CASCADE"),
        ("DROP INDEX i", "drop_index"),
        ("CREATE TABLE t (id bigint, CHECK (id > 0))", "table-level constraint"),
        ("CREATE INDEX i ON t (a DESC)", "ordering"),
        ("CREATE INDEX i ON other.t (a)", "search path"),
        ("UPDATE t SET a = (SELECT max(b) FROM u)", "subquery"),
        ("UPDATE t SET a = b, b = a", "same UPDATE"),
        ("DELETE FROM t", "batched delete"),
        ('ALTER TABLE t ADD COLUMN "Mixed" int', "not a valid identifier"),
        ("VACUUM FULL t", "maintenance"),
    ],
)
def test_what_cannot_be_converted_says_why(sql: str, reason: str) -> None:
    conversion = convert_sql(sql)
    [note] = conversion.notes
    assert note.outcome is Outcome.NOT_CONVERTED
    assert reason in note.reason
    assert conversion.spec is None


def test_a_statement_converts_whole_or_not_at_all() -> None:
    conversion = convert_sql("ALTER TABLE t ADD COLUMN a int, ALTER COLUMN b SET DEFAULT now();")
    [note] = conversion.notes
    assert note.outcome is Outcome.NOT_CONVERTED and note.operations == []
    assert conversion.spec is None


def test_transaction_and_lock_timeout_statements_are_skipped_and_the_timeout_kept() -> None:
    conversion = convert_sql("BEGIN;\nSET lock_timeout = '3s';\nALTER TABLE t ADD COLUMN a int;\nCOMMIT;")
    assert [(note.statement_index, note.line, note.outcome) for note in conversion.notes] == [
        (0, 1, Outcome.SKIPPED),
        (1, 2, Outcome.SKIPPED),
        (2, 3, Outcome.CONVERTED),
        (3, 4, Outcome.SKIPPED),
    ]
    assert conversion.spec is not None and conversion.spec.settings.lock_timeout_ms == 3000
    assert conversion.complete


def test_the_spec_round_trips_through_the_users_format() -> None:
    conversion = convert_sql(
        "ALTER TABLE t ADD COLUMN a int DEFAULT 1;\nCREATE INDEX t_a ON t (a);", "db/migrate/0001 Add A.sql"
    )
    assert conversion.spec is not None
    assert conversion.spec.name == spec_name("db/migrate/0001 Add A.sql") == "0001-add-a"
    assert parse_spec(writable_spec(conversion.spec)) == conversion.spec


def test_plan_document_has_every_section_and_rollback_per_stage() -> None:
    conversion = convert_sql(
        "ALTER TABLE t ADD COLUMN a int;\nCREATE INDEX t_a ON t (a);\nUPDATE t SET a = b * 2;\n"
        "ALTER TABLE t DROP COLUMN c;\nALTER TABLE t ALTER COLUMN d SET DEFAULT now();",
        "m.sql",
    )
    assert conversion.spec is not None
    document = render_plan_document(plan_migration(conversion.spec), conversion)
    for heading in (
        "## Purpose",
        "## Risk: high",
        "## Stages",
        "## Estimated time",
        "## Checks",
        "## Statements of m.sql",
        "## The SQL as written",
    ):
        assert heading in document
    for stage in ("expand", "deploy_gate", "backfill", "contract"):
        assert f". {stage}" in document
    assert "Rollback of expand:" in document and 'DROP INDEX CONCURRENTLY IF EXISTS "t_a"' in document
    assert "Rollback of contract:" in document and "dropping t.c discards its values" in document
    assert "not a constant" in document
    assert "`create-index-non-concurrent`" in document


@pytest.mark.parametrize(
    ("sql", "level"),
    [
        ("ALTER TABLE t ADD COLUMN a int; CREATE INDEX t_a ON t (a);", "low"),
        ("ALTER TABLE t ADD COLUMN a int; UPDATE t SET a = 1;", "medium"),
        ("CREATE UNIQUE INDEX t_a ON t (a);", "medium"),
        ("ALTER TABLE t DROP COLUMN a;", "high"),
        ("UPDATE t SET a = 1;", "high"),  # overwrites a column the plan did not add: no rollback
    ],
)
def test_risk_levels(sql: str, level: str) -> None:
    conversion = convert_sql(sql)
    assert conversion.spec is not None
    assert assess_risk(plan_migration(conversion.spec), conversion).level == level


def test_cli_prints_the_plan_and_exits_0_when_everything_converted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sql = tmp_path / "m.sql"
    sql.write_text("CREATE INDEX t_a ON t (a);\nALTER TABLE t ADD COLUMN b int;\n")
    assert main(["plan", "--from-sql", str(sql)]) == 0
    out = capsys.readouterr().out
    assert 'CREATE INDEX CONCURRENTLY IF NOT EXISTS "t_a"' in out
    assert "0 (line 1) converted" in out and "1 (line 2) converted" in out
    assert "Spec (save it" in out


def test_cli_exits_1_when_a_statement_is_left_out_and_says_which(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sql = tmp_path / "m.sql"
    sql.write_text("ALTER TABLE t ADD COLUMN b int;\nDROP INDEX t_a;\n")
    assert main(["plan", "--from-sql", str(sql), "--format", "json"]) == 1
    body = json.loads(capsys.readouterr().out)
    assert [stage["stage"] for stage in body["plan"]["stages"]] == [
        stage.value for stage in (Stage.EXPAND, Stage.DEPLOY_GATE, Stage.BACKFILL, Stage.CONTRACT)
    ]
    assert [(s["statement_index"], s["outcome"]) for s in body["statements"]] == [
        (0, "converted"),
        (1, "not-converted"),
    ]
    assert parse_spec(body["spec"]).ops()[0].kind == "add_column"


def test_cli_exit_codes_for_nothing_convertible_unparsable_and_bad_arguments(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    nothing = tmp_path / "n.sql"
    nothing.write_text("DROP INDEX t_a;")
    assert main(["plan", "--from-sql", str(nothing)]) == 1
    assert "drop_index" in capsys.readouterr().err
    broken = tmp_path / "b.sql"
    broken.write_text("ALTER TABLE t ADD COLUMN a int;\nALTER TABEL t;")
    assert main(["plan", "--from-sql", str(broken)]) == 2
    assert "b.sql:2:7" in capsys.readouterr().err
    assert main(["plan"]) == 2
    assert main(["plan", str(nothing), "--from-sql", str(nothing)]) == 2


def test_markdown_for_a_spec_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "s.yaml"
    spec.write_text(
        "name: s\ndescription: Tag accounts by source.\n"
        "operations:\n  - add_column: {table: t, column: {name: a, type: text}}\n"
    )
    assert main(["plan", str(spec), "--format", "markdown"]) == 0
    document = capsys.readouterr().out
    assert document.startswith("# Migration plan: s\n\n## Purpose\n\nTag accounts by source.\n")
    assert "## Risk: low" in document and "## Statements of" not in document
