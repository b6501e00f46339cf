"""Lock safety on the real PostgreSQL primary: a step blocked to the end names who blocked it, strong-
lock statements run under statement_timeout, and a failed unique build leaves no INVALID index."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import asyncpg
import pytest

from adapters.postgres.target import PostgresTarget
from adapters.postgres.workload import create_accounts
from orchestrator.domain.errors import StepFailedError
from orchestrator.domain.plan import Stage, Step, StepAction
from orchestrator.domain.run import EventType
from orchestrator.domain.states import RunStatus
from orchestrator.engine.runner import RetryPolicy
from tests.support.pg import build_service, connect, fresh_database, settle

pytestmark = pytest.mark.integration

FAST_RETRY = RetryPolicy(base_seconds=0.05, max_seconds=0.1)
# The blocker's query carries a password-looking literal: it must reach nobody unmasked.
BLOCKER_QUERY = "SELECT count(*) FROM accounts WHERE 'password=hunter2' IS NOT NULL"


def add_band(**settings: Any) -> dict[str, Any]:
    return {
        "name": "accounts-band",
        "target": "app",
        "settings": settings,
        "operations": [{"add_column": {"table": "accounts", "column": {"name": "band", "type": "text"}}}],
    }


async def test_exhausted_attempts_name_the_blocking_session(tmp_path: Path) -> None:
    async with fresh_database() as pair:
        async with connect(pair.primary) as conn:
            await create_accounts(conn, rows=200)
        service = build_service(pair, tmp_path, retry=FAST_RETRY)
        await service.start()
        try:
            run = await service.create(add_band(lock_timeout_ms=200, ddl_attempts=3))
            blocker = await asyncpg.connect(pair.primary, server_settings={"application_name": "report-job"})
            try:
                transaction = blocker.transaction()
                await transaction.start()
                await blocker.fetchval(BLOCKER_QUERY)  # ACCESS SHARE until the transaction ends
                blocker_pid = blocker.get_server_pid()
                await service.start_stage(run.id, Stage.EXPAND)
                failed = await settle(service, run.id, RunStatus.FAILED, timeout=30)
                events = await service.list_events(run.id)
                await transaction.rollback()
            finally:
                await blocker.close()
        finally:
            await service.stop()

        assert failed.error is not None
        assert "could not take its lock in 3 attempts" in failed.error
        assert f"pid {blocker_pid} (report-job) idle in transaction" in failed.error
        assert "SELECT count(*) FROM accounts" in failed.error
        assert "hunter2" not in failed.error and "password=***" in failed.error

        retries = [event for event in events if event.type is EventType.STEP_RETRY]
        assert len(retries) == 2
        for retry in retries:
            assert [blocker["pid"] for blocker in retry.data["blockers"]] == [blocker_pid]
        [step_failed] = [event for event in events if event.type is EventType.STEP_FAILED]
        [named] = step_failed.data["blockers"]
        assert named["pid"] == blocker_pid
        assert named["application_name"] == "report-job"
        assert named["state"] == "idle in transaction"
        assert named["transaction_seconds"] > 0
        assert "hunter2" not in str(step_failed.data)

        async with connect(pair.primary) as conn:  # nothing changed
            assert not await conn.fetchval(
                "SELECT count(*) FROM pg_attribute WHERE attrelid = 'accounts'::regclass AND attname = 'band'"
            )


def ddl_step(sql: str, *, action: StepAction = StepAction.DDL, index_name: str | None = None) -> Step:
    return Step(
        id="expand.00.raw.probe",
        stage=Stage.EXPAND,
        operation_index=0,
        action=action,
        description="probe",
        sql=sql,
        table="accounts",
        index_name=index_name,
        transactional=action is StepAction.DDL,
    )


async def test_a_strong_lock_statement_runs_under_statement_timeout() -> None:
    async with fresh_database() as pair:
        async with connect(pair.primary) as conn:
            await create_accounts(conn, rows=100)
        target = PostgresTarget(pair.primary)
        try:
            seen = ddl_step(
                "ALTER TABLE accounts ADD COLUMN probe text; "
                "CREATE TABLE seen AS SELECT current_setting('statement_timeout') AS st, "
                "current_setting('lock_timeout') AS lt"
            )
            attempt = await target.execute_step(seen, lock_timeout_ms=300, statement_timeout_ms=1500)
            assert not attempt.lock_timed_out
            # A statement that does not block writes (a copy into a new table) is not bounded.
            unbounded = ddl_step(
                "CREATE TABLE seen_unbounded AS SELECT current_setting('statement_timeout') AS st"
            )
            await target.execute_step(unbounded, lock_timeout_ms=300, statement_timeout_ms=1500)

            # Holding ACCESS EXCLUSIVE past the bound: cancelled, rolled back, and not retried.
            slow = ddl_step("ALTER TABLE accounts ADD COLUMN slow text; SELECT pg_sleep(5)")
            with pytest.raises(StepFailedError) as caught:
                await target.execute_step(slow, lock_timeout_ms=300, statement_timeout_ms=800)
            assert "statement_timeout of 800 ms" in str(caught.value)
        finally:
            await target.close()
        async with connect(pair.primary) as conn:
            row = await conn.fetchrow("SELECT st, lt FROM seen")
            assert row is not None
            assert (row["st"], row["lt"]) == ("1500ms", "300ms")
            columns = await conn.fetch(
                "SELECT attname FROM pg_attribute WHERE attrelid = 'accounts'::regclass AND attnum > 0"
            )
            names = {column["attname"] for column in columns}
            assert "probe" in names and "slow" not in names
            assert await conn.fetchval("SELECT st FROM seen_unbounded") == "0"


async def test_a_unique_build_that_fails_leaves_no_invalid_index_and_succeeds_once_fixed() -> None:
    async with fresh_database() as pair:
        async with connect(pair.primary) as conn:
            await create_accounts(conn, rows=100)
            await conn.execute("UPDATE accounts SET email = 'dup@example.com' WHERE id IN (3, 4)")
        build = ddl_step(
            "CREATE UNIQUE INDEX CONCURRENTLY accounts_email_key ON accounts (email)",
            action=StepAction.CREATE_INDEX_CONCURRENTLY,
            index_name="accounts_email_key",
        )
        target = PostgresTarget(pair.primary)
        try:
            with pytest.raises(StepFailedError) as caught:
                await target.execute_step(build, lock_timeout_ms=1000, statement_timeout_ms=5000)
            assert "UniqueViolation" in str(caught.value)
            async with connect(pair.primary) as conn:
                assert await conn.fetchval("SELECT to_regclass('accounts_email_key')") is None
                await conn.execute("UPDATE accounts SET email = 'fixed@example.com' WHERE id = 4")
            assert not (await target.execute_step(build, lock_timeout_ms=1000)).lock_timed_out
        finally:
            await target.close()
        async with connect(pair.primary) as conn:
            assert await conn.fetchval(
                "SELECT indisvalid AND indisunique FROM pg_index WHERE indexrelid = to_regclass('accounts_email_key')"
            )
