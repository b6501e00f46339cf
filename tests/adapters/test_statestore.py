"""The state store on SQLite and on PostgreSQL: the same code, the same invariants."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError, IntegrityError

from adapters.statestore.store import SqlStateStore
from orchestrator.domain.errors import ConflictError, FencedError
from orchestrator.domain.plan import Stage
from orchestrator.domain.run import EventType, Waiting, WaitKind
from orchestrator.domain.states import RunStatus
from orchestrator.engine.events import new_event
from orchestrator.ports import BackfillCheckpoint, StoredResponse
from tests.support.pg import fresh_database
from tests.unit.fakes import make_run, make_spec

ADD = {"add_column": {"table": "accounts", "column": {"name": "band", "type": "text"}}}


def state_url_of(dsn: str) -> str:
    return dsn.replace("postgresql://", "postgresql+asyncpg://", 1)


@pytest.fixture(params=["sqlite", "postgresql"])
async def url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'state.db'}"
        return
    async with fresh_database() as pair:
        yield state_url_of(pair.primary)


@pytest.fixture
async def store(url: str) -> AsyncIterator[SqlStateStore]:
    store = SqlStateStore(url)
    await store.initialize()
    try:
        yield store
    finally:
        await store.close()


async def stored_run(store: SqlStateStore, run_id: str = "mig-1", table: str = "accounts") -> None:
    operation = {"add_column": {"table": table, "column": {"name": "band", "type": "text"}}}
    run = make_run(make_spec(operation), run_id=run_id)
    await store.create_run(run, new_event(run.id, EventType.CREATED, "planned"))


async def test_replicas_starting_together_upgrade_the_schema_once() -> None:
    # PostgreSQL only: SQLite is one replica (and Alembic's context is one per process).
    async with fresh_database() as pair:
        await _initialize_together(state_url_of(pair.primary))


async def _initialize_together(url: str) -> None:
    stores = [SqlStateStore(url) for _ in range(3)]
    try:
        await asyncio.gather(*(store.initialize() for store in stores))
        assert (await stores[0].leader()).epoch == 0
    finally:
        for store in stores:
            await store.close()


async def test_events_are_append_only_in_the_database_itself(store: SqlStateStore) -> None:
    await stored_run(store)
    engine = store._engine
    for statement in ("UPDATE events SET message = 'rewritten'", "DELETE FROM events"):
        with pytest.raises((DBAPIError, IntegrityError), match="append-only"):
            async with engine.begin() as conn:
                await conn.execute(sa.text(statement))
    events = await store.list_events("mig-1")
    assert [event.message for event in events] == ["planned"]


async def test_one_active_migration_per_table(store: SqlStateStore) -> None:
    await stored_run(store, "mig-1")
    with pytest.raises(ConflictError, match="mig-1"):
        await stored_run(store, "mig-2")
    await stored_run(store, "mig-3", table="ledger")


async def test_writes_carry_the_epoch_and_a_stale_one_is_refused(store: SqlStateStore) -> None:
    await stored_run(store)
    first = await store.claim_epoch("replica-a")
    old_leader = store.fenced(first)
    await old_leader.save_backfill_checkpoint("mig-1", BackfillCheckpoint("s1", [100], 100, done=False))

    second = await store.claim_epoch("replica-b")
    assert second == first + 1
    assert (await store.leader()).holder == "replica-b"
    writes = [
        old_leader.save_backfill_checkpoint("mig-1", BackfillCheckpoint("s1", [50], 50, done=False)),
        old_leader.mark_step("mig-1", "s1", "done"),
        old_leader.append_event(new_event("mig-1", EventType.STEP_FINISHED, "late")),
        old_leader.update_run(
            (await store.get_run("mig-1")).model_copy(update={"status": RunStatus.EXPANDING}),
            expected_status=RunStatus.PENDING,
            event=None,
        ),
    ]
    for write in writes:
        with pytest.raises(FencedError, match=f"epoch {first} is stale"):
            await write
    checkpoint = await store.get_backfill_checkpoint("mig-1", "s1")
    assert checkpoint is not None and checkpoint.high_water == [100]
    assert (await store.get_run("mig-1")).status is RunStatus.PENDING
    assert [event.message for event in await store.list_events("mig-1")] == ["planned"]
    assert await store.step_checkpoints("mig-1") == {}

    new_leader = store.fenced(second)
    await new_leader.save_backfill_checkpoint("mig-1", BackfillCheckpoint("s1", [150], 150, done=False))
    await store.set_notification_ref("mig-1", {"ts": "1"})  # unfenced writes (API, notifier) go through


async def test_a_held_stage_is_recorded_against_the_status_and_any_transition_clears_it(
    store: SqlStateStore,
) -> None:
    await stored_run(store)
    waiting = Waiting(
        kind=WaitKind.SCHEDULE,
        stage=Stage.EXPAND,
        reason="scheduled",
        since=datetime.now(UTC),
        until=datetime.now(UTC) + timedelta(hours=1),
        actor="release",
    )
    held = await store.set_waiting("mig-1", waiting, expected_status=RunStatus.PENDING)
    assert held.waiting == waiting
    assert [run.id for run in await store.runs_waiting()] == ["mig-1"]
    with pytest.raises(ConflictError):
        await store.set_waiting("mig-1", None, expected_status=RunStatus.EXPANDING)

    moved = held.model_copy(update={"status": RunStatus.CANCELLED, "waiting": None})
    await store.update_run(moved, expected_status=RunStatus.PENDING, event=None)
    assert (await store.get_run("mig-1")).waiting is None
    assert await store.runs_waiting() == []
    assert await store.count_by_status() == {RunStatus.CANCELLED: 1}


async def test_idempotency_claims(store: SqlStateStore) -> None:
    claim = await store.claim_request("ci", "key-1", "f1", stale_after_seconds=60)
    assert claim.outcome == "claimed"
    assert (await store.claim_request("ci", "key-1", "f1", stale_after_seconds=60)).outcome == "in_progress"
    assert (await store.claim_request("ci", "key-1", "f2", stale_after_seconds=60)).outcome == "mismatch"
    assert (await store.claim_request("other", "key-1", "f2", stale_after_seconds=60)).outcome == "claimed"

    answer = StoredResponse(201, b'{"id": "x"}', "application/json", "/v1/migrations/x")
    await store.complete_request("ci", "key-1", answer)
    replay = await store.claim_request("ci", "key-1", "f1", stale_after_seconds=60)
    assert (replay.outcome, replay.response) == ("replay", answer)

    # A claim whose replica died mid-request is taken over once it is stale; a released one at once.
    await store.claim_request("ci", "key-2", "f1", stale_after_seconds=60)
    assert (await store.claim_request("ci", "key-2", "f1", stale_after_seconds=0)).outcome == "claimed"
    await store.release_request("ci", "key-2")
    assert (await store.claim_request("ci", "key-2", "f9", stale_after_seconds=60)).outcome == "claimed"

    assert await store.purge_requests(datetime.now(UTC) + timedelta(seconds=1)) == 3
