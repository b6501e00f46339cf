"""`osctl plan --target-dsn`: the live preflight on the real PostgreSQL primary. Each data check fails on
a table seeded with the bad rows and passes once they are fixed; blocking transactions, sizes and a
measured read rate feed the plan document and its duration estimates."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from adapters.postgres.read_rate import PgReadRateProbe
from adapters.postgres.target import PostgresTarget
from adapters.postgres.workload import BAND_EXPRESSION, create_accounts
from orchestrator.domain.plan import Stage
from orchestrator.domain.spec import parse_spec
from orchestrator.engine.planner import plan_migration
from orchestrator.lint.live import WRITE_COST, LivePreflight, run_live_preflight, with_estimates
from tests.support.pg import PgPair, connect, fresh_database

pytestmark = pytest.mark.integration

OSCTL = str(Path(sys.executable).with_name("osctl"))


def spec(*operations: dict[str, Any], **preflight: Any) -> dict[str, Any]:
    return {"name": "live", "settings": {"preflight": preflight}, "operations": list(operations)}


async def preflight(pair: PgPair, body: dict[str, Any]) -> tuple[LivePreflight, Any]:
    target, probe = PostgresTarget(pair.primary), PgReadRateProbe(pair.primary)
    try:
        return await run_live_preflight(parse_spec(body), target, probe, "test-target")
    finally:
        await probe.close()
        await target.close()


CHECKS = [
    pytest.param(
        {
            "add_column": {
                "table": "accounts",
                "column": {"name": "status", "type": "text", "nullable": False, "backfill": "legacy_status"},
            }
        },
        "UPDATE accounts SET legacy_status = NULL WHERE id <= 3",
        "UPDATE accounts SET legacy_status = 'active' WHERE legacy_status IS NULL",
        "3 rows of accounts would be NULL",
        id="nulls-before-not-null",
    ),
    pytest.param(
        {
            "create_index": {
                "table": "accounts",
                "name": "accounts_email_key",
                "columns": ["email"],
                "unique": True,
            }
        },
        "UPDATE accounts SET email = 'same@example.com' WHERE id IN (4, 5)",
        "UPDATE accounts SET email = 'user' || id || '@example.com'",
        "1 duplicate group in accounts",
        id="duplicates-before-unique",
    ),
    pytest.param(
        {
            "add_foreign_key": {
                "table": "accounts",
                "name": "accounts_org_fk",
                "columns": ["org_id"],
                "references": {"table": "orgs"},
            }
        },
        "UPDATE accounts SET org_id = 999 WHERE id IN (1, 2)",
        "UPDATE accounts SET org_id = 1 WHERE org_id = 999",
        "2 rows of accounts with (org_id) have no match in orgs (id)",
        id="orphans-before-foreign-key",
    ),
    pytest.param(
        {
            "add_column": {
                "table": "accounts",
                "column": {"name": "status_code", "type": "integer", "backfill": "legacy_status"},
            }
        },
        "UPDATE accounts SET legacy_status = 'x' || id WHERE id <= 2",
        "UPDATE accounts SET legacy_status = id::text",
        "fail the conversion of (legacy_status) to integer",
        id="values-failing-a-cast",
    ),
]


@pytest.mark.parametrize(("operation", "breaks", "fixes", "expected"), CHECKS)
async def test_each_data_check_fails_on_bad_rows_and_passes_once_fixed(
    operation: dict[str, Any], breaks: str, fixes: str, expected: str
) -> None:
    async with fresh_database() as pair:
        async with connect(pair.primary) as conn:
            await create_accounts(conn, rows=200)
            await conn.execute("CREATE TABLE orgs (id bigint PRIMARY KEY)")
            await conn.execute("INSERT INTO orgs VALUES (1)")
            await conn.execute("ALTER TABLE accounts ADD COLUMN org_id bigint")
            await conn.execute(
                "UPDATE accounts SET legacy_status = id::text" if "cast" in expected else "SELECT 1"
            )
            await conn.execute(breaks)
        refused, _ = await preflight(pair, spec(operation))
        assert not refused.passed
        (failed,) = [check for check in refused.checks if not check.passed]
        assert expected in failed.message, failed.message
        assert any(expected in message for _, message in refused.problems)

        async with connect(pair.primary) as conn:
            await conn.execute(fixes)
        passed, _ = await preflight(pair, spec(operation))
        assert passed.passed, passed.problems
        assert passed.checks and all(check.passed for check in passed.checks)


async def test_a_transaction_holding_a_lock_on_the_table_refuses_the_plan() -> None:
    async with fresh_database() as pair:
        async with connect(pair.primary) as conn:
            await create_accounts(conn, rows=100)
        operation = {"add_column": {"table": "accounts", "column": {"name": "band", "type": "text"}}}
        async with connect(pair.primary) as blocker:
            transaction = blocker.transaction()
            await transaction.start()
            await blocker.fetchval("SELECT count(*) FROM accounts")  # ACCESS SHARE on accounts, held
            refused, _ = await preflight(pair, spec(operation, long_transaction_seconds=0))
            await transaction.rollback()
        assert not refused.passed
        (message,) = [message for _, message in refused.problems]
        assert f"pid {blocker.get_server_pid()}" in message and "holds a lock on accounts" in message
        passed, _ = await preflight(pair, spec(operation, long_transaction_seconds=0))
        assert passed.passed, passed.problems


async def test_sizes_and_a_measured_read_rate_give_each_stage_its_estimate() -> None:
    async with fresh_database() as pair:
        async with connect(pair.primary) as conn:
            await create_accounts(conn, rows=20_000)
        body = spec(
            {"add_column": {"table": "accounts", "column": {"name": "band", "type": "text"}}},
            {"create_index": {"table": "accounts", "name": "accounts_email_idx", "columns": ["email"]}},
            {"backfill": {"table": "accounts", "column": "band", "expression": BAND_EXPRESSION}},
        )
        live, tables = await preflight(pair, body)
        size = live.sizes["accounts"]
        async with connect(pair.primary) as conn:
            assert size.estimated_rows == await conn.fetchval("SELECT count(*) FROM accounts")
            assert size.total_bytes == await conn.fetchval("SELECT pg_total_relation_size('accounts')")
        rate = live.rates["accounts"]
        assert rate.rows == 5_000 and rate.seconds > 0 and rate.bytes > 0

        estimated = with_estimates(live, plan_migration(parse_spec(body), "postgres", tables))
        stages = {estimate.stage: estimate for estimate in estimated.estimates}
        backfill = stages[Stage.BACKFILL].seconds
        assert backfill == pytest.approx(size.estimated_rows * WRITE_COST / rate.rows_per_second)
        expand = stages[Stage.EXPAND].seconds
        assert expand is not None and expand > 0
        assert stages[Stage.DEPLOY_GATE].seconds is None
        assert any("concurrent index build" in basis for basis in stages[Stage.EXPAND].basis)


def osctl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([OSCTL, *args], capture_output=True, text=True, timeout=120, check=False)


async def test_plan_from_sql_with_a_target_shows_the_checks_and_durations(tmp_path: Path) -> None:
    migration = tmp_path / "0042_unique_email.sql"
    migration.write_text(
        "CREATE UNIQUE INDEX accounts_email_key ON accounts (email);\n"
        "ALTER TABLE accounts DROP COLUMN legacy_status;\n"
    )
    async with fresh_database() as pair:
        async with connect(pair.primary) as conn:
            await create_accounts(conn, rows=1_000)
            await conn.execute("UPDATE accounts SET email = 'twice@example.com' WHERE id IN (7, 8)")
        plan = ("plan", "--from-sql", str(migration), "--target-dsn", pair.primary)

        refused = await asyncio.to_thread(osctl, *plan, "--format", "markdown")
        assert refused.returncode == 1, refused.stderr
        document = refused.stdout
        assert "## Risk: high" in document and "**Failed**" in document
        assert "1 duplicate group in accounts, e.g. (email)=('twice@example.com') x2" in document
        assert "Measured on postgresql://postgres@" in document
        assert "read rate on accounts: 1000 rows" in document
        assert "table accounts:" in document and "about 1000 rows" in document

        async with connect(pair.primary) as conn:
            await conn.execute("UPDATE accounts SET email = 'user8@example.com' WHERE id = 8")
        text = await asyncio.to_thread(osctl, *plan)
        assert text.returncode == 0, text.stdout + text.stderr
        assert "Live preflight on postgresql://postgres@" in text.stdout and ": passed" in text.stdout
        assert "passed operations.0.create_index.columns: no duplicate (email) in accounts" in text.stdout
        assert "estimated time:" in text.stdout
