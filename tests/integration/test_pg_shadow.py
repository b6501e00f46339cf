"""Shadow-table rewrites on the real PostgreSQL primary and its replica, with the application writing:
every change goes to the table and to an untouched mirror in one transaction, so after the rewrite (or
its rollback) the two must hold the same rows."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import asyncpg
import pytest

from adapters.postgres.target import PostgresTarget
from orchestrator.domain.errors import SpecError
from orchestrator.domain.operations import AlterColumn
from orchestrator.domain.plan import Stage
from orchestrator.domain.run import EventType, Run
from orchestrator.domain.states import RunStatus
from orchestrator.engine.planner import postgres as postgres_planners
from orchestrator.engine.planner.context import PlanContext
from orchestrator.engine.planner.postgres.shadow import plan_shadow
from orchestrator.service import MigrationService
from tests.support.pg import (
    PgPair,
    build_service,
    connect,
    fresh_database,
    settle,
    table_checksum,
    table_shape,
    wait_for_replica,
)
from tests.support.pg_mirror_writer import MirrorStats, PgMirroredWriter

pytestmark = pytest.mark.integration

LOCK_TIMEOUT_MS = 1000
# What the swap itself may add to lock_timeout: replaying the last few keys and renaming, on a 2-core
# machine shared with other work.
SWAP_MARGIN_SECONDS = 0.3


@pytest.fixture(autouse=True)
def alter_column_planner(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Until alter_column has its own planner (which calls plan_shadow), plan it with the shadow path."""
    if "alter_column" not in postgres_planners.PLANNERS:
        monkeypatch.setitem(postgres_planners.PLANNERS, "alter_column", plan_shadow)
    yield


def spec(**change: Any) -> dict[str, Any]:
    return {
        "name": "accounts-id-bigint",
        "target": "app",
        "settings": {"lock_timeout_ms": LOCK_TIMEOUT_MS},
        "operations": [{"alter_column": {"table": "accounts", "column": "id", "type": "bigint", **change}}],
    }


async def seed(conn: asyncpg.Connection, rows: int) -> None:
    await conn.execute(
        """
        CREATE TABLE accounts (
            id serial PRIMARY KEY,
            email text NOT NULL CONSTRAINT accounts_email_key UNIQUE,
            score integer CONSTRAINT accounts_score_check CHECK (score >= 0),
            note text,
            created_at timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    await conn.execute("CREATE INDEX accounts_score_idx ON accounts (score)")
    await conn.execute(
        "INSERT INTO accounts (email, score, note) "
        "SELECT 'user' || g || '@example.com', g % 100, md5(g::text) FROM generate_series(1, $1::int) AS g",
        rows,
    )
    await conn.execute("CREATE TABLE accounts_mirror (LIKE accounts INCLUDING DEFAULTS INCLUDING INDEXES)")
    await conn.execute("INSERT INTO accounts_mirror SELECT * FROM accounts")
    await conn.execute("ANALYZE accounts")
    await conn.execute("ANALYZE accounts_mirror")


def writer(pair: PgPair, **options: Any) -> PgMirroredWriter:
    return PgMirroredWriter(pair.primary, "accounts", "accounts_mirror", "accounts_id_seq", **options)


async def columns_of(conn: asyncpg.Connection) -> list[tuple[Any, ...]]:
    return cast(list[tuple[Any, ...]], (await table_shape(conn, "accounts"))["columns"])


async def leftovers(conn: asyncpg.Connection) -> list[str]:
    rows = await conn.fetch(
        "SELECT relname FROM pg_class WHERE relname LIKE '\\_osc\\_%' "
        "UNION ALL SELECT proname FROM pg_proc WHERE proname LIKE '\\_osc\\_%' "
        "UNION ALL SELECT tgname FROM pg_trigger WHERE tgname LIKE '\\_osc\\_%'"
    )
    return sorted(row[0] for row in rows)


async def catalog_facts(conn: asyncpg.Connection) -> dict[str, Any]:
    """What a swap must carry over besides the indexes: constraints and the serial's sequence."""
    constraints = await conn.fetch(
        "SELECT conname, contype::text, pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conrelid = 'accounts'::regclass ORDER BY conname"
    )
    sequence = await conn.fetchrow(
        "SELECT pg_get_serial_sequence('accounts', 'id') AS name, format_type(seqtypid, NULL) AS type "
        "FROM pg_sequence WHERE seqrelid = 'accounts_id_seq'::regclass"
    )
    assert sequence is not None
    return {"constraints": [tuple(row) for row in constraints], "sequence": tuple(sequence)}


async def assert_mirrored(pair: PgPair, stats: MirrorStats) -> None:
    """No writer statement failed, the table holds what the mirror holds, and the replica agrees."""
    assert stats.errors == [], stats.errors[:5]
    assert min(stats.count("insert"), stats.count("update"), stats.count("delete")) > 10, "writer idle"
    await wait_for_replica(pair)
    async with connect(pair.primary) as primary, connect(pair.replica) as replica:
        ours = await table_checksum(primary, "accounts")
        assert ours == await table_checksum(primary, "accounts_mirror")
        assert await table_checksum(replica, "accounts") == ours
        assert await table_shape(replica, "accounts") == await table_shape(primary, "accounts")


async def step_window(service: MigrationService, run: Run, suffix: str) -> tuple[float, float]:
    """Wall-clock start and end of the step whose id ends with `suffix`, from the run's events."""
    events = await service.list_events(run.id)
    started = [e for e in events if e.type is EventType.STEP_STARTED and (e.step_id or "").endswith(suffix)]
    finished = [e for e in events if e.type is EventType.STEP_FINISHED and (e.step_id or "").endswith(suffix)]
    assert started and finished, f"no events for a step ending with {suffix}"
    return started[-1].at.timestamp(), finished[-1].at.timestamp()


async def test_a_million_rows_rewritten_under_writes_with_a_swap_within_lock_timeout(tmp_path: Path) -> None:
    async with fresh_database() as pair:
        async with connect(pair.primary) as conn:
            await seed(conn, 1_000_000)
            before = await table_shape(conn, "accounts")
            facts_before = await catalog_facts(conn)
        application = writer(pair)
        await application.start()
        service = build_service(pair, tmp_path)
        await service.start()
        try:
            run = await service.create(spec(strategy="shadow"))
            await service.start_stage(run.id, Stage.EXPAND)
            await settle(service, run.id, RunStatus.AWAITING_DEPLOY)
            await service.approve_deploy(run.id)
            await service.start_stage(run.id, Stage.BACKFILL)
            run = await settle(service, run.id, RunStatus.AWAITING_CONTRACT, timeout=180)
            # Every row the copy met (the writer's deletes may outpace its inserts for a while).
            assert run.progress.backfill is not None and run.progress.backfill.rows_done >= 990_000
            swap_start, swap_end = await step_window(service, run, ".shadow_swap")
            await service.start_stage(run.id, Stage.CONTRACT)
            await settle(service, run.id, RunStatus.COMPLETED)
        finally:
            stats = await application.stop()
            await service.stop()

        around_swap = stats.during(swap_start, swap_end)
        assert around_swap, "the writer must have been writing while the swap ran"
        worst = max(sample.seconds for sample in around_swap)
        assert worst <= LOCK_TIMEOUT_MS / 1000 + SWAP_MARGIN_SECONDS, f"writer waited {worst:.3f} s"
        await assert_mirrored(pair, stats)
        async with connect(pair.primary) as conn:
            after = await table_shape(conn, "accounts")
            facts_after = await catalog_facts(conn)
            assert await leftovers(conn) == []
        # The same table, indexes and constraints under the same names, with id now bigint; the
        # serial's sequence follows the column and widens with it.
        assert cast(list[Any], after["columns"])[0] == ("id", "bigint", "NO")
        assert cast(list[Any], after["columns"])[1:] == cast(list[Any], before["columns"])[1:]
        assert after["indexes"] == before["indexes"]
        assert facts_after["constraints"] == facts_before["constraints"]
        assert facts_before["sequence"] == ("public.accounts_id_seq", "integer")
        assert facts_after["sequence"] == ("public.accounts_id_seq", "bigint")


async def start_rewrite(service: MigrationService, *, through_backfill: bool) -> Run:
    run = await service.create(spec(strategy="shadow"))
    await service.start_stage(run.id, Stage.EXPAND)
    await settle(service, run.id, RunStatus.AWAITING_DEPLOY)
    await service.approve_deploy(run.id)
    if through_backfill:
        await service.start_stage(run.id, Stage.BACKFILL)
        run = await settle(service, run.id, RunStatus.AWAITING_CONTRACT)
    return run


async def wait_for_writes(application: PgMirroredWriter, count: int, timeout: float = 30.0) -> None:
    """Until the writer has done `count` more transactions (polled, with a deadline)."""
    target = len(application.stats.samples) + count
    deadline = time.monotonic() + timeout
    while len(application.stats.samples) < target:
        assert time.monotonic() < deadline, "the writer stopped writing"
        await asyncio.sleep(0.02)


@pytest.mark.parametrize("through_backfill", [False, True], ids=["before_swap", "after_swap"])
async def test_rollback_restores_the_original_table_with_every_write(
    tmp_path: Path, through_backfill: bool
) -> None:
    async with fresh_database() as pair:
        async with connect(pair.primary) as conn:
            await seed(conn, 5_000)
            before = await table_shape(conn, "accounts")
            facts_before = await catalog_facts(conn)
        application = writer(pair)
        await application.start()
        service = build_service(pair, tmp_path)
        await service.start()
        try:
            run = await start_rewrite(service, through_backfill=through_backfill)
            async with connect(pair.primary) as conn:
                swapped = await conn.fetchval("SELECT to_regclass('_osc_old_accounts') IS NOT NULL")
                assert swapped is through_backfill
                if through_backfill:
                    assert (await columns_of(conn))[0] == ("id", "bigint", "NO")
            # Writes after the swap reach only the new table: the swap back must carry them over.
            await wait_for_writes(application, 200)
            await service.rollback(run.id)
            await settle(service, run.id, RunStatus.ROLLED_BACK)
            await wait_for_writes(application, 50)
        finally:
            stats = await application.stop()
            await service.stop()

        await assert_mirrored(pair, stats)
        async with connect(pair.primary) as conn:
            assert await table_shape(conn, "accounts") == before
            assert await catalog_facts(conn) == facts_before
            assert await leftovers(conn) == []


async def test_a_table_a_view_reads_is_refused_when_the_migration_is_submitted(tmp_path: Path) -> None:
    async with fresh_database() as pair:
        async with connect(pair.primary) as conn:
            await seed(conn, 100)
            await conn.execute(
                "CREATE VIEW active_accounts AS SELECT id, email FROM accounts WHERE score > 0"
            )
        service = build_service(pair, tmp_path)
        await service.start()
        try:
            with pytest.raises(SpecError) as refused:
                await service.create(spec(strategy="shadow"))
        finally:
            await service.stop()
        assert any(
            path == "operations.0.alter_column.table" and "views active_accounts read it" in message
            for path, message in refused.value.problems
        ), refused.value.problems


async def test_a_table_with_a_trigger_of_its_own_is_refused_before_anything_changes(tmp_path: Path) -> None:
    """A trigger (like policies or publications) is seen only by the expand step, which refuses."""
    async with fresh_database() as pair:
        async with connect(pair.primary) as conn:
            await seed(conn, 100)
            await conn.execute(
                "CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NEW; END$$"
            )
            await conn.execute(
                "CREATE TRIGGER accounts_touch BEFORE UPDATE ON accounts FOR EACH ROW EXECUTE FUNCTION touch()"
            )
        service = build_service(pair, tmp_path)
        await service.start()
        try:
            run = await service.create(spec(strategy="shadow"))
            await service.start_stage(run.id, Stage.EXPAND)
            run, _ = await service.wait(run.id, {RunStatus.FAILED}, 60)
            assert run.status is RunStatus.FAILED
            assert "trigger accounts_touch is tied to it" in (run.error or "")
        finally:
            await service.stop()
        async with connect(pair.primary) as conn:
            assert await leftovers(conn) == []


async def test_a_non_key_column_gets_its_new_type_nullability_and_values_from_up(tmp_path: Path) -> None:
    async with fresh_database() as pair:
        async with connect(pair.primary) as conn:
            await seed(conn, 5_000)
            for table in ("accounts", "accounts_mirror"):
                await conn.execute(f"UPDATE {table} SET score = NULL WHERE id % 7 = 0")
        application = writer(pair)
        await application.start()
        service = build_service(pair, tmp_path)
        await service.start()
        try:
            change = {"column": "score", "nullable": False, "up": "coalesce(score, 0)", "strategy": "shadow"}
            run = await service.create(spec(**change))
            await service.start_stage(run.id, Stage.EXPAND)
            await settle(service, run.id, RunStatus.AWAITING_DEPLOY)
            await service.approve_deploy(run.id)
            await service.start_stage(run.id, Stage.BACKFILL)
            run = await settle(service, run.id, RunStatus.AWAITING_CONTRACT)
            await wait_for_writes(application, 100)
            await service.start_stage(run.id, Stage.CONTRACT)
            await settle(service, run.id, RunStatus.COMPLETED)
        finally:
            stats = await application.stop()
            await service.stop()

        assert stats.errors == [], stats.errors[:5]
        async with connect(pair.primary) as conn:
            assert (await columns_of(conn))[2] == ("score", "bigint", "NO")
            assert await conn.fetchval("SELECT count(*) FROM accounts WHERE score IS NULL") == 0
            as_written = "id, email, coalesce(score, 0) AS score, note, created_at"
            assert await table_checksum(conn, "accounts") == await table_checksum(
                conn, "accounts_mirror", as_written
            )
            assert await leftovers(conn) == []


async def test_a_copy_resumed_from_an_older_checkpoint_holds_every_row_once() -> None:
    """A process killed after committing chunks it had not checkpointed: the next one starts from the
    last checkpoint, and the chunks copied twice leave no duplicate and no gap."""
    async with fresh_database() as pair:
        async with connect(pair.primary) as conn:
            await seed(conn, 20_000)
        context = PlanContext(lock_timeout_ms=LOCK_TIMEOUT_MS)
        op = AlterColumn.model_validate(
            {"table": "accounts", "column": "id", "type": "bigint", "strategy": "shadow"}
        )
        plan_shadow(op, 0, context)
        [prepare] = context.steps[Stage.EXPAND]
        copy = context.steps[Stage.BACKFILL][0].backfill
        assert copy is not None
        first_process = PostgresTarget(pair.primary)
        try:
            assert not (
                await first_process.execute_step(prepare, lock_timeout_ms=LOCK_TIMEOUT_MS)
            ).lock_timed_out
            key = await first_process.backfill_key(copy)
            checkpoint = (await first_process.backfill_chunk(copy, key, None, 6_000)).high_water
            after = checkpoint
            for _ in range(2):  # committed, never checkpointed
                after = (await first_process.backfill_chunk(copy, key, after, 6_000)).high_water
        finally:
            await first_process.close()

        second_process = PostgresTarget(pair.primary)
        try:
            after = checkpoint
            while after is not None:
                after = (await second_process.backfill_chunk(copy, key, after, 6_000)).high_water
            scanned = mismatches = 0
            while True:
                result = await second_process.verify_chunk(copy, key, after, 6_000)
                if result.high_water is None:
                    break
                after, scanned, mismatches = (
                    result.high_water,
                    scanned + result.rows_scanned,
                    mismatches + result.mismatches,
                )
        finally:
            await second_process.close()
        assert (scanned, mismatches) == (20_000, 0)
        async with connect(pair.primary) as conn:
            assert await conn.fetchval("SELECT count(*) FROM _osc_shadow_accounts") == 20_000
            assert await table_checksum(conn, "_osc_shadow_accounts") == await table_checksum(
                conn, "accounts"
            )
            primary_key = await conn.fetchval(
                "SELECT count(*) FROM pg_constraint WHERE conrelid = '_osc_shadow_accounts'::regclass AND contype = 'p'"
            )
            assert primary_key == 1
