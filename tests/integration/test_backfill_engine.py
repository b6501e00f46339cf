"""The backfill engine on 1,000,000-row tables: uuid and composite keys, a writer, tuning, kill -9."""

from __future__ import annotations

import random
import signal
from pathlib import Path
from typing import Any

import httpx
import pytest

from orchestrator.domain.errors import SpecError
from orchestrator.domain.plan import Stage
from orchestrator.domain.states import RunStatus
from tests.support.pg import build_service, connect, eventually, fresh_database, settle
from tests.support.service import free_port, run_key, service_process
from tests.support.writer import SqlWriter, Statement

pytestmark = pytest.mark.integration

ROWS = 1_000_000


def cents_spec(table: str) -> dict[str, Any]:
    return {
        "name": f"{table}-cents",
        "target": "app",
        "operations": [
            {"add_column": {"table": table, "column": {"name": "amount_cents", "type": "bigint"}}},
            {"backfill": {"table": table, "column": "amount_cents", "expression": "amount * 100"}},
        ],
    }


def cents(amount: int) -> list[int]:
    """What the new application version writes: the amount and the value the backfill derives."""
    return [amount, amount * 100]


async def wrong_rows(dsn: str, table: str) -> int:
    async with connect(dsn) as conn:
        return int(
            await conn.fetchval(
                f"SELECT count(*) FROM {table} WHERE amount_cents IS DISTINCT FROM amount * 100"
            )
        )


async def test_uuid_keys_with_a_writer_a_run_time_chunk_change_and_a_kill_9(tmp_path: Path) -> None:
    async with fresh_database() as pair:
        async with connect(pair.primary) as conn:
            await conn.execute(
                "CREATE TABLE payments (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), amount integer NOT NULL)"
            )
            await conn.execute(
                "INSERT INTO payments (amount) SELECT g % 10000 FROM generate_series(1, $1::int) AS g", ROWS
            )
            await conn.execute("ANALYZE payments")
            sample_ids = [row["id"] for row in await conn.fetch("SELECT id FROM payments LIMIT 2000")]

        # The new application version, writing amount_cents itself from the moment the column exists.
        writer = SqlWriter(
            pair.primary,
            [
                Statement(
                    "INSERT INTO payments (amount, amount_cents) VALUES ($1, $2)",
                    lambda rng: cents(rng.randrange(10000)),
                ),
                Statement(
                    "UPDATE payments SET amount = $2, amount_cents = $3 WHERE id = $1",
                    lambda rng: [rng.choice(sample_ids), *cents(rng.randrange(10000))],
                ),
                Statement("DELETE FROM payments WHERE id = $1", lambda rng: [rng.choice(sample_ids)]),
            ],
        )
        try:
            events = await kill_and_resume(pair.primary, tmp_path, writer)
        finally:
            stats = await writer.stop()

        assert any("resumed_from" in event["data"] for event in events)
        assert any(event["type"] == "backfill_verified" for event in events)
        assert await wrong_rows(pair.primary, "payments") == 0
        assert stats.errors == 0, stats.messages[:5]
        assert stats.statements > 100


async def kill_and_resume(dsn: str, tmp_path: Path, writer: SqlWriter) -> list[dict[str, Any]]:
    """Drive the backfill through a service process, retune it, kill -9 it, restart it to the end."""
    port = free_port()
    async with (
        service_process(dsn, tmp_path, port) as process,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60) as api,
    ):
        created = await api.post(
            "/v1/migrations", json=cents_spec("payments"), headers={"Idempotency-Key": run_key()}
        )
        run_id = created.json()["migration"]["id"]
        await api.post(f"/v1/migrations/{run_id}/stages/expand")
        assert (await api.get(f"/v1/migrations/{run_id}/wait", params={"until": "awaiting_deploy"})).json()[
            "reached"
        ]
        await writer.start()
        await api.post(f"/v1/migrations/{run_id}/deploy-gate")
        await api.post(f"/v1/migrations/{run_id}/stages/backfill")

        async def backfill() -> dict[str, Any]:
            progress = (await api.get(f"/v1/migrations/{run_id}")).json()["progress"]
            return dict(progress.get("backfill") or {})

        async def started() -> bool:
            return bool((await backfill()).get("rows_done", 0) > 0)

        await eventually(started, what="the first chunks")
        tuned = await api.patch(f"/v1/migrations/{run_id}/backfill", json={"batch_size": 777})
        assert tuned.status_code == 200, tuned.text
        assert tuned.json()["tuning"]["batch_size"] == 777

        async def fixed_size_applied() -> bool:
            return bool((await backfill()).get("chunk_size") == 777)

        await eventually(fixed_size_applied, what="the new chunk size to apply")
        await api.patch(f"/v1/migrations/{run_id}/backfill", json={"batch_size": None})

        async def adaptive_again_and_a_third_done() -> bool:
            state = await backfill()
            return bool(state.get("chunk_size") != 777 and state.get("rows_done", 0) >= ROWS // 3)

        await eventually(adaptive_again_and_a_third_done, timeout=120, what="adaptive chunks, a third done")
        process.send_signal(signal.SIGKILL)
        assert process.wait(timeout=30) == -signal.SIGKILL

    async with connect(dsn) as conn:
        assert await conn.fetchval("SELECT count(*) FROM payments WHERE amount_cents IS NULL") > 0

    async with (
        service_process(dsn, tmp_path, port),
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=200) as api,
    ):
        waited = await api.get(
            f"/v1/migrations/{run_id}/wait", params={"until": "awaiting_contract", "timeout": 180}
        )
        assert waited.json()["reached"], waited.text
        events: list[dict[str, Any]] = (await api.get(f"/v1/migrations/{run_id}/events")).json()["events"]
    return events


async def test_composite_keys_with_a_writer(tmp_path: Path) -> None:
    async with fresh_database() as pair:
        async with connect(pair.primary) as conn:
            await conn.execute(
                """
                CREATE TABLE ledger (
                    account_id integer NOT NULL,
                    entry text NOT NULL,
                    amount integer NOT NULL,
                    PRIMARY KEY (account_id, entry)
                )
                """
            )
            await conn.execute(
                """
                INSERT INTO ledger (account_id, entry, amount)
                SELECT g % 997, lpad(g::text, 9, '0'), g % 5000 FROM generate_series(1, $1::int) AS g
                """,
                ROWS,
            )
            await conn.execute("ANALYZE ledger")

        def existing(rng: random.Random) -> list[Any]:
            g = rng.randrange(1, ROWS + 1)
            return [g % 997, f"{g:09d}"]

        writer = SqlWriter(
            pair.primary,
            [
                Statement(
                    "INSERT INTO ledger (account_id, entry, amount, amount_cents) VALUES ($1, $2, $3, $4)"
                    " ON CONFLICT DO NOTHING",
                    lambda rng: [
                        rng.randrange(997),
                        f"new-{rng.randrange(10**9)}",
                        *cents(rng.randrange(5000)),
                    ],
                ),
                Statement(
                    "UPDATE ledger SET amount = $3, amount_cents = $4 WHERE account_id = $1 AND entry = $2",
                    lambda rng: [*existing(rng), *cents(rng.randrange(5000))],
                ),
                Statement(
                    "DELETE FROM ledger WHERE account_id = $1 AND entry = $2", lambda rng: existing(rng)[:2]
                ),
            ],
        )
        service = build_service(pair, tmp_path)
        await service.start()
        try:
            run = await service.create(cents_spec("ledger"))
            await service.start_stage(run.id, Stage.EXPAND)
            await settle(service, run.id, RunStatus.AWAITING_DEPLOY)
            await writer.start()
            await service.approve_deploy(run.id)
            await service.start_stage(run.id, Stage.BACKFILL)
            done = await settle(service, run.id, RunStatus.AWAITING_CONTRACT, timeout=300)
        finally:
            stats = await writer.stop()
            await service.stop()
        assert done.progress.backfill is not None
        assert done.progress.backfill.rows_done >= ROWS * 0.99
        assert await wrong_rows(pair.primary, "ledger") == 0
        assert stats.errors == 0, stats.messages[:5]
        assert stats.statements > 100


async def test_a_unique_not_null_key_stands_in_for_a_missing_primary_key(tmp_path: Path) -> None:
    async with fresh_database() as pair:
        async with connect(pair.primary) as conn:
            await conn.execute(
                """
                CREATE TABLE keyless (code text NOT NULL, amount integer NOT NULL, note text);
                CREATE UNIQUE INDEX keyless_note ON keyless (note);          -- nullable: unusable
                CREATE UNIQUE INDEX keyless_code ON keyless (code);          -- NOT NULL: the walk key
                CREATE TABLE hopeless (note text, amount integer NOT NULL);
                CREATE UNIQUE INDEX hopeless_note ON hopeless (note);
                INSERT INTO keyless SELECT 'c' || g, g, NULL FROM generate_series(1, 5000) AS g;
                """
            )
        service = build_service(pair, tmp_path)
        await service.start()
        try:
            with pytest.raises(SpecError) as refused:
                await service.create(cents_spec("hopeless"))
            assert refused.value.problems[0][0] == "operations.1.backfill.table"
            assert "unique index over NOT NULL columns" in refused.value.problems[0][1]

            run = await service.create(cents_spec("keyless"))
            await service.start_stage(run.id, Stage.EXPAND)
            await settle(service, run.id, RunStatus.AWAITING_DEPLOY)
            await service.approve_deploy(run.id)
            await service.start_stage(run.id, Stage.BACKFILL)
            await settle(service, run.id, RunStatus.AWAITING_CONTRACT)
        finally:
            await service.stop()
        assert await wrong_rows(pair.primary, "keyless") == 0
