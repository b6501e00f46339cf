"""DDL under lock_timeout: it queues at most lock_timeout per attempt, backs off, and gets through."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from adapters.postgres.workload import AccountsWriter, create_accounts
from orchestrator.domain.plan import Stage
from orchestrator.domain.run import EventType
from orchestrator.domain.states import RunStatus
from tests.support.pg import build_service, connect, eventually, fresh_database, settle

pytestmark = pytest.mark.integration

LOCK_TIMEOUT = 0.5
# Scheduling noise on a loaded two-core machine; the point is that nobody waits seconds.
MARGIN = 0.5


async def test_ddl_waits_at_most_lock_timeout_per_attempt_and_never_stalls_the_writer(tmp_path: Path) -> None:
    async with fresh_database() as pair:
        async with connect(pair.primary) as conn:
            await create_accounts(conn, rows=2_000)
        spec = {
            "name": "accounts-band",
            "target": "app",
            "settings": {"lock_timeout_ms": int(LOCK_TIMEOUT * 1000), "ddl_attempts": 50},
            "operations": [{"add_column": {"table": "accounts", "column": {"name": "band", "type": "text"}}}],
        }
        service = build_service(pair, tmp_path)
        await service.start()
        writer = AccountsWriter(pair.primary)
        async with connect(pair.primary) as blocker:
            # A long reader: its ACCESS SHARE lock conflicts with ALTER TABLE's ACCESS EXCLUSIVE.
            blocker_tx = blocker.transaction()
            await blocker_tx.start()
            await blocker.fetchval("SELECT count(*) FROM accounts")
            await writer.start()
            try:
                run = await service.create(spec)
                await service.start_stage(run.id, Stage.EXPAND)

                async def retried_twice() -> bool:
                    events = await service.list_events(run.id)
                    return sum(event.type is EventType.STEP_RETRY for event in events) >= 2

                await eventually(retried_twice, what="two lock-timeout retries")
                assert (await service.get(run.id)).status is RunStatus.EXPANDING
                await blocker_tx.commit()
                await settle(service, run.id, RunStatus.AWAITING_DEPLOY)
            finally:
                stats = await writer.stop()
                await service.stop()

        retries = [event for event in stored_events(tmp_path) if event["type"] == EventType.STEP_RETRY]
        assert len(retries) >= 2
        for retry in retries:
            assert LOCK_TIMEOUT * 0.9 <= retry["data"]["waited_seconds"] <= LOCK_TIMEOUT + MARGIN
        assert stats.errors == 0, stats.error_messages[:5]
        assert stats.statements > 50
        assert stats.worst_latency <= LOCK_TIMEOUT + MARGIN, f"writer waited {stats.worst_latency:.3f} s"
        async with connect(pair.primary) as conn:
            assert await conn.fetchval(
                "SELECT count(*) FROM pg_attribute WHERE attrelid = 'accounts'::regclass AND attname = 'band'"
            )


def stored_events(state_dir: Path) -> list[dict[str, Any]]:
    """The persisted event log, read straight from the store's SQLite file after the service stopped."""
    with sqlite3.connect(state_dir / "state.db") as db:
        rows = db.execute("SELECT type, data FROM events ORDER BY id").fetchall()
    return [{"type": row[0], "data": json.loads(row[1])} for row in rows]
