"""The shipped rollback runbooks on the real MariaDB primary and its replica, with a writer changing
`accounts` and its untouched mirror in one transaction throughout: the server's own DDL after expand
and after the backfill, and a pt-osc (or gh-ost) copy caught half-way. Each rollback must leave the
table's shape as it was, its rows equal to the mirror, no copy-tool leftovers, and no writer
statement may fail (deadlocks under pt-osc's triggers are retried, as an application would)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from adapters.mysql.copy_state import CopySettings, stop_all
from adapters.mysql.dsn import MysqlDsn
from adapters.mysql.target import MysqlTarget
from adapters.mysql.workload import create_accounts
from adapters.ptosc import HostPort
from adapters.slack import NullNotifier
from adapters.statestore.store import SqlStateStore
from orchestrator.domain.plan import Stage
from orchestrator.domain.states import RunStatus
from orchestrator.engine.clock import SystemClock
from orchestrator.engine.throttler import Throttler
from orchestrator.runbooks.confirm import Confirmation, ConfirmationRequiredError
from orchestrator.runbooks.loader import load_directory, shipped_directory
from orchestrator.service import MigrationService, TargetRegistry
from tests.support.mirror_writer import MirroredWriter
from tests.support.mysql import (
    MysqlPair,
    eventually,
    fresh_database,
    query,
    settle,
    table_checksum,
    table_shape,
    wait_for_replica,
)

pytestmark = pytest.mark.integration

ROWS = 20_000
GHOST = os.environ.get("GH_OST_BIN") or None


@dataclass
class Scene:
    pair: MysqlPair
    service: MigrationService
    throttler: Throttler
    writer: MirroredWriter
    shape: dict[str, Any]


@asynccontextmanager
async def scene(tmp_path: Path, ghost: str | None = None) -> AsyncIterator[Scene]:
    async with fresh_database() as pair:
        await create_accounts(pair.primary, rows=ROWS)
        await query(pair.primary, "CREATE TABLE accounts_mirror LIKE accounts")
        await query(pair.primary, "INSERT INTO accounts_mirror SELECT * FROM accounts")
        shape = await table_shape(pair.primary, "accounts")
        replica = MysqlDsn.parse(pair.replica)
        copy = CopySettings(
            ghost_binary=ghost,
            runtime_dir=tmp_path / "copy",
            replicas=(HostPort(replica.host, replica.port),),
        )
        dsn = f"{pair.primary}?replicas={replica.host}:{replica.port}"
        throttler = Throttler(SystemClock())  # no signals: only the manual holds the tests set
        service = MigrationService(
            SqlStateStore(f"sqlite+aiosqlite:///{tmp_path / 'state.db'}"),
            TargetRegistry({"app": ("mysql", lambda: MysqlTarget(dsn, copy_settings=copy))}),
            NullNotifier(),
            throttle=throttler,
            runbooks=load_directory(shipped_directory()),
        )
        writer = MirroredWriter(pair.primary, "accounts", "accounts_mirror", workers=2)
        await writer.start()
        await service.start()
        try:
            yield Scene(pair, service, throttler, writer, shape)
        finally:
            stats = await writer.stop()
            await service.stop()
            await stop_all(grace_seconds=5)
        assert stats.inserts + stats.updates + stats.deletes > 50, "the writer must have been busy"
        assert stats.errors == [], stats.errors[:5]
        assert await table_checksum(pair.primary, "accounts") == await table_checksum(
            pair.primary, "accounts_mirror"
        )
        await wait_for_replica(pair)
        assert await table_checksum(pair.replica, "accounts") == await table_checksum(
            pair.primary, "accounts"
        )


async def leftovers(dsn: str) -> list[str]:
    triggers = await query(
        dsn, "SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = DATABASE()"
    )
    tables = await query(
        dsn,
        "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME LIKE '\\_%'",
    )
    return sorted(str(row[0]) for row in [*triggers, *tables])


async def assert_back_to_original(here: Scene) -> None:
    assert await table_shape(here.pair.primary, "accounts") == here.shape
    assert await leftovers(here.pair.primary) == []
    await wait_for_replica(here.pair)
    assert await table_shape(here.pair.replica, "accounts") == here.shape


def spec(name: str, operations: list[dict[str, Any]]) -> dict[str, Any]:
    return {"name": name, "target": "app", "settings": {"lock_timeout_ms": 1000}, "operations": operations}


DIRECT: list[dict[str, Any]] = [
    {"add_column": {"table": "accounts", "column": {"name": "band", "type": "varchar(16)", "default": "n"}}},
    {"create_index": {"table": "accounts", "name": "accounts_band", "columns": ["band"]}},
    {
        "backfill": {
            "table": "accounts",
            "column": "band",
            "expression": "CONCAT('', 'n')",
            "batch_size": 2000,
        }
    },
]


async def test_the_servers_own_ddl_is_reversed_after_expand_and_after_the_backfill(tmp_path: Path) -> None:
    async with scene(tmp_path) as here:
        service = here.service
        first = await service.create(spec("rb-my-expand", DIRECT))
        await service.start_stage(first.id, Stage.EXPAND)
        await settle(service, first.id, RunStatus.AWAITING_DEPLOY)
        assert (await service.runbook_plan(first.id)).runbook == "mysql-direct-expand"
        await service.rollback(first.id, actor="pager")
        await settle(service, first.id, RunStatus.ROLLED_BACK)
        await assert_back_to_original(here)

        second = await service.create(spec("rb-my-backfill", DIRECT))
        await service.start_stage(second.id, Stage.EXPAND)
        await settle(service, second.id, RunStatus.AWAITING_DEPLOY)
        await service.approve_deploy(second.id)
        await service.start_stage(second.id, Stage.BACKFILL)
        await settle(service, second.id, RunStatus.AWAITING_CONTRACT)
        shown = await service.runbook_plan(second.id)
        assert shown.runbook == "mysql-direct-after-gate" and shown.confirmation_required
        with pytest.raises(ConfirmationRequiredError):
            await service.rollback(second.id, actor="pager")
        await service.rollback(second.id, actor="pager", confirmation=Confirmation(token=shown.token))
        await settle(service, second.id, RunStatus.ROLLED_BACK)
        await assert_back_to_original(here)


async def copy_caught_half_way(here: Scene, strategy: str, stage: Stage) -> str:
    """A breaking change copied by `strategy`, the copy held by a throttle hold once the tool has made
    its work objects: rolled back there."""
    service = here.service
    change = [
        {
            "alter_table": {
                "table": "accounts",
                "alter": "MODIFY COLUMN score bigint NOT NULL",
                "strategy": strategy,
            }
        }
    ]
    run = await service.create(spec(f"rb-{strategy}", change))
    here.throttler.hold("app", "the test holds the copy", None)
    await service.start_stage(run.id, Stage.EXPAND)
    if stage is Stage.BACKFILL:  # pt-osc cannot hold a cut-over: it copies after the gate
        await settle(service, run.id, RunStatus.AWAITING_DEPLOY)
        await service.approve_deploy(run.id)
        await service.start_stage(run.id, Stage.BACKFILL)

    async def tool_at_work() -> bool:
        return bool(await leftovers(here.pair.primary))

    await eventually(tool_at_work, timeout=60, what=f"{strategy} to create its work objects")
    return run.id


async def test_pt_osc_caught_half_way_is_aborted_and_leaves_nothing(tmp_path: Path) -> None:
    async with scene(tmp_path) as here:
        run_id = await copy_caught_half_way(here, "pt_osc", Stage.BACKFILL)
        shown = await here.service.runbook_plan(run_id)
        assert shown.runbook == "mysql-copy-after-gate" and "strategy pt_osc" in shown.facts
        abort = next(action for action in shown.actions if action.kind.value == "abort_copy")
        assert "DROP TABLE IF EXISTS `_accounts_new`" in abort.statements
        await here.service.rollback(run_id, actor="pager", confirmation=Confirmation(confirm=True))
        await settle(here.service, run_id, RunStatus.ROLLED_BACK)
        here.throttler.release("app")
        await assert_back_to_original(here)


@pytest.mark.skipif(GHOST is None, reason="GH_OST_BIN is not set: the gh-ost runbook needs a gh-ost binary")
async def test_gh_ost_caught_half_way_is_panicked_and_leaves_nothing(tmp_path: Path) -> None:
    async with scene(tmp_path, GHOST) as here:
        run_id = await copy_caught_half_way(here, "gh_ost", Stage.EXPAND)
        shown = await here.service.runbook_plan(run_id)
        assert shown.runbook == "mysql-copy-expand" and "strategy gh_ost" in shown.facts
        await here.service.rollback(run_id, actor="pager")
        await settle(here.service, run_id, RunStatus.ROLLED_BACK)
        here.throttler.release("app")
        await assert_back_to_original(here)
