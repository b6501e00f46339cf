"""End to end on the real MariaDB primary and its GTID replica, with the application writing."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from adapters.mysql.target import MysqlTarget
from adapters.mysql.workload import BAND_EXPRESSION, AccountsWriter, create_accounts
from orchestrator.domain.errors import IllegalTransitionError
from orchestrator.domain.plan import BackfillWork, Stage
from orchestrator.domain.run import EventType
from orchestrator.domain.states import RunStatus
from orchestrator.ports import KeyColumn
from tests.support.mysql import (
    MysqlPair,
    Session,
    build_service,
    eventually,
    fresh_database,
    query,
    scalar,
    settle,
    table_checksum,
    table_shape,
    wait_for_replica,
)

pytestmark = pytest.mark.integration

LOCK_TIMEOUT = 1.0  # MySQL counts lock waits in whole seconds
# Scheduling noise on a loaded two-core machine; the point is that nobody waits seconds.
MARGIN = 0.5


def spec(**settings: Any) -> dict[str, Any]:
    return {
        "name": "accounts-band",
        "target": "app",
        "settings": settings,
        "operations": [
            {"add_column": {"table": "accounts", "column": {"name": "band", "type": "varchar(8)"}}},
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


async def column_names(dsn: str, table: str = "accounts") -> list[str]:
    rows = await query(
        dsn,
        "SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() "
        "AND TABLE_NAME = %s ORDER BY ORDINAL_POSITION",
        (table,),
    )
    return [str(row[0]) for row in rows]


async def index_columns(dsn: str, name: str, table: str = "accounts") -> list[str]:
    rows = await query(
        dsn,
        "SELECT COLUMN_NAME FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() "
        "AND TABLE_NAME = %s AND INDEX_NAME = %s ORDER BY SEQ_IN_INDEX",
        (table, name),
    )
    return [str(row[0]) for row in rows]


async def differing(dsn: str, table: str, column: str, expression: str) -> int:
    return int(await scalar(dsn, f"SELECT COUNT(*) FROM {table} WHERE NOT ({column} <=> ({expression}))"))


async def verified_mismatches(dsn: str, work: BackfillWork, batch: int = 700) -> tuple[int, int]:
    """Walk the whole table with verify_chunk: (rows looked at, rows whose column differs)."""
    target = MysqlTarget(dsn)
    try:
        key = await target.backfill_key(work)
        after: list[Any] | None = None
        rows = mismatches = 0
        while True:
            result = await target.verify_chunk(work, key, after, batch)
            if result.high_water is None:
                return rows, mismatches
            rows += result.rows_scanned
            mismatches += result.mismatches
            after = result.high_water
    finally:
        await target.close()


def stored_events(state_dir: Path) -> list[dict[str, Any]]:
    """The persisted event log, read straight from the store's SQLite file after the service stopped."""
    with sqlite3.connect(state_dir / "state.db") as db:
        rows = db.execute("SELECT type, data FROM events ORDER BY id").fetchall()
    return [{"type": row[0], "data": json.loads(row[1])} for row in rows]


async def assert_replica_in_step(pair: MysqlPair, table: str = "accounts") -> None:
    await wait_for_replica(pair)
    assert await table_shape(pair.replica, table) == await table_shape(pair.primary, table)
    assert await table_checksum(pair.replica, table) == await table_checksum(pair.primary, table)


BAND_WORK = BackfillWork(
    table="accounts", column="band", expression=BAND_EXPRESSION, batch_size=500, pause_ms=0
)


async def test_every_stage_with_a_concurrent_writer_and_the_replica_in_step(tmp_path: Path) -> None:
    async with fresh_database() as pair:
        await create_accounts(pair.primary, rows=20_000)
        writer = AccountsWriter(pair.primary)
        await writer.start()
        service = build_service(pair, tmp_path)
        await service.start()
        try:
            run = await service.create(spec())
            assert run.status is RunStatus.PENDING
            assert run.engine == "mysql"

            await service.start_stage(run.id, Stage.EXPAND)
            await settle(service, run.id, RunStatus.AWAITING_DEPLOY)
            assert "band" in await column_names(pair.primary)
            assert await index_columns(pair.primary, "accounts_email_idx") == ["email"]

            # The pipeline rolls out the version that writes `band` and forgets `legacy_status`.
            await writer.switch_to_new_version()
            await service.approve_deploy(run.id)
            assert await differing(pair.primary, "accounts", "band", BAND_EXPRESSION) > 0

            await service.start_stage(run.id, Stage.BACKFILL)
            run = await settle(service, run.id, RunStatus.AWAITING_CONTRACT)
            assert await differing(pair.primary, "accounts", "band", BAND_EXPRESSION) == 0
            events = await service.list_events(run.id)
            assert any(event.type is EventType.BACKFILL_VERIFIED for event in events)
            assert run.progress.backfill is not None
            assert run.progress.backfill.rows_done >= 19_000  # the writer deletes some as it goes

            await service.start_stage(run.id, Stage.CONTRACT)
            await settle(service, run.id, RunStatus.COMPLETED)
            assert "legacy_status" not in await column_names(pair.primary)
        finally:
            stats = await writer.stop()
            await service.stop()

        assert stats.statements > 100, "the writer must have been busy throughout"
        assert stats.inserts and stats.updates and stats.deletes
        assert stats.errors == 0, stats.error_messages[:5]
        rows, mismatches = await verified_mismatches(pair.primary, BAND_WORK)
        assert mismatches == 0
        assert rows == await scalar(pair.primary, "SELECT COUNT(*) FROM accounts")
        await assert_replica_in_step(pair)


async def test_rollback_after_backfill_restores_the_original_schema_and_data(tmp_path: Path) -> None:
    async with fresh_database() as pair:
        await create_accounts(pair.primary, rows=3_000)
        original_shape = await table_shape(pair.primary, "accounts")
        original_rows = await table_checksum(pair.primary, "accounts")
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
            assert await differing(pair.primary, "accounts", "band", BAND_EXPRESSION) == 0

            await service.rollback(run.id)
            await settle(service, run.id, RunStatus.ROLLED_BACK)

            # After the rollback the same spec can be planned and expanded again: the table is free.
            again = await service.create(spec())
            await service.start_stage(again.id, Stage.EXPAND)
            await settle(service, again.id, RunStatus.AWAITING_DEPLOY)
            await service.rollback(again.id)
            await settle(service, again.id, RunStatus.ROLLED_BACK)
        finally:
            await service.stop()
        assert await table_shape(pair.primary, "accounts") == original_shape
        assert await table_checksum(pair.primary, "accounts") == original_rows
        await wait_for_replica(pair)
        assert await table_shape(pair.replica, "accounts") == original_shape
        assert await table_checksum(pair.replica, "accounts") == original_rows


async def test_rollback_is_refused_once_a_column_was_dropped(tmp_path: Path) -> None:
    async with fresh_database() as pair:
        await create_accounts(pair.primary, rows=100)
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


async def test_ddl_waits_at_most_lock_wait_timeout_per_attempt_and_never_stalls_the_writer(
    tmp_path: Path,
) -> None:
    async with fresh_database() as pair:
        await create_accounts(pair.primary, rows=2_000)
        lock_spec = {
            "name": "accounts-band",
            "target": "app",
            "settings": {"lock_timeout_ms": int(LOCK_TIMEOUT * 1000), "ddl_attempts": 50},
            "operations": [
                {"add_column": {"table": "accounts", "column": {"name": "band", "type": "varchar(8)"}}}
            ],
        }
        service = build_service(pair, tmp_path)
        await service.start()
        writer = AccountsWriter(pair.primary)
        blocker = await Session.open(pair.primary)
        try:
            # A long reader: its open transaction holds a shared metadata lock on the table, which the
            # ALTER's exclusive one must wait for, and application writes queue behind that wait.
            await blocker.execute("START TRANSACTION")
            await blocker.execute("SELECT COUNT(*) FROM accounts")
            await writer.start()
            try:
                run = await service.create(lock_spec)
                await service.start_stage(run.id, Stage.EXPAND)

                async def retried_twice() -> bool:
                    events = await service.list_events(run.id)
                    return sum(event.type is EventType.STEP_RETRY for event in events) >= 2

                await eventually(retried_twice, what="two lock-timeout retries")
                assert (await service.get(run.id)).status is RunStatus.EXPANDING
                assert "band" not in await column_names(pair.primary)
                await blocker.execute("COMMIT")
                await settle(service, run.id, RunStatus.AWAITING_DEPLOY)
            finally:
                stats = await writer.stop()
                await service.stop()
        finally:
            await blocker.close()

        retries = [event for event in stored_events(tmp_path) if event["type"] == EventType.STEP_RETRY]
        assert len(retries) >= 2
        for retry in retries:
            assert LOCK_TIMEOUT * 0.9 <= retry["data"]["waited_seconds"] <= LOCK_TIMEOUT + MARGIN
        assert stats.errors == 0, stats.error_messages[:5]
        assert stats.statements > 50
        assert stats.worst_latency <= LOCK_TIMEOUT + MARGIN, f"writer waited {stats.worst_latency:.3f} s"
        # ... and its writes did queue behind the waiting ALTER: that wait is what the bound is for.
        assert stats.worst_latency >= LOCK_TIMEOUT / 2
        assert "band" in await column_names(pair.primary)
        await assert_replica_in_step(pair)


KEYED_TABLES = {
    # A composite key of an integer and a string, with awkward strings among the keys.
    "ledger": (
        """
        CREATE TABLE ledger (
            tenant_id INT NOT NULL, code VARCHAR(32) NOT NULL, amount INT NOT NULL, label VARCHAR(64),
            PRIMARY KEY (tenant_id, code)
        ) DEFAULT CHARSET=utf8mb4
        """,
        "INSERT INTO ledger (tenant_id, code, amount) "
        "SELECT seq % 7, CONCAT(IF(seq % 2, 'c', 'C'), seq), seq FROM seq_1_to_3000",
        "INSERT INTO ledger (tenant_id, code, amount) VALUES "
        "(3, '', 1), (3, 'o''brien', 2), (3, 'back\\\\slash', 3), (3, 'Ärger', 4), (3, 'per%cent', 5)",
        "label",
        "CONCAT(code, ':', amount)",
    ),
    "docs_char": (
        "CREATE TABLE docs_char (id CHAR(36) NOT NULL PRIMARY KEY, n INT NOT NULL, tag VARCHAR(16))",
        "INSERT INTO docs_char (id, n) SELECT UUID(), seq FROM seq_1_to_2500",
        None,
        "tag",
        "CONCAT(LEFT(id, 8), '-', n % 10)",
    ),
    # No primary key: InnoDB clusters on the unique NOT NULL index, and so does the backfill (the
    # nullable unique index beside it could skip rows).
    "tags": (
        """
        CREATE TABLE tags (
            code VARCHAR(20) NOT NULL, alias VARCHAR(20) NULL, n INT NOT NULL, label VARCHAR(20),
            UNIQUE KEY tags_alias_key (alias), UNIQUE KEY tags_code_key (code)
        )
        """,
        "INSERT INTO tags (code, alias, n) SELECT CONCAT('t', seq), IF(seq % 3, NULL, seq), seq "
        "FROM seq_1_to_1500",
        None,
        "label",
        "UPPER(code)",
    ),
    "docs_binary": (
        "CREATE TABLE docs_binary (id BINARY(16) NOT NULL PRIMARY KEY, n INT NOT NULL, tag VARCHAR(16))",
        "INSERT INTO docs_binary (id, n) SELECT UNHEX(REPLACE(UUID(), '-', '')), seq FROM seq_1_to_2500",
        None,
        "tag",
        "CONCAT('n', n % 13)",
    ),
}


async def test_composite_and_uuid_keys_are_backfilled_in_chunks(tmp_path: Path) -> None:
    async with fresh_database() as pair:
        for create, seed, extra, _, _ in KEYED_TABLES.values():
            for sql in (create, seed, extra):
                if sql:
                    await query(pair.primary, sql)
        backfills = {
            "name": "keys",
            "target": "app",
            "operations": [
                {
                    "backfill": {
                        "table": table,
                        "column": column,
                        "expression": expression,
                        "batch_size": 97,
                        "adaptive": False,
                    }
                }
                for table, (_, _, _, column, expression) in KEYED_TABLES.items()
            ],
        }
        service = build_service(pair, tmp_path)
        await service.start()
        try:
            run = await service.create(backfills)
            await service.start_stage(run.id, Stage.EXPAND)
            await settle(service, run.id, RunStatus.AWAITING_DEPLOY)
            await service.approve_deploy(run.id)
            await service.start_stage(run.id, Stage.BACKFILL)
            await settle(service, run.id, RunStatus.AWAITING_CONTRACT)
        finally:
            await service.stop()

        for table, (_, _, _, column, expression) in KEYED_TABLES.items():
            total = int(await scalar(pair.primary, f"SELECT COUNT(*) FROM {table}"))
            assert await differing(pair.primary, table, column, expression) == 0, table
            assert await scalar(pair.primary, f"SELECT COUNT(*) FROM {table} WHERE {column} IS NULL") == 0
            work = BackfillWork(table=table, column=column, expression=expression, batch_size=97, pause_ms=0)
            assert await verified_mismatches(pair.primary, work, batch=89) == (total, 0), table
        assert (
            await scalar(pair.primary, "SELECT label FROM ledger WHERE tenant_id = 3 AND code = ''") == ":1"
        )
        await assert_replica_in_step(pair, "ledger")
        await assert_replica_in_step(pair, "docs_binary")


async def test_chunks_skip_rows_already_right_and_verify_reports_sample_keys() -> None:
    async with fresh_database() as pair:
        await create_accounts(pair.primary, rows=1_000)
        await query(pair.primary, "ALTER TABLE accounts ADD COLUMN band VARCHAR(8)")
        await query(pair.primary, f"UPDATE accounts SET band = ({BAND_EXPRESSION}) WHERE id > 10")
        target = MysqlTarget(pair.primary)
        try:
            key = await target.backfill_key(BAND_WORK)
            assert key == [KeyColumn("id", "bigint")]
            before = await target.verify_chunk(BAND_WORK, key, None, 100)
            assert (before.rows_scanned, before.mismatches, before.high_water) == (100, 10, ["100"])
            assert before.sample_keys == [["1"], ["2"], ["3"], ["4"], ["5"]]

            first = await target.backfill_chunk(BAND_WORK, key, None, 100)
            assert (first.high_water, first.rows_scanned, first.rows_updated) == (["100"], 100, 10)
            replay = await target.backfill_chunk(BAND_WORK, key, None, 100)
            assert (replay.high_water, replay.rows_scanned, replay.rows_updated) == (["100"], 100, 0)

            last = await target.backfill_chunk(BAND_WORK, key, ["950"], 100)
            assert (last.high_water, last.rows_scanned, last.rows_updated) == (["1000"], 50, 0)
            done = await target.backfill_chunk(BAND_WORK, key, ["1000"], 100)
            assert (done.high_water, done.rows_scanned) == (None, 0)
            after = await target.verify_chunk(BAND_WORK, key, None, 1_000)
            assert (after.rows_scanned, after.mismatches, after.sample_keys) == (1_000, 0, [])
        finally:
            await target.close()


async def test_a_table_that_refuses_instant_fails_the_step_with_a_copy_tool_hint(tmp_path: Path) -> None:
    async with fresh_database() as pair:
        await create_accounts(pair.primary, rows=100)
        await query(pair.primary, "ALTER TABLE accounts ADD FULLTEXT INDEX accounts_email_ft (email)")
        shape = await table_shape(pair.primary, "accounts")
        service = build_service(pair, tmp_path)
        await service.start()
        try:
            run = await service.create(
                {
                    "name": "fulltext",
                    "target": "app",
                    "operations": [
                        {"add_column": {"table": "accounts", "column": {"name": "band", "type": "text"}}}
                    ],
                }
            )
            await service.start_stage(run.id, Stage.EXPAND)
            failed = await settle(service, run.id, RunStatus.FAILED)
        finally:
            await service.stop()
        assert failed.error is not None
        assert "1845" in failed.error and "copy tool" in failed.error, failed.error
        assert await table_shape(pair.primary, "accounts") == shape


async def test_a_replayed_ddl_step_is_a_no_op(tmp_path: Path) -> None:
    async with fresh_database() as pair:
        await create_accounts(pair.primary, rows=100)
        service = build_service(pair, tmp_path)
        await service.start()
        try:
            run = await service.create(spec())
        finally:
            await service.stop()
        target = MysqlTarget(pair.primary)
        try:
            for step in run.plan.stage(Stage.EXPAND).steps:
                assert not (await target.execute_step(step, lock_timeout_ms=1000)).lock_timed_out
                again = await target.execute_step(step, lock_timeout_ms=1000)  # after a crash, say
                assert again == again.__class__(lock_timed_out=False, seconds=0.0)
                assert step.rollback is not None
                for _ in range(2):
                    await target.execute_step(step.rollback, lock_timeout_ms=1000)
        finally:
            await target.close()
        assert await column_names(pair.primary) == ["id", "email", "score", "legacy_status", "created_at"]
        assert await index_columns(pair.primary, "accounts_email_idx") == []
