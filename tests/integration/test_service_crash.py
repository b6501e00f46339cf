"""kill -9 of the service in the middle of a backfill: the restarted service resumes from the checkpoint."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import httpx
import pytest

from adapters.postgres.workload import BAND_EXPRESSION, create_accounts
from tests.support.pg import connect, eventually, fresh_database
from tests.support.service import free_port, run_key, service_process

pytestmark = pytest.mark.integration

ROWS = 30_000


async def test_kill_9_mid_backfill_resumes_from_the_checkpoint_and_processes_no_row_twice(
    tmp_path: Path,
) -> None:
    async with fresh_database() as pair:
        async with connect(pair.primary) as conn:
            await create_accounts(conn, rows=ROWS)
        spec: dict[str, Any] = {
            "name": "accounts-band",
            "target": "app",
            "operations": [
                {"add_column": {"table": "accounts", "column": {"name": "band", "type": "text"}}},
                {
                    "backfill": {
                        "table": "accounts",
                        "column": "band",
                        "expression": BAND_EXPRESSION,
                        "batch_size": 300,
                        "pause_ms": 20,
                    }
                },
            ],
        }
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        async with (
            service_process(pair.primary, tmp_path, port) as process,
            httpx.AsyncClient(base_url=base) as api,
        ):
            created = await api.post("/v1/migrations", json=spec, headers={"Idempotency-Key": run_key()})
            assert created.status_code == 201, created.text
            run_id = created.json()["migration"]["id"]
            await api.post(f"/v1/migrations/{run_id}/stages/expand")
            waited = await api.get(f"/v1/migrations/{run_id}/wait", params={"until": "awaiting_deploy"})
            assert waited.json()["reached"], waited.text
            async with connect(pair.primary) as conn:
                # Every change of a row's band is recorded: a row processed wrongly twice shows twice.
                await conn.execute(
                    """
                    CREATE TABLE band_audit (id bigint NOT NULL);
                    CREATE FUNCTION record_band() RETURNS trigger LANGUAGE plpgsql AS
                      $$ BEGIN INSERT INTO band_audit VALUES (NEW.id); RETURN NEW; END $$;
                    CREATE TRIGGER band_changed AFTER UPDATE OF band ON accounts FOR EACH ROW
                      WHEN (OLD.band IS DISTINCT FROM NEW.band) EXECUTE FUNCTION record_band();
                    """
                )
            await api.post(f"/v1/migrations/{run_id}/deploy-gate")
            assert (await api.post(f"/v1/migrations/{run_id}/stages/backfill")).status_code == 202

            observed: dict[str, int] = {}

            async def a_fifth_done() -> bool:
                progress = (await api.get(f"/v1/migrations/{run_id}")).json()["progress"]
                observed["rows"] = (progress.get("backfill") or {}).get("rows_done", 0)
                return observed["rows"] >= ROWS // 5

            await eventually(a_fifth_done, what="a fifth of the backfill")
            process.send_signal(signal.SIGKILL)
            assert process.wait(timeout=30) == -signal.SIGKILL

        async with connect(pair.primary) as conn:
            left = await conn.fetchval("SELECT count(*) FROM accounts WHERE band IS NULL")
        assert 0 < left < ROWS, "the kill must land in the middle of the backfill"

        async with service_process(pair.primary, tmp_path, port), httpx.AsyncClient(base_url=base) as api:
            waited = await api.get(
                f"/v1/migrations/{run_id}/wait",
                params={"until": "awaiting_contract", "timeout": 120},
                timeout=150,
            )
            assert waited.json()["reached"], waited.text
            events = (await api.get(f"/v1/migrations/{run_id}/events")).json()["events"]

        resumed = [event for event in events if "resumed_from" in event["data"]]
        assert len(resumed) == 1, "the restarted service resumes the backfill once, from its checkpoint"
        assert resumed[0]["data"]["rows_done"] >= observed["rows"] > 0
        async with connect(pair.primary) as conn:
            wrong = await conn.fetchval(
                f"SELECT count(*) FROM accounts WHERE band IS DISTINCT FROM ({BAND_EXPRESSION})"
            )
            audit = await conn.fetchrow(
                "SELECT count(*) AS changes, count(DISTINCT id) AS rows FROM band_audit"
            )
        assert wrong == 0
        assert audit is not None
        assert audit["rows"] == ROWS
        assert audit["changes"] == ROWS, "some row was written twice"
