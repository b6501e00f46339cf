"""Framework inputs: Ecto logs and schema-dump diffs become the statements they stand for, with
positions that still point into the file as given."""

from __future__ import annotations

import pytest

from orchestrator.lint import Severity, UnparsableSqlError, lint_sql
from orchestrator.lint.inputs import InputKind, detect, read_input
from orchestrator.lint.inputs.ecto import ecto_log_to_sql
from tests.lint.corpus_cases import CORPUS

ECTO = """\
12:00:00.001 [info] == Running 20240101 App.Repo.Migrations.X.change/0 forward
12:00:00.002 request_id=abc [debug] QUERY OK db=1.0ms
ALTER TABLE "users" ADD COLUMN "tags" text[] DEFAULT ARRAY['a'] []
12:00:00.003 [debug] QUERY OK db=0.9ms
INSERT INTO "schema_migrations" ("version","inserted_at") VALUES ($1,$2) [20240101, ~N[2024-01-01 12:00:00]]
12:00:00.004 [debug] QUERY ERROR db=0.1ms
CREATE INDEX "users_tags_index"
  ON "users" USING gin ("tags") []
12:00:00.005 [info] == Migrated 20240101 in 0.0s
"""


def test_ecto_logs_keep_their_lines_and_lose_parameters() -> None:
    sql = ecto_log_to_sql(ECTO).split("\n")
    assert len(sql) == len(ECTO.split("\n"))
    assert sql[0] == sql[1] == ""
    assert sql[2] == """ALTER TABLE "users" ADD COLUMN "tags" text[] DEFAULT ARRAY['a'];"""
    assert sql[4] == 'INSERT INTO "schema_migrations" ("version","inserted_at") VALUES ($1,$2);'
    assert sql[6:8] == ['CREATE INDEX "users_tags_index"', '  ON "users" USING gin ("tags");']


def test_ecto_log_findings_point_at_log_lines() -> None:
    report = lint_sql(ECTO, "postgres")
    assert report.statements == 3
    assert [(f.rule, f.statement_index, f.line) for f in report.findings if f.severity is Severity.ERROR] == [
        ("create-index-non-concurrent", 2, 7)
    ]


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("ALTER TABLE t ADD COLUMN a int;", InputKind.SQL),
        ("BEGIN;\n--\n-- Add field\n--\nALTER TABLE t ADD COLUMN a int;\nCOMMIT;", InputKind.SQL),
        (ECTO, InputKind.ECTO_LOG),
        ((CORPUS / "files/rails_add_nullable_column.diff").read_text(), InputKind.SCHEMA_DIFF),
    ],
)
def test_input_kinds_are_detected(text: str, kind: InputKind) -> None:
    assert detect(text) is kind


def test_a_column_line_added_inside_an_existing_table_becomes_add_column_on_that_line() -> None:
    diff = (CORPUS / "files/rails_add_not_null_and_index.diff").read_text()
    lines = read_input(diff, "postgres").text.split("\n")
    assert len(lines) == len(diff.split("\n"))
    assert lines[10] == "ALTER TABLE public.orders ADD COLUMN channel character varying NOT NULL;"
    assert diff.split("\n")[10] == "+    channel character varying NOT NULL"
    assert lines[22] == "CREATE INDEX index_orders_on_channel ON public.orders USING btree (channel);"
    assert sum(1 for line in lines if line.strip()) == 2  # unchanged statements are left out


def test_changed_and_removed_columns_become_alter_type_and_drop_column() -> None:
    diff = (CORPUS / "files/rails_change_type_and_remove.diff").read_text()
    statements = [line for line in read_input(diff, "postgres").text.split("\n") if line.strip()]
    assert statements == [
        "ALTER TABLE public.orders DROP COLUMN legacy_state;",
        "ALTER TABLE public.orders ALTER COLUMN total_cents TYPE bigint;",
    ]


def test_a_removed_sql_comment_line_does_not_end_the_hunk() -> None:
    # "--- Name: ..." is a removed "-- Name: ..." comment, not the next file's header.
    diff = (CORPUS / "files/rails_drop_table_and_fk.diff").read_text()
    assert "--- Name: legacy_carts" in diff
    report = lint_sql(diff, "postgres")
    assert [
        (f.rule, f.statement_index, f.line) for f in report.findings if f.severity is Severity.WARNING
    ] == [
        ("drop-table", 0, 12),
        ("constraint-without-not-valid", 1, 31),
    ]


def test_findings_from_a_dump_are_warnings_and_say_why() -> None:
    diff = (CORPUS / "files/rails_add_not_null_and_index.diff").read_text()
    report = lint_sql(diff, "postgres")
    index = next(f for f in report.findings if f.rule == "create-index-non-concurrent")
    assert index.severity is Severity.WARNING
    assert "schema dump" in index.message
    assert not report.has_errors
    plain = lint_sql(
        "CREATE INDEX index_orders_on_channel ON public.orders USING btree (channel);", "postgres"
    )
    assert plain.has_errors


def test_a_hunk_opening_mid_statement_is_refused_with_its_position() -> None:
    diff = (
        "--- a/db/structure.sql\n+++ b/db/structure.sql\n@@ -10,3 +10,4 @@ CREATE SEQUENCE public.x_seq\n"
        "     INCREMENT BY 1\n+    NO MINVALUE\n     CACHE 1;\n \n"
    )
    with pytest.raises(UnparsableSqlError) as refused:
        lint_sql(diff, "postgres")
    assert refused.value.line == 4
    assert "--function-context" in refused.value.reason


def test_schema_migrations_rows_in_a_hunk_are_bookkeeping_not_schema() -> None:
    diff = (
        '--- a/db/structure.sql\n+++ b/db/structure.sql\n@@ -1,3 +1,4 @@ INSERT INTO "schema_migrations" (version) VALUES\n'
        "+('20240601120000'),\n ('20240520090000'),\n ('20240515083000'),\n ('20240510101500');\n"
    )
    assert lint_sql(diff, "postgres").findings == []


def test_only_sql_files_of_a_diff_are_read() -> None:
    diff = (
        "diff --git a/app/models/user.rb b/app/models/user.rb\n--- a/app/models/user.rb\n+++ b/app/models/user.rb\n"
        "@@ -1,1 +1,2 @@\n class User\n+  DROP TABLE users;\n"
    )
    report = lint_sql(diff, "postgres")
    assert (report.statements, report.findings) == (0, [])
