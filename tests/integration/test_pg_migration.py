"""End to end on the real PostgreSQL primary and its streaming replica, with the application writing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import asyncpg
import pytest

from adapters.postgres.workload import BAND_EXPRESSION, AccountsWriter, create_accounts
from orchestrator.domain.errors import IllegalTransitionError
from orchestrator.domain.plan import Stage
from orchestrator.domain.states import RunStatus
from tests.support.pg import (
    build_service,
    connect,
    fresh_database,
    settle,
    table_checksum,
    table_shape,
    wait_for_replica,
)

pytestmark = pytest.mark.integration


def spec(**settings: Any) -> dict[str, Any]:
    return {
        "name": "accounts-band",
        "target": "app",
        "settings": settings,
        "operations": [
            {"add_column": {"table": "accounts", "column": {"name": "band", "type": "text"}}},
            {"create_index": {"table": "accounts", "name": "accounts_email_idx", "columns": ["email"]}},
            {
                "backfill": {
                    "table": "accounts",
                    "column": "band",
                    "expression": BAND_EXPRESSION,
                    "batch_size": 500,
                }
            },
            {"drop_column": {"table": "accounts", "column": "legacy_status"}},
        ],
    }


async def column_names(dsn: str) -> list[str]:
    async with connect(dsn) as conn:
        rows = await conn.fetch(
            "SELECT attname FROM pg_attribute WHERE attrelid = 'accounts'::regclass AND attnum > 0 "
            "AND NOT attisdropped ORDER BY attnum"
        )
    return [row["attname"] for row in rows]


async def index_validity(dsn: str, name: str) -> bool | None:
    async with connect(dsn) as conn:
        value = await conn.fetchval(
            "SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass($1)", name
        )
    return None if value is None else bool(value)


async def wrong_bands(dsn: str) -> int:
    async with connect(dsn) as conn:
        return int(
            await conn.fetchval(
                f"SELECT count(*) FROM accounts WHERE band IS DISTINCT FROM ({BAND_EXPRESSION})"
            )
        )


async def test_every_stage_with_a_concurrent_writer_and_the_replica_in_step(tmp_path: Path) -> None:
    async with fresh_database() as pair:
        async with connect(pair.primary) as conn:
            await create_accounts(conn, rows=20_000)
        writer = AccountsWriter(pair.primary)
        await writer.start()
        service = build_service(pair, tmp_path)
        await service.start()
        try:
            run = await service.create(spec())
            assert run.status is RunStatus.PENDING

            await service.start_stage(run.id, Stage.EXPAND)
            await settle(service, run.id, RunStatus.AWAITING_DEPLOY)
            assert "band" in await column_names(pair.primary)
            assert await index_validity(pair.primary, "accounts_email_idx") is True

            # The pipeline rolls out the version that writes `band` and forgets `legacy_status`.
            await writer.switch_to_new_version()
            await service.approve_deploy(run.id)
            assert await wrong_bands(pair.primary) > 0  # old rows: the backfill has work to do

            await service.start_stage(run.id, Stage.BACKFILL)
            run = await settle(service, run.id, RunStatus.AWAITING_CONTRACT)
            assert await wrong_bands(pair.primary) == 0
            assert run.progress.backfill is not None
            assert run.progress.backfill.rows_done >= 20_000

            await service.start_stage(run.id, Stage.CONTRACT)
            await settle(service, run.id, RunStatus.COMPLETED)
            assert "legacy_status" not in await column_names(pair.primary)
        finally:
            stats = await writer.stop()
            await service.stop()

        assert stats.statements > 100, "the writer must have been busy throughout"
        assert stats.errors == 0, stats.error_messages[:5]
        assert await wrong_bands(pair.primary) == 0

        await wait_for_replica(pair)
        async with connect(pair.primary) as primary, connect(pair.replica) as replica:
            assert await table_shape(replica, "accounts") == await table_shape(primary, "accounts")
            assert await table_checksum(replica, "accounts") == await table_checksum(primary, "accounts")


async def test_rollback_after_backfill_restores_the_original_schema_and_data(tmp_path: Path) -> None:
    async with fresh_database() as pair:
        async with connect(pair.primary) as conn:
            await create_accounts(conn, rows=3_000)
            original_shape = await table_shape(conn, "accounts")
            original_rows = await table_checksum(conn, "accounts")
        service = build_service(pair, tmp_path)
        await service.start()
        try:
            run = await service.create(spec())
            await service.start_stage(run.id, Stage.EXPAND)
            await settle(service, run.id, RunStatus.AWAITING_DEPLOY)
            await service.approve_deploy(run.id)
            await service.start_stage(run.id, Stage.BACKFILL)
            await settle(service, run.id, RunStatus.AWAITING_CONTRACT)
            assert "band" in await column_names(pair.primary)

            await service.rollback(run.id)
            await settle(service, run.id, RunStatus.ROLLED_BACK)

            # After the rollback the same spec can be planned again: the table is free.
            again = await service.create(spec())
            await service.start_stage(again.id, Stage.EXPAND)
            await settle(service, again.id, RunStatus.AWAITING_DEPLOY)
            await service.rollback(again.id)
            await settle(service, again.id, RunStatus.ROLLED_BACK)
        finally:
            await service.stop()
        async with connect(pair.primary) as conn:
            assert await table_shape(conn, "accounts") == original_shape
            assert await table_checksum(conn, "accounts") == original_rows
        await wait_for_replica(pair)
        async with connect(pair.replica) as replica:
            assert await table_shape(replica, "accounts") == original_shape


async def test_rollback_is_refused_once_a_column_was_dropped(tmp_path: Path) -> None:
    async with fresh_database() as pair:
        async with connect(pair.primary) as conn:
            await create_accounts(conn, rows=100)
        service = build_service(pair, tmp_path)
        await service.start()
        try:
            run = await service.create(spec())
            for stage, settled in (
                (Stage.EXPAND, RunStatus.AWAITING_DEPLOY),
                (None, RunStatus.AWAITING_BACKFILL),
                (Stage.BACKFILL, RunStatus.AWAITING_CONTRACT),
                (Stage.CONTRACT, RunStatus.COMPLETED),
            ):
                if stage is None:
                    await service.approve_deploy(run.id)
                else:
                    await service.start_stage(run.id, stage)
                await settle(service, run.id, settled)
            with pytest.raises(IllegalTransitionError) as refused:
                await service.rollback(run.id)
            assert refused.value.current == "completed"
        finally:
            await service.stop()


async def test_a_failed_concurrent_index_is_dropped_and_the_retry_builds_a_valid_one(tmp_path: Path) -> None:
    async with fresh_database() as pair:
        async with connect(pair.primary) as conn:
            await create_accounts(conn, rows=2_000)
        unique = {
            "name": "accounts-unique-email",
            "target": "app",
            "operations": [
                {
                    "create_index": {
                        "table": "accounts",
                        "name": "accounts_email_key",
                        "columns": ["email"],
                        "unique": True,
                    }
                }
            ],
        }
        service = build_service(pair, tmp_path)
        await service.start()
        try:
            run = await service.create(unique)
            # Duplicates written after the preflight (which would have refused them) fail the build.
            async with connect(pair.primary) as conn:
                await conn.execute("UPDATE accounts SET email = 'dup@example.com' WHERE id IN (1, 2)")
            await service.start_stage(run.id, Stage.EXPAND)
            failed = await settle(service, run.id, RunStatus.FAILED)
            assert failed.error is not None and "UniqueViolation" in failed.error
            # The INVALID leftover of the failed build is gone, so nothing half-built lingers.
            assert await index_validity(pair.primary, "accounts_email_key") is None

            async with connect(pair.primary) as conn:
                await conn.execute("UPDATE accounts SET email = 'fixed@example.com' WHERE id = 2")
                # Leave an INVALID index behind as a crash mid-build would, to prove the retry replaces it.
                await conn.execute("UPDATE accounts SET email = 'dup2@example.com' WHERE id IN (3, 4)")
                with pytest.raises(asyncpg.UniqueViolationError):
                    await conn.execute(
                        "CREATE UNIQUE INDEX CONCURRENTLY accounts_email_key ON accounts (email)"
                    )
                await conn.execute("UPDATE accounts SET email = 'fixed2@example.com' WHERE id = 4")
            assert await index_validity(pair.primary, "accounts_email_key") is False

            await service.start_stage(run.id, Stage.EXPAND)  # the retry of the failed stage
            await settle(service, run.id, RunStatus.AWAITING_DEPLOY)
            assert await index_validity(pair.primary, "accounts_email_key") is True
        finally:
            await service.stop()
