"""The shipped rollback runbooks on the real PostgreSQL primary and replica, with a writer changing
`items` and its untouched mirror in one transaction throughout: after expand, after the backfill,
after a contract that dropped (and archived) a column, and after a shadow table's swap. Each
rollback must leave the catalog as it was, the original columns equal to the mirror, nothing of
osctl's behind, and every writer statement must have succeeded."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from orchestrator.domain.plan import Stage
from orchestrator.domain.run import EventType, Run
from orchestrator.domain.states import RunStatus
from orchestrator.runbooks.confirm import Confirmation, ConfirmationRequiredError
from orchestrator.runbooks.loader import load_directory, shipped_directory
from orchestrator.service import MigrationService
from tests.support.pg import (
    PgPair,
    build_service,
    connect,
    eventually,
    fresh_database,
    settle,
    wait_for_replica,
)
from tests.support.roundtrip import (
    OLD,
    MirroredPgWriter,
    Version,
    assert_replica_matches,
    base_schema,
    catalog,
    mirror_difference,
)

pytestmark = pytest.mark.integration

ROWS = 2_000
ADD_BAND: list[dict[str, Any]] = [
    {"add_column": {"table": "items", "column": {"name": "band", "type": "text"}}},
    {"create_index": {"table": "items", "name": "items_band_idx", "columns": ["band"]}},
    {"backfill": {"table": "items", "column": "band", "expression": "upper(name)", "batch_size": 500}},
]
# The version deployed at the gate writes the new column (and, for the contract case, no note).
WITH_BAND = Version(insert_extra={"band": lambda values: values["name"].upper()})


def spec(name: str, operations: list[dict[str, Any]], **settings: Any) -> dict[str, Any]:
    return {
        "name": name,
        "target": "app",
        "settings": {"lock_timeout_ms": 1000, **settings},
        "operations": operations,
    }


@dataclass
class Scene:
    pair: PgPair
    service: MigrationService
    writer: MirroredPgWriter
    original: dict[str, Any]


@asynccontextmanager
async def scene(tmp_path: Path, extra_setup: str = "") -> AsyncIterator[Scene]:
    async with fresh_database() as pair:
        async with connect(pair.primary) as conn:
            await conn.execute(base_schema(ROWS))
            if extra_setup:
                await conn.execute(extra_setup)
            original = await catalog(conn)
        writer = MirroredPgWriter(pair.primary)
        await writer.start()
        service = build_service(pair, tmp_path, runbooks=load_directory(shipped_directory()))
        await service.start()
        try:
            yield Scene(pair, service, writer, original)
        finally:
            stats = await writer.stop()
            await service.stop()
        assert stats.statements > 50, "the writer must have been busy throughout"
        assert stats.errors == [], stats.errors[:5]
        await assert_replica_matches(pair, "items")  # once the writer has stopped: the same rows too


def unordered(found: dict[str, Any]) -> dict[str, Any]:
    """A re-added column comes last (PostgreSQL has no column positions to restore): compare the
    columns as a set, everything else as it is."""
    return {**found, "columns": sorted(found["columns"])}


async def assert_back_to_original(here: Scene, run: Run, *, column_order: bool = True) -> None:
    """Catalog as before (nothing of osctl's left), original columns equal to the mirror (one snapshot,
    the writer still writing), and the replica's catalog the same once it has caught up."""
    shape = (lambda found: found) if column_order else unordered
    async with connect(here.pair.primary) as conn:
        assert shape(await catalog(conn)) == shape(here.original), f"{run.id}: the catalog differs"
        table_sum, mirror_sum = await mirror_difference(conn, OLD)
        assert table_sum == mirror_sum, f"{run.id}: the original columns differ from the mirror"
    await wait_for_replica(here.pair)
    async with connect(here.pair.replica) as replica:
        assert shape(await catalog(replica)) == shape(here.original), (
            f"{run.id}: the replica's catalog differs"
        )


async def runbook_events(service: MigrationService, run_id: str) -> list[dict[str, Any]]:
    return [
        {"message": e.message, **e.data}
        for e in await service.list_events(run_id)
        if e.type is EventType.RUNBOOK
    ]


async def test_after_expand_and_after_the_backfill_the_runbooks_restore_the_original(tmp_path: Path) -> None:
    async with scene(tmp_path) as here:
        service = here.service
        first = await service.create(spec("rb-expand", ADD_BAND))
        await service.start_stage(first.id, Stage.EXPAND)
        await settle(service, first.id, RunStatus.AWAITING_DEPLOY)
        dry = await service.runbook_plan(first.id)
        assert dry.runbook == "postgres-expand" and not dry.confirmation_required
        await service.rollback(first.id, actor="pager")  # before the gate nothing asks for a confirmation
        await settle(service, first.id, RunStatus.ROLLED_BACK)
        await assert_back_to_original(here, first)
        recorded = await runbook_events(service, first.id)
        assert recorded[0]["phase"] == "started" and recorded[0]["runbook"] == "postgres-expand"
        assert recorded[0]["actor"] == "pager"
        steps = [(event["phase"], event.get("kind")) for event in recorded[1:-1]]
        kinds = [kind for phase, kind in steps if phase == "step_started"]
        assert service.runbooks is not None
        assert kinds == [step.kind for step in service.runbooks.get("postgres-expand").steps]
        assert steps == [(phase, kind) for kind in kinds for phase in ("step_started", "step_finished")]
        assert recorded[-1]["phase"] == "finished"

        second = await service.create(spec("rb-backfill", ADD_BAND))
        await service.start_stage(second.id, Stage.EXPAND)
        await settle(service, second.id, RunStatus.AWAITING_DEPLOY)
        here.writer.switch(WITH_BAND)
        await service.approve_deploy(second.id)
        await service.start_stage(second.id, Stage.BACKFILL)
        await settle(service, second.id, RunStatus.AWAITING_CONTRACT)
        shown = await service.runbook_plan(second.id)
        assert shown.runbook == "postgres-after-gate" and shown.confirmation_required
        with pytest.raises(ConfirmationRequiredError) as refused:
            await service.rollback(second.id, actor="pager")
        assert refused.value.plan.token == shown.token
        assert (await service.get(second.id)).status is RunStatus.AWAITING_CONTRACT, "nothing ran"
        here.writer.switch(OLD)  # what the confirmation asks: the application rolled back first
        await service.rollback(second.id, actor="pager", confirmation=Confirmation(token=shown.token))
        await settle(service, second.id, RunStatus.ROLLED_BACK)
        await assert_back_to_original(here, second)
        started = (await runbook_events(service, second.id))[0]
        assert started["confirmed"] == "token" and started["token"] == shown.token


async def test_after_a_contract_that_dropped_an_archived_column_its_values_come_back(tmp_path: Path) -> None:
    async with scene(tmp_path) as here:
        service = here.service
        operations = [
            ADD_BAND[0],
            {"drop_column": {"table": "items", "column": "note", "archive": True}},
            {"drop_column": {"table": "owners", "column": "label", "archive": True}},
        ]
        run = await service.create(spec("rb-contract", operations, ddl_attempts=1))
        await service.start_stage(run.id, Stage.EXPAND)
        await settle(service, run.id, RunStatus.AWAITING_DEPLOY)
        # The new version no longer uses note (that is why contract may drop it) and does not write
        # band yet: it keeps working all through the rollback, which re-adds note and drops band.
        here.writer.switch(Version(columns={"note": None}))
        await service.approve_deploy(run.id)
        await service.start_stage(run.id, Stage.BACKFILL)
        await settle(service, run.id, RunStatus.AWAITING_CONTRACT)
        # A session holding `owners` makes contract fail after it dropped items.note (archived).
        blocker = await asyncpg.connect(here.pair.primary)
        try:
            await blocker.execute("BEGIN; LOCK TABLE owners IN ACCESS EXCLUSIVE MODE")
            await service.start_stage(run.id, Stage.CONTRACT)
            failed = await settle(service, run.id, RunStatus.FAILED)
        finally:
            await blocker.close()
        assert failed.stage is Stage.CONTRACT and "could not take its lock" in (failed.error or "")
        async with connect(here.pair.primary) as conn:
            assert (
                await conn.fetchval(
                    "SELECT count(*) FROM information_schema.columns WHERE table_name = 'items' AND column_name = 'note'"
                )
                == 0
            ), "contract dropped the column before it failed"
        shown = await service.runbook_plan(run.id)
        assert shown.runbook == "postgres-contract" and shown.refused is None
        restore = next(a for a in shown.actions if a.kind.value == "restore_archived_column")
        assert any("_osc_archive_items_note" in line for line in restore.statements)
        await service.rollback(run.id, actor="pager", confirmation=Confirmation(confirm=True))

        async def writer_can_use_note_again() -> bool:
            return (await service.get(run.id)).status is RunStatus.ROLLED_BACK

        await eventually(writer_can_use_note_again, timeout=120, what="the rollback to finish")
        here.writer.switch(OLD)
        await assert_back_to_original(here, run, column_order=False)

        # And once a contract completed: the completed migration is reverted from its archive.
        async with connect(here.pair.primary) as conn:
            here.original = await catalog(conn)  # note is last now; the rest as at the start
        done = await service.create(spec("rb-completed", [operations[1]]))
        await service.start_stage(done.id, Stage.EXPAND)
        await settle(service, done.id, RunStatus.AWAITING_DEPLOY)
        here.writer.switch(Version(columns={"note": None}))
        await service.approve_deploy(done.id)
        await service.start_stage(done.id, Stage.BACKFILL)
        await settle(service, done.id, RunStatus.AWAITING_CONTRACT)
        await service.start_stage(done.id, Stage.CONTRACT)
        await settle(service, done.id, RunStatus.COMPLETED)
        shown = await service.runbook_plan(done.id)
        assert shown.runbook == "postgres-contract" and shown.refused is None
        await service.rollback(done.id, actor="pager", confirmation=Confirmation(token=shown.token))
        await settle(service, done.id, RunStatus.ROLLED_BACK)
        here.writer.switch(OLD)
        await assert_back_to_original(here, done)


# A shadow rewrite carries a sequence default over, not an identity column.
SEQUENCE_KEY = """
    ALTER TABLE items ALTER COLUMN id DROP IDENTITY;
    CREATE SEQUENCE items_id_seq OWNED BY items.id;
    ALTER TABLE items ALTER COLUMN id SET DEFAULT nextval('items_id_seq');
    SELECT setval('items_id_seq', (SELECT max(id) FROM items));
"""


async def test_after_a_shadow_swap_the_runbook_swaps_the_original_table_back(tmp_path: Path) -> None:
    async with scene(tmp_path, SEQUENCE_KEY) as here:
        service = here.service
        change = [
            {"alter_column": {"table": "items", "column": "qty", "type": "bigint", "strategy": "shadow"}}
        ]
        run = await service.create(spec("rb-shadow", change))
        await service.start_stage(run.id, Stage.EXPAND)
        await settle(service, run.id, RunStatus.AWAITING_DEPLOY)
        await service.approve_deploy(run.id)
        await service.start_stage(run.id, Stage.BACKFILL)
        await settle(service, run.id, RunStatus.AWAITING_CONTRACT)
        async with connect(here.pair.primary) as conn:
            assert (
                await conn.fetchval(
                    "SELECT data_type FROM information_schema.columns WHERE table_name = 'items' AND column_name = 'qty'"
                )
                == "bigint"
            ), "the swap happened"
        shown = await service.runbook_plan(run.id)
        assert shown.runbook == "postgres-shadow-after-gate"
        await service.rollback(run.id, actor="pager", confirmation=Confirmation(token=shown.token))
        await settle(service, run.id, RunStatus.ROLLED_BACK)
        await assert_back_to_original(here, run)


async def test_after_the_backfill_of_a_synced_column_the_runbook_drops_it_and_its_triggers(
    tmp_path: Path,
) -> None:
    async with scene(tmp_path) as here:
        service = here.service
        rename = [{"rename_column": {"table": "items", "column": "note", "new_name": "memo"}}]
        run = await service.create(spec("rb-sync", rename))
        await service.start_stage(run.id, Stage.EXPAND)
        await settle(service, run.id, RunStatus.AWAITING_DEPLOY)
        here.writer.switch(Version(columns={"note": "memo"}))  # the new version writes memo only
        await service.approve_deploy(run.id)
        await service.start_stage(run.id, Stage.BACKFILL)
        await settle(service, run.id, RunStatus.AWAITING_CONTRACT)
        shown = await service.runbook_plan(run.id)
        assert shown.runbook == "postgres-after-gate" and "strategy sync_column" in shown.facts
        here.writer.switch(OLD)  # back on the version before the gate, as the confirmation asks
        await service.rollback(run.id, actor="pager", confirmation=Confirmation(token=shown.token))
        await settle(service, run.id, RunStatus.ROLLED_BACK)
        await assert_back_to_original(here, run)
