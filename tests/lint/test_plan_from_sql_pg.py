"""plan --from-sql end to end on the real PostgreSQL: SQL that would block writes is converted into a
spec whose plan runs through the service while the application keeps writing, and nothing it
writes fails."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.postgres.workload import AccountsWriter, create_accounts
from orchestrator.domain.plan import Stage, StepAction
from orchestrator.domain.states import RunStatus
from orchestrator.engine.planner import plan_migration
from orchestrator.lint import Severity, lint_sql
from orchestrator.lint.convert import Outcome, convert_sql
from tests.support.pg import build_service, connect, fresh_database, settle

pytestmark = pytest.mark.integration

MIGRATION = """\
-- 0042: look accounts up by email, and remember where they came from
BEGIN;
SET lock_timeout = '2s';
ALTER TABLE accounts ADD COLUMN signup_source text;
CREATE INDEX accounts_email_idx ON accounts (email);
COMMIT;
"""


async def index_state(dsn: str, name: str) -> tuple[bool, bool] | None:
    """(valid, ready) of an index, or None when it does not exist."""
    async with connect(dsn) as conn:
        row = await conn.fetchrow(
            "SELECT indisvalid, indisready FROM pg_index WHERE indexrelid = to_regclass($1)", name
        )
    return None if row is None else (bool(row["indisvalid"]), bool(row["indisready"]))


async def column_exists(dsn: str, table: str, column: str) -> bool:
    async with connect(dsn) as conn:
        found = await conn.fetchval(
            "SELECT count(*) FROM information_schema.columns WHERE table_name = $1 AND column_name = $2",
            table,
            column,
        )
    return bool(found)


async def test_converted_plan_builds_the_index_concurrently_while_the_application_writes(
    tmp_path: Path,
) -> None:
    sql_file = tmp_path / "0042_accounts_email.sql"
    sql_file.write_text(MIGRATION)

    # As written, the file would hold a SHARE lock on accounts for the whole index build.
    as_written = lint_sql(sql_file.read_text(), "postgres")
    assert [(f.rule, f.statement_index) for f in as_written.findings if f.severity is Severity.ERROR] == [
        ("create-index-non-concurrent", 3)
    ]

    conversion = convert_sql(sql_file.read_text(), str(sql_file))
    assert conversion.complete
    assert [note.outcome for note in conversion.notes] == [
        Outcome.SKIPPED,
        Outcome.SKIPPED,
        Outcome.CONVERTED,
        Outcome.CONVERTED,
        Outcome.SKIPPED,
    ]
    spec = conversion.spec
    assert spec is not None and spec.settings.lock_timeout_ms == 2000
    planned = plan_migration(spec).stage(Stage.EXPAND).steps
    assert [step.action for step in planned] == [StepAction.DDL, StepAction.CREATE_INDEX_CONCURRENTLY]

    async with fresh_database() as pair:
        async with connect(pair.primary) as conn:
            await create_accounts(conn, rows=50_000)
        writer = AccountsWriter(pair.primary)
        await writer.start()
        service = build_service(pair, tmp_path)
        await service.start()
        try:
            run = await service.create(spec, target_override="app")
            before_expand = writer.stats.statements
            await service.start_stage(run.id, Stage.EXPAND)
            await settle(service, run.id, RunStatus.AWAITING_DEPLOY)
            during_expand = writer.stats.statements - before_expand
            assert await index_state(pair.primary, "accounts_email_idx") == (True, True)
            assert await column_exists(pair.primary, "accounts", "signup_source")

            await service.approve_deploy(run.id)
            await settle(service, run.id, RunStatus.AWAITING_BACKFILL)
            await service.start_stage(run.id, Stage.BACKFILL)
            await settle(service, run.id, RunStatus.AWAITING_CONTRACT)
            await service.start_stage(run.id, Stage.CONTRACT)
            await settle(service, run.id, RunStatus.COMPLETED)
        finally:
            stats = await writer.stop()
            await service.stop()

    assert during_expand > 0, "the application must have been writing while the plan ran"
    assert stats.statements > 100
    assert stats.errors == 0, stats.error_messages[:5]
