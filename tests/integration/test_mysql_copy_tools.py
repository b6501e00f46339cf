"""alter_table through pt-online-schema-change (and gh-ost when GH_OST_BIN names a binary) on the real
MariaDB primary and its GTID replica: a million rows under a mirrored writer, a stopped replica, osctl's
pause and resume, and a killed service whose leftovers the restarted one removes."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from adapters.mysql.copy_state import LIVE, CopySettings, stop_all
from adapters.mysql.dsn import MysqlDsn
from adapters.mysql.target import MysqlTarget
from adapters.mysql.workload import create_accounts
from adapters.ptosc import HostPort
from adapters.slack import NullNotifier
from adapters.statestore.store import SqlStateStore
from orchestrator.domain.plan import Stage
from orchestrator.domain.run import EventType, Run
from orchestrator.domain.states import RunStatus
from orchestrator.service import MigrationService, TargetRegistry
from tests.support.mirror_writer import MirroredWriter
from tests.support.mysql import MysqlPair, eventually, fresh_database, query, scalar, settle, wait_for_replica
from tests.support.service import free_port, run_key, service_process

pytestmark = pytest.mark.integration

GHOST = os.environ.get("GH_OST_BIN") or None
needs_ghost = pytest.mark.skipif(
    GHOST is None, reason="GH_OST_BIN is not set: the gh-ost scenarios need a gh-ost binary"
)
ORIGINAL_COLUMNS = "id, email, score, legacy_status, created_at"


@pytest.fixture(autouse=True)
async def no_tool_outlives_its_test() -> AsyncIterator[None]:
    yield
    await stop_all(grace_seconds=5)


def replica_of(pair: MysqlPair) -> HostPort:
    dsn = MysqlDsn.parse(pair.replica)
    return HostPort(dsn.host, dsn.port)


def target_dsn(pair: MysqlPair) -> str:
    replica = replica_of(pair)
    return f"{pair.primary}?replicas={replica.host}:{replica.port}"


def settings(pair: MysqlPair, tmp_path: Path, ghost: str | None = None) -> CopySettings:
    return CopySettings(ghost_binary=ghost, runtime_dir=tmp_path / "copy", replicas=(replica_of(pair),))


def build(pair: MysqlPair, tmp_path: Path, ghost: str | None = None) -> MigrationService:
    store = SqlStateStore(f"sqlite+aiosqlite:///{tmp_path / 'state.db'}")
    copy = settings(pair, tmp_path, ghost)
    targets = TargetRegistry({"app": ("mysql", lambda: MysqlTarget(target_dsn(pair), copy_settings=copy))})
    return MigrationService(store, targets, NullNotifier())


def alter_spec(clause: str, **options: Any) -> dict[str, Any]:
    return {
        "name": "accounts-copy",
        "target": "app",
        "operations": [{"alter_table": {"table": "accounts", "alter": clause, **options}}],
    }


async def checksum(dsn: str, table: str, columns: str = ORIGINAL_COLUMNS) -> tuple[int, int, int]:
    """Rows, SUM and BIT_XOR of each row's CRC32 (deliberately not the formula osctl verifies with)."""
    row = f"CONCAT_WS('#', {', '.join(f'IFNULL({c}, CHAR(0))' for c in columns.split(', '))})"
    found = await query(
        dsn,
        f"SELECT COUNT(*), COALESCE(SUM(CRC32({row})), 0), COALESCE(BIT_XOR(CRC32({row})), 0) FROM `{table}`",
    )
    count, total, xor = found[0]
    return int(count), int(total), int(xor)


async def leftovers(dsn: str) -> list[str]:
    triggers = await query(
        dsn, "SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = DATABASE()"
    )
    tables = await query(
        dsn,
        "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME LIKE '\\_%'",
    )
    return sorted([str(row[0]) for row in triggers] + [str(row[0]) for row in tables])


async def column_type(dsn: str, column: str, table: str = "accounts") -> str:
    return str(
        await scalar(
            dsn,
            "SELECT COLUMN_TYPE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() "
            "AND TABLE_NAME = %s AND COLUMN_NAME = %s",
            (table, column),
        )
    )


def copy_progress(run: Run) -> tuple[float, str | None]:
    """(percent copied, why the copy holds) as the run shows it."""
    backfill = run.progress.backfill
    if backfill is None or not backfill.rows_total_estimate:
        return 0.0, backfill.throttled if backfill else None
    return 100.0 * backfill.rows_done / backfill.rows_total_estimate, backfill.throttled


@asynccontextmanager
async def sql_thread_stopped(pair: MysqlPair) -> AsyncIterator[None]:
    await query(pair.replica, "STOP SLAVE SQL_THREAD")
    try:
        yield
    finally:
        await query(pair.replica, "START SLAVE SQL_THREAD")


async def with_mirror(pair: MysqlPair, rows: int) -> None:
    await create_accounts(pair.primary, rows=rows)
    await query(pair.primary, "CREATE TABLE accounts_mirror LIKE accounts")
    await query(pair.primary, "INSERT INTO accounts_mirror SELECT * FROM accounts")


# -- pt-online-schema-change ---------------------------------------------------------------------------


async def test_ptosc_a_million_rows_under_writes_holds_for_a_stopped_replica_and_loses_nothing(
    tmp_path: Path,
) -> None:
    async with fresh_database() as pair:
        await with_mirror(pair, 1_000_000)
        writer = MirroredWriter(pair.primary, "accounts", "accounts_mirror")
        service = build(pair, tmp_path)
        await service.start()
        await writer.start()
        try:
            # Widening a column is breaking by osctl's reading: pt-osc copies after the gate.
            run = await service.create(alter_spec("MODIFY legacy_status varchar(64) NULL", strategy="pt_osc"))
            await service.start_stage(run.id, Stage.EXPAND)
            await settle(service, run.id, RunStatus.AWAITING_DEPLOY)
            assert await leftovers(pair.primary) == [], "pt-osc cannot hold a cut-over: nothing copied yet"
            await service.approve_deploy(run.id)
            await service.start_stage(run.id, Stage.BACKFILL)

            async def copying() -> bool:
                return copy_progress(await service.get(run.id))[0] >= 10

            await eventually(copying, timeout=120, what="the copy to pass 10%")
            async with sql_thread_stopped(pair):
                stopped_at = time.monotonic()

                async def held() -> bool:
                    return "is stopped" in (copy_progress(await service.get(run.id))[1] or "")

                await eventually(held, timeout=10, what="the copy to hold for the stopped replica")
                held_after = time.monotonic() - stopped_at
                percent = copy_progress(await service.get(run.id))[0]
                await asyncio.sleep(2)
                assert copy_progress(await service.get(run.id))[0] - percent <= 2, "the copy went on"
                assert (await service.get(run.id)).status is RunStatus.BACKFILLING

            async def resumed() -> bool:
                now, waiting = copy_progress(await service.get(run.id))
                return waiting is None and now > percent

            await eventually(resumed, timeout=30, what="the copy to resume")
            run = await settle(service, run.id, RunStatus.AWAITING_CONTRACT, timeout=240)
            events = await service.list_events(run.id)
        finally:
            stats = await writer.stop()
            await service.stop()

        assert held_after < 5, f"the copy held {held_after:.1f} s after the SQL thread stopped"
        assert stats.inserts and stats.updates and stats.deletes
        assert stats.errors == [], stats.errors[:5]
        messages = [event.message for event in events]
        assert any("pt-osc cannot hold a cut-over" in message for message in messages)
        assert any(message.startswith("copy verified:") for message in messages)
        assert any(event.type is EventType.THROTTLED and "is stopped" in event.message for event in events)
        assert any(event.type is EventType.UNTHROTTLED for event in events)
        assert await column_type(pair.primary, "legacy_status") == "varchar(64)"
        assert await leftovers(pair.primary) == []
        assert await checksum(pair.primary, "accounts") == await checksum(pair.primary, "accounts_mirror")
        await wait_for_replica(pair)
        assert await column_type(pair.replica, "legacy_status") == "varchar(64)"
        assert await checksum(pair.replica, "accounts") == await checksum(pair.primary, "accounts")
        print(
            f"\nwriter: {stats.inserts + stats.updates + stats.deletes} transactions, {stats.retries} retried (deadlock/lock wait)"
        )


async def test_ptosc_pause_holds_the_copy_through_the_pause_file_and_resume_finishes_it(
    tmp_path: Path,
) -> None:
    async with fresh_database() as pair:
        await create_accounts(pair.primary, rows=1_000_000)
        before = await checksum(pair.primary, "accounts")
        service = build(pair, tmp_path)
        await service.start()
        try:
            spec = alter_spec("ADD COLUMN note varchar(32) NULL", strategy="pt_osc", chunk_time_seconds=0.05)
            run = await service.create(spec)
            await service.start_stage(run.id, Stage.EXPAND)

            async def copying() -> bool:
                return copy_progress(await service.get(run.id))[0] >= 2

            await eventually(copying, timeout=60, what="the copy to start")
            paused = await service.pause(run.id)
            assert paused.status is RunStatus.PAUSED
            [live] = LIVE.values()
            assert live.process.running and live.parked, "the tool is held, not stopped"
            assert live.files.pause.exists()
            rows = await scalar(pair.primary, "SELECT COUNT(*) FROM _accounts_new")
            await asyncio.sleep(2)
            assert await scalar(pair.primary, "SELECT COUNT(*) FROM _accounts_new") == rows, (
                "copying while paused"
            )

            resumed_at = time.monotonic()
            await service.resume(run.id)
            await settle(service, run.id, RunStatus.AWAITING_DEPLOY, timeout=120)
            resume_seconds = time.monotonic() - resumed_at
        finally:
            await service.stop()
        assert not live.files.pause.exists()
        assert await leftovers(pair.primary) == []
        assert await column_type(pair.primary, "note") == "varchar(32)"
        assert await checksum(pair.primary, "accounts") == before
        # pt-osc 3.2.1 looks at its pause file every 60 s: a resume takes effect within that.
        print(f"\nresume to done: {resume_seconds:.1f} s")


async def test_a_copy_that_lost_rows_is_never_swapped_in_and_both_tables_are_kept(tmp_path: Path) -> None:
    """pt-osc copies with INSERT IGNORE: a narrowing that makes unique values collide loses rows and
    still exits 0. The verification catches it before the swap."""
    async with fresh_database() as pair:
        await query(
            pair.primary,
            "CREATE TABLE codes (id INT PRIMARY KEY, code VARCHAR(8) NOT NULL, UNIQUE KEY code_uq (code))",
        )
        await query(pair.primary, "INSERT INTO codes SELECT seq, CONCAT('abc', seq) FROM seq_1_to_2000")
        service = build(pair, tmp_path)
        await service.start()
        try:
            spec = alter_spec("MODIFY code VARCHAR(3) NOT NULL", strategy="pt_osc")
            spec["operations"][0]["alter_table"]["table"] = "codes"
            run = await service.create(spec)
            await service.start_stage(run.id, Stage.EXPAND)
            await settle(service, run.id, RunStatus.AWAITING_DEPLOY)
            await service.approve_deploy(run.id)
            await service.start_stage(run.id, Stage.BACKFILL)
            failed = await settle(service, run.id, RunStatus.FAILED)
        finally:
            await service.stop()
        assert (
            failed.error is not None
            and "the copy _codes_new does not match codes: 2000 rows vs" in failed.error
        )
        assert "both tables are kept for a human" in failed.error
        assert await column_type(pair.primary, "code", "codes") == "varchar(8)", "nothing was swapped"
        assert await scalar(pair.primary, "SELECT COUNT(*) FROM codes") == 2000
        assert await leftovers(pair.primary) == ["_codes_new"], "the copy is kept, its triggers are gone"


async def test_a_new_unique_key_over_duplicates_is_refused_before_anything_is_copied(tmp_path: Path) -> None:
    async with fresh_database() as pair:
        await create_accounts(pair.primary, rows=5_000)
        service = build(pair, tmp_path)
        await service.start()
        try:
            run = await service.create(alter_spec("ADD UNIQUE KEY score_uq (score)", strategy="pt_osc"))
            await service.start_stage(run.id, Stage.EXPAND)
            await settle(service, run.id, RunStatus.AWAITING_DEPLOY)
            await service.approve_deploy(run.id)
            await service.start_stage(run.id, Stage.BACKFILL)
            failed = await settle(service, run.id, RunStatus.FAILED)
        finally:
            await service.stop()
        assert failed.error is not None and "the new unique key (score) has duplicates" in failed.error
        assert await leftovers(pair.primary) == []


def copy_env(state_dir: Path) -> dict[str, str]:
    """The copy tools' settings for a service process: its own working directory, no gh-ost."""
    return {"OSCTL_COPY_DIR": str(state_dir / "copy"), "GH_OST_BIN": ""}


def tools_running(table_marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if b"pt-online-schema-change" in cmdline and table_marker.encode() in cmdline:
                found.append(int(entry.name))
    return found


async def test_kill_9_mid_copy_the_restarted_service_removes_the_leftovers_and_copies_again(
    tmp_path: Path,
) -> None:
    async with fresh_database() as pair:
        await create_accounts(pair.primary, rows=400_000)
        before = await checksum(pair.primary, "accounts")
        spec = alter_spec(
            "ADD COLUMN note varchar(32) NULL, ADD INDEX accounts_score (score)", chunk_time_seconds=0.05
        )
        port = free_port()
        marker = f"D={pair.database},t=accounts"
        async with (
            service_process(target_dsn(pair), tmp_path, port, copy_env(tmp_path)) as process,
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as api,
        ):
            created = await api.post("/v1/migrations", json=spec, headers={"Idempotency-Key": run_key()})
            assert created.status_code == 201, created.text
            run_id = created.json()["migration"]["id"]
            assert (await api.post(f"/v1/migrations/{run_id}/stages/expand")).status_code == 202

            async def copying() -> bool:
                backfill = (await api.get(f"/v1/migrations/{run_id}")).json()["progress"].get(
                    "backfill"
                ) or {}
                return int(backfill.get("rows_done", 0)) >= 40_000

            await eventually(copying, timeout=60, what="the copy to be under way")
            assert tools_running(marker), "pt-osc runs as the service's child"
            process.send_signal(signal.SIGKILL)
            assert process.wait(timeout=30) == -signal.SIGKILL

        async def tool_gone() -> bool:
            return not tools_running(marker)

        await eventually(tool_gone, timeout=15, what="pt-osc to die with its parent (pdeathsig)")
        left = await leftovers(pair.primary)
        assert "_accounts_new" in left and any(name.startswith("pt_osc_") for name in left), left
        assert await checksum(pair.primary, "accounts") == before, "the original is untouched"

        async with (
            service_process(target_dsn(pair), tmp_path, port, copy_env(tmp_path)),
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as api,
        ):
            waited = await api.get(
                f"/v1/migrations/{run_id}/wait",
                params={"until": "awaiting_deploy", "timeout": 120},
                timeout=150,
            )
            assert waited.json()["reached"], waited.text
            events = (await api.get(f"/v1/migrations/{run_id}/events")).json()["events"]
        messages = [event["message"] for event in events]
        assert any(message.startswith("removed leftovers (before copying)") for message in messages), messages
        assert await leftovers(pair.primary) == []
        assert await column_type(pair.primary, "note") == "varchar(32)"
        assert await checksum(pair.primary, "accounts") == before
        await wait_for_replica(pair)
        assert await checksum(pair.replica, "accounts") == before


# -- gh-ost (when GH_OST_BIN names a binary) --------------------------------------------------------------


@needs_ghost
async def test_ghost_a_million_rows_under_writes_with_the_cut_over_held_for_the_gate(tmp_path: Path) -> None:
    async with fresh_database() as pair:
        await with_mirror(pair, 1_000_000)
        writer = MirroredWriter(pair.primary, "accounts", "accounts_mirror")
        service = build(pair, tmp_path, GHOST)
        await service.start()
        await writer.start()
        try:
            run = await service.create(alter_spec("MODIFY legacy_status varchar(64) NULL", strategy="gh_ost"))
            await service.start_stage(run.id, Stage.EXPAND)
            await settle(service, run.id, RunStatus.AWAITING_DEPLOY, timeout=240)
            # The copy is complete, verified and kept in sync; the cut-over waits for the gate.
            [live] = LIVE.values()
            assert live.process.running and live.files.postpone.exists()
            assert await column_type(pair.primary, "legacy_status") == "varchar(32)"
            await asyncio.sleep(2)
            assert await column_type(pair.primary, "legacy_status") == "varchar(32)", (
                "cut over before the gate"
            )
            await service.approve_deploy(run.id)
            await service.start_stage(run.id, Stage.BACKFILL)
            run = await settle(service, run.id, RunStatus.AWAITING_CONTRACT, timeout=120)
        finally:
            stats = await writer.stop()
            await service.stop()
        assert stats.errors == [], stats.errors[:5]
        assert await column_type(pair.primary, "legacy_status") == "varchar(64)"
        assert await leftovers(pair.primary) == []
        assert await checksum(pair.primary, "accounts") == await checksum(pair.primary, "accounts_mirror")
        await wait_for_replica(pair)
        assert await checksum(pair.replica, "accounts") == await checksum(pair.primary, "accounts")


@needs_ghost
async def test_ghost_pause_throttles_it_a_stopped_replica_holds_it_and_resume_finishes(
    tmp_path: Path,
) -> None:
    async with fresh_database() as pair:
        await create_accounts(pair.primary, rows=1_000_000)
        before = await checksum(pair.primary, "accounts")
        service = build(pair, tmp_path, GHOST)
        await service.start()
        try:
            run = await service.create(
                alter_spec("ADD COLUMN note varchar(32) NULL", strategy="gh_ost", chunk_size=500)
            )
            await service.start_stage(run.id, Stage.EXPAND)

            async def copying() -> bool:
                return copy_progress(await service.get(run.id))[0] >= 5

            await eventually(copying, timeout=60, what="gh-ost to copy")
            async with sql_thread_stopped(pair):

                async def held() -> bool:
                    return copy_progress(await service.get(run.id))[1] is not None

                await eventually(held, timeout=10, what="gh-ost to throttle on the stopped replica")
            paused = await service.pause(run.id)
            assert paused.status is RunStatus.PAUSED
            [live] = LIVE.values()
            assert live.process.running and live.held
            await service.resume(run.id)
            await settle(service, run.id, RunStatus.AWAITING_DEPLOY, timeout=240)
        finally:
            await service.stop()
        assert await leftovers(pair.primary) == []
        assert await checksum(pair.primary, "accounts") == before
