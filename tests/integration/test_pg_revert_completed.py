"""Reverting a completed migration: contract kept what it dropped (an archived column, a table set
aside), so a rollback after completion brings it back, but only while no other migration is
changing the same tables."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.domain.errors import ConflictError, IllegalTransitionError
from orchestrator.domain.plan import Stage
from orchestrator.domain.states import RunStatus
from orchestrator.service import MigrationService
from tests.support.pg import build_service, connect, fresh_database, settle
from tests.support.roundtrip import base_schema, catalog

pytestmark = pytest.mark.integration


async def complete(service: MigrationService, name: str, *operations: dict[str, object]) -> str:
    run = await service.create({"name": name, "target": "app", "operations": list(operations)})
    await service.start_stage(run.id, Stage.EXPAND)
    await settle(service, run.id, RunStatus.AWAITING_DEPLOY)
    await service.approve_deploy(run.id)
    await service.start_stage(run.id, Stage.BACKFILL)
    await settle(service, run.id, RunStatus.AWAITING_CONTRACT)
    await service.start_stage(run.id, Stage.CONTRACT)
    await settle(service, run.id, RunStatus.COMPLETED)
    return run.id


async def test_an_archived_column_and_a_set_aside_table_come_back_after_completion(tmp_path: Path) -> None:
    async with fresh_database() as pair:
        async with connect(pair.primary) as conn:
            await conn.execute(base_schema(2_000))
            await conn.execute("CREATE TABLE scratch AS SELECT generate_series(1, 50) AS id")
            original = await catalog(conn)
        service = build_service(pair, tmp_path)
        await service.start()
        try:
            run_id = await complete(
                service,
                "drop-note",
                {"drop_column": {"table": "items", "column": "note", "archive": True}},
                {"drop_table": {"table": "scratch"}},
            )
            async with connect(pair.primary) as conn:
                assert await conn.fetchval("SELECT to_regclass('scratch')") is None
                columns = await conn.fetch(
                    "SELECT attname FROM pg_attribute WHERE attrelid = 'items'::regclass"
                )
                assert "note" not in {row["attname"] for row in columns}

            # Another migration on items holds its tables: the revert must wait for it.
            other = await service.create(
                {
                    "name": "other",
                    "target": "app",
                    "operations": [
                        {"add_column": {"table": "items", "column": {"name": "x", "type": "int"}}}
                    ],
                }
            )
            with pytest.raises(ConflictError, match="other"):
                await service.rollback(run_id)
            assert (await service.get(run_id)).status is RunStatus.COMPLETED
            await service.cancel(other.id)

            await service.rollback(run_id)
            await settle(service, run_id, RunStatus.ROLLED_BACK)
            async with connect(pair.primary) as conn:
                different = await conn.fetchval(
                    "SELECT count(*) FROM items i JOIN items_mirror m USING (id) "
                    "WHERE i.note IS DISTINCT FROM m.note"
                )
                assert different == 0, "the archived values must be back"
                assert await conn.fetchval("SELECT count(*) FROM scratch") == 50
                after = await catalog(conn)
            # Same objects as before; a re-added column comes back last in column order.
            assert {k: sorted(v) for k, v in after.items()} == {k: sorted(v) for k, v in original.items()}
        finally:
            await service.stop()


async def test_a_completed_drop_without_an_archive_cannot_be_reverted(tmp_path: Path) -> None:
    async with fresh_database() as pair:
        async with connect(pair.primary) as conn:
            await conn.execute(base_schema(200))
        service = build_service(pair, tmp_path)
        await service.start()
        try:
            run_id = await complete(
                service, "drop-note", {"drop_column": {"table": "items", "column": "note"}}
            )
            with pytest.raises(IllegalTransitionError, match="discards its values"):
                await service.rollback(run_id)
            assert (await service.get(run_id)).status is RunStatus.COMPLETED
        finally:
            await service.stop()
