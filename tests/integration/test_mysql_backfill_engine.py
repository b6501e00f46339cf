"""The backfill engine on 1,000,000-row MariaDB tables: uuid and composite keys, a writer, tuning, kill -9.

The MySQL side of issue 4's acceptance, alongside test_backfill_engine.py (PostgreSQL). Both tables are
seeded with MariaDB's Sequence engine; the application's new version writes the new column itself from
the moment it exists, and the engine brings every older row in line. At the end every row is checked
with one query, the writer has not failed a single statement, and the GTID replica holds the same rows.
"""

from __future__ import annotations

import random
import signal
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from orchestrator.domain.plan import Stage
from orchestrator.domain.run import EventType
from orchestrator.domain.states import RunStatus
from tests.support.mysql import (
    MysqlPair,
    SqlWriter,
    Statement,
    WriterStats,
    build_service,
    eventually,
    fresh_database,
    query,
    scalar,
    settle,
    table_checksum,
    wait_for_replica,
)
from tests.support.service import free_port, service_process

pytestmark = pytest.mark.integration

ROWS = 1_000_000
FIXED_CHUNK = 777
EXPRESSION = "amount * 100"


def cents_spec(table: str) -> dict[str, Any]:
    return {
        "name": f"{table}-cents",
        "target": "app",
        "operations": [
            {"add_column": {"table": table, "column": {"name": "amount_cents", "type": "bigint"}}},
            {"backfill": {"table": table, "column": "amount_cents", "expression": EXPRESSION}},
        ],
    }


def cents(amount: int) -> list[int]:
    """What the new application version writes: the amount and the value the backfill derives."""
    return [amount, amount * 100]


def fresh_key() -> dict[str, str]:
    return {"Idempotency-Key": str(uuid.uuid4())}


async def wrong_rows(dsn: str, table: str) -> int:
    """Rows whose amount_cents is not what the expression gives (NULL included), in one query."""
    return int(await scalar(dsn, f"SELECT COUNT(*) FROM {table} WHERE NOT (amount_cents <=> ({EXPRESSION}))"))


async def assert_writer_and_rows(pair: MysqlPair, table: str, stats: WriterStats) -> None:
    """The writer never failed, wrote all three kinds, and every row it did not delete is there."""
    assert stats.errors == 0, stats.messages[:5]
    assert stats.statements > 100, "the writer must have been busy throughout"
    assert set(stats.by_kind) == {"insert", "update", "delete"}, stats.by_kind
    # An update finds its row (bar the odd one deleted first, or given the amount it already had).
    assert stats.rows_affected["update"] >= 0.95 * stats.by_kind["update"], stats
    expected = ROWS + stats.rows_affected["insert"] - stats.rows_affected["delete"]
    assert await scalar(pair.primary, f"SELECT COUNT(*) FROM {table}") == expected
    assert await wrong_rows(pair.primary, table) == 0


async def assert_replica_matches(pair: MysqlPair, table: str) -> None:
    await wait_for_replica(pair)  # MASTER_GTID_WAIT for the primary's binlog position
    assert await table_checksum(pair.replica, table) == await table_checksum(pair.primary, table)


async def test_uuid_keys_with_a_writer_a_run_time_chunk_change_and_a_kill_9(tmp_path: Path) -> None:
    async with fresh_database() as pair:
        await query(
            pair.primary,
            "CREATE TABLE payments (id CHAR(36) NOT NULL PRIMARY KEY, amount INT NOT NULL) "
            "ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
        )
        await query(
            pair.primary,
            f"INSERT INTO payments (id, amount) SELECT UUID(), seq % 10000 FROM seq_1_to_{ROWS}",
        )
        await query(pair.primary, "ANALYZE TABLE payments")
        # Rows spread over the whole key range, some behind the backfill and some ahead of it: one set
        # the application updates, another it deletes (so that updates keep finding their rows).
        sampled = await query(
            pair.primary, "SELECT id, amount % 100 FROM payments WHERE amount % 100 IN (7, 8)"
        )
        updated_ids = [str(id_) for id_, group in sampled if group == 7]
        deleted_ids = [str(id_) for id_, group in sampled if group == 8]
        assert len(updated_ids) == len(deleted_ids) == ROWS // 100

        # The new application version, writing amount_cents itself from the moment the column exists.
        writer = SqlWriter(
            pair.primary,
            [
                Statement(
                    "insert",
                    "INSERT INTO payments (id, amount, amount_cents) VALUES (%s, %s, %s)",
                    lambda rng: [
                        str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                        *cents(rng.randrange(10000)),
                    ],
                ),
                Statement(
                    "update",
                    "UPDATE payments SET amount = %s, amount_cents = %s WHERE id = %s",
                    lambda rng: [*cents(rng.randrange(10000)), rng.choice(updated_ids)],
                ),
                Statement(
                    "delete", "DELETE FROM payments WHERE id = %s", lambda rng: [rng.choice(deleted_ids)]
                ),
            ],
        )
        try:
            events = await kill_and_resume(pair, tmp_path, writer)
        finally:
            stats = await writer.stop()

        resumed = [event for event in events if "resumed_from" in event["data"]]
        assert len(resumed) == 1, "the restarted service resumes the backfill once, from its checkpoint"
        assert resumed[0]["data"]["rows_done"] >= ROWS // 3
        assert resumed[0]["data"]["resumed_from"], "a checkpointed high-water mark, not the start"
        verified = [event for event in events if event["type"] == EventType.BACKFILL_VERIFIED]
        assert len(verified) == 1
        assert verified[0]["data"]["rows"] >= ROWS * 0.99
        await assert_writer_and_rows(pair, "payments", stats)
        await assert_replica_matches(pair, "payments")


async def kill_and_resume(pair: MysqlPair, tmp_path: Path, writer: SqlWriter) -> list[dict[str, Any]]:
    """Drive the backfill through a service process, retune it, kill -9 it, restart it to the end."""
    port = free_port()
    async with (
        service_process(pair.primary, tmp_path, port) as process,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60) as api,
    ):
        created = await api.post("/v1/migrations", json=cents_spec("payments"), headers=fresh_key())
        assert created.status_code == 201, created.text
        run_id = created.json()["migration"]["id"]
        assert created.json()["migration"]["engine"] == "mysql"
        expanding = await api.post(f"/v1/migrations/{run_id}/stages/expand", headers=fresh_key())
        assert expanding.status_code == 202, expanding.text
        waited = await api.get(f"/v1/migrations/{run_id}/wait", params={"until": "awaiting_deploy"})
        assert waited.json()["reached"], waited.text
        await writer.start()
        approved = await api.post(f"/v1/migrations/{run_id}/deploy-gate", headers=fresh_key())
        assert approved.status_code == 200, approved.text
        backfilling = await api.post(f"/v1/migrations/{run_id}/stages/backfill", headers=fresh_key())
        assert backfilling.status_code == 202, backfilling.text

        async def backfill() -> dict[str, Any]:
            progress = (await api.get(f"/v1/migrations/{run_id}")).json()["progress"]
            return dict(progress.get("backfill") or {})

        async def started() -> bool:
            return bool((await backfill()).get("rows_done", 0) > 0)

        await eventually(started, what="the first chunks")
        tuned = await api.patch(f"/v1/migrations/{run_id}/backfill", json={"batch_size": FIXED_CHUNK})
        assert tuned.status_code == 200, tuned.text
        assert tuned.json()["tuning"]["batch_size"] == FIXED_CHUNK

        async def fixed_size_applied() -> bool:
            return bool((await backfill()).get("chunk_size") == FIXED_CHUNK)

        await eventually(fixed_size_applied, what="the fixed chunk size to apply")
        assert (await backfill())["rows_done"] < ROWS // 3, "the fixed size must apply before the kill"
        adaptive = await api.patch(f"/v1/migrations/{run_id}/backfill", json={"batch_size": None})
        assert adaptive.status_code == 200, adaptive.text
        assert adaptive.json()["tuning"]["batch_size"] is None

        async def adaptive_again_and_a_third_done() -> bool:
            state = await backfill()
            return bool(state.get("chunk_size") != FIXED_CHUNK and state.get("rows_done", 0) >= ROWS // 3)

        await eventually(adaptive_again_and_a_third_done, timeout=120, what="adaptive chunks, a third done")
        process.send_signal(signal.SIGKILL)
        assert process.wait(timeout=30) == -signal.SIGKILL

    left = int(await scalar(pair.primary, "SELECT COUNT(*) FROM payments WHERE amount_cents IS NULL"))
    assert 0 < left < ROWS, "the kill must land in the middle of the backfill"

    async with (
        service_process(pair.primary, tmp_path, port),
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
        await query(
            pair.primary,
            """
            CREATE TABLE ledger (
                account_id INT NOT NULL,
                entry VARCHAR(40) NOT NULL,
                amount INT NOT NULL,
                PRIMARY KEY (account_id, entry)
            ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4
            """,
        )
        # In key order, so InnoDB appends instead of splitting pages.
        await query(
            pair.primary,
            "INSERT INTO ledger (account_id, entry, amount) "
            f"SELECT seq % 997, LPAD(seq, 9, '0'), seq % 5000 FROM seq_1_to_{ROWS} "
            "ORDER BY seq % 997, LPAD(seq, 9, '0')",
        )
        await query(pair.primary, "ANALYZE TABLE ledger")

        def existing(rng: random.Random) -> list[Any]:
            g = rng.randrange(1, ROWS + 1)
            return [g % 997, f"{g:09d}"]

        writer = SqlWriter(
            pair.primary,
            [
                Statement(
                    "insert",
                    "INSERT INTO ledger (account_id, entry, amount, amount_cents) VALUES (%s, %s, %s, %s)",
                    lambda rng: [rng.randrange(997), f"new-{uuid.uuid4()}", *cents(rng.randrange(5000))],
                ),
                Statement(
                    "update",
                    "UPDATE ledger SET amount = %s, amount_cents = %s WHERE account_id = %s AND entry = %s",
                    lambda rng: [*cents(rng.randrange(5000)), *existing(rng)],
                ),
                Statement(
                    "delete",
                    "DELETE FROM ledger WHERE account_id = %s AND entry = %s",
                    lambda rng: existing(rng),
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
            events = await service.list_events(run.id)
        finally:
            stats = await writer.stop()
            await service.stop()
        assert done.progress.backfill is not None
        assert done.progress.backfill.rows_done >= ROWS * 0.99
        assert any(event.type is EventType.BACKFILL_VERIFIED for event in events)
        await assert_writer_and_rows(pair, "ledger", stats)
        await assert_replica_matches(pair, "ledger")
