"""kill -9 of `osctl serve` in the middle of a rollback runbook: the restarted service finishes it,
resuming at the runbook step it was in and, inside it, at the first database step not yet undone.

The rollback is held at a known point by a session that keeps a lock the third inverse step needs:
the first two inverses are done (and checkpointed), the third retries with backoff, and the kill
lands there. Nothing else is waited for by time."""

from __future__ import annotations

import signal
from collections import Counter
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from tests.support.pg import connect, eventually, fresh_database
from tests.support.roundtrip import OLD, MirroredPgWriter, base_schema, catalog, mirror_difference
from tests.support.service import free_port, run_key, service_process

pytestmark = pytest.mark.integration

SPEC: dict[str, Any] = {
    "name": "rb-crash",
    "target": "app",
    "settings": {"lock_timeout_ms": 200, "ddl_attempts": 200},
    "operations": [
        {"add_column": {"table": "owners", "column": {"name": "tag", "type": "text"}}},
        {"add_column": {"table": "items", "column": {"name": "band", "type": "text"}}},
        {"create_index": {"table": "items", "name": "items_band_idx", "columns": ["band"]}},
    ],
}
DROP_TAG = "rollback.expand.00.add_column.tag"
FIRST_INVERSES = ("rollback.expand.02.create_index.items_band_idx", "rollback.expand.01.add_column.band")


async def events_of(api: httpx.AsyncClient, run_id: str) -> list[dict[str, Any]]:
    return list((await api.get(f"/v1/migrations/{run_id}/events")).json()["events"])


async def test_kill_9_mid_rollback_the_restarted_service_finishes_the_runbook_where_it_was(
    tmp_path: Path,
) -> None:
    async with fresh_database() as pair:
        async with connect(pair.primary) as conn:
            await conn.execute(base_schema(1_000))
            original = await catalog(conn)
        writer = MirroredPgWriter(pair.primary)
        await writer.start()
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        blocker = await asyncpg.connect(pair.primary)
        try:
            async with (
                service_process(pair.primary, tmp_path, port) as process,
                httpx.AsyncClient(base_url=base) as api,
            ):
                created = await api.post("/v1/migrations", json=SPEC, headers={"Idempotency-Key": run_key()})
                assert created.status_code == 201, created.text
                run_id = created.json()["migration"]["id"]
                await api.post(f"/v1/migrations/{run_id}/stages/expand")
                waited = await api.get(f"/v1/migrations/{run_id}/wait", params={"until": "awaiting_deploy"})
                assert waited.json()["reached"], waited.text
                # An idle transaction that read `owners` keeps the lock dropping owners.tag needs.
                await blocker.execute("BEGIN")
                await blocker.fetch("SELECT * FROM owners LIMIT 1")
                plan = (await api.get(f"/v1/migrations/{run_id}/runbook")).json()
                assert plan["runbook"] == "postgres-expand" and not plan["confirmation_required"]
                started = await api.post(f"/v1/migrations/{run_id}/rollback")
                assert started.status_code == 202, started.text

                async def retrying_the_third_inverse() -> bool:
                    return any(
                        e["type"] == "step_retry" and e["step_id"] == DROP_TAG
                        for e in await events_of(api, run_id)
                    )

                await eventually(retrying_the_third_inverse, timeout=60, what="the blocked inverse to retry")
                before = await events_of(api, run_id)
                process.send_signal(signal.SIGKILL)
                assert process.wait(timeout=30) == -signal.SIGKILL

            async with connect(pair.primary) as conn:
                columns = await conn.fetch(
                    "SELECT table_name || '.' || column_name AS c FROM information_schema.columns "
                    "WHERE column_name IN ('tag', 'band')"
                )
            assert [row["c"] for row in columns] == ["owners.tag"], (
                "killed after two inverses, before the third"
            )
            await blocker.close()  # the lock goes: the restarted service can finish

            async with service_process(pair.primary, tmp_path, port), httpx.AsyncClient(base_url=base) as api:
                waited = await api.get(
                    f"/v1/migrations/{run_id}/wait",
                    params={"until": "rolled_back", "timeout": 120},
                    timeout=150,
                )
                assert waited.json()["reached"], waited.text
                after = await events_of(api, run_id)
        finally:
            if not blocker.is_closed():
                await blocker.close()
            stats = await writer.stop()

        assert stats.errors == [], stats.errors[:5]
        async with connect(pair.primary) as conn:
            assert await catalog(conn) == original
            table_sum, mirror_sum = await mirror_difference(conn, OLD)
            assert table_sum == mirror_sum

        steps_started = Counter(e["step_id"] for e in after if e["type"] == "step_started")
        for inverse in FIRST_INVERSES:
            assert steps_started[inverse] == 1, f"{inverse} was undone once, before the kill, and not again"
        assert steps_started[DROP_TAG] == 2, "the blocked inverse ran again after the restart"
        runbook_steps = Counter(
            e["data"]["kind"]
            for e in after
            if e["type"] == "runbook" and e["data"].get("phase") == "step_started"
        )
        # Steps finished before the kill are not run again; the one it was in (reverse_ddl) resumes.
        assert runbook_steps == {
            "pause_migration": 1,
            "notify": 2,
            "drop_copy_artifacts": 1,
            "reverse_ddl": 2,
            "wait_for_replicas": 1,
        }, runbook_steps
        resumed_at = [e for e in after[len(before) :] if e["type"] == "runbook"]
        assert (
            resumed_at[0]["data"]["kind"] == "reverse_ddl"
            and resumed_at[0]["data"]["phase"] == "step_started"
        )
        assert after[-1]["type"] == "transition" and after[-1]["data"]["to"] == "rolled_back"
