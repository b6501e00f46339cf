"""Stages held visibly: maintenance windows, scheduled starts, and the per-target copy queue."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from orchestrator.windows import parse_windows
from tests.api.conftest import running_api
from tests.api.test_api import column_names, create, post_action, spec, wait_for
from tests.support.pg import PgPair, build_service, connect

pytestmark = pytest.mark.integration


def opening_in(seconds: float, duration: str = "1m") -> tuple[str, datetime]:
    """A window (6-field cron, UTC) that opens `seconds` from now, and when."""
    opens = (datetime.now(UTC) + timedelta(seconds=seconds)).replace(microsecond=0) + timedelta(seconds=1)
    return f"{opens.second} {opens.minute} {opens.hour} * * * for {duration}", opens


def closed_now() -> tuple[str, datetime]:
    """A daily one-hour window twelve hours away."""
    opens = (datetime.now(UTC) + timedelta(hours=12)).replace(minute=0, second=0, microsecond=0)
    return f"0 {opens.hour} * * * for 1h", opens


async def to_contract(client: httpx.AsyncClient, body: dict[str, Any] | None = None) -> str:
    run_id = str((await create(client, body or spec()))["id"])
    await post_action(client, f"/v1/migrations/{run_id}/stages/expand", 202)
    await wait_for(client, run_id, "awaiting_deploy")
    await post_action(client, f"/v1/migrations/{run_id}/deploy-gate", 200)
    await post_action(client, f"/v1/migrations/{run_id}/stages/backfill", 202)
    await wait_for(client, run_id, "awaiting_contract")
    return run_id


async def events_of(client: httpx.AsyncClient, run_id: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = (await client.get(f"/v1/migrations/{run_id}/events")).json()["events"]
    return events


async def test_contract_outside_the_window_waits_visibly_and_nothing_is_dropped(
    pair: PgPair, tmp_path: Path
) -> None:
    window, opens = closed_now()
    factory = lambda: build_service(pair, tmp_path, windows={"app": parse_windows(window)})  # noqa: E731
    async with running_api(factory) as client:
        run_id = await to_contract(client)
        held = await post_action(client, f"/v1/migrations/{run_id}/stages/contract", 202)
        assert held["status"] == "awaiting_contract"
        waiting = held["waiting"]
        assert (waiting["kind"], waiting["stage"]) == ("window", "contract")
        assert datetime.fromisoformat(waiting["until"]) == opens
        assert window.removesuffix(" for 1h") in waiting["reason"]
        assert held["queued"] is False

        fetched = (await client.get(f"/v1/migrations/{run_id}")).json()
        assert fetched["waiting"] == waiting and fetched["status"] == "awaiting_contract"
        last = (await events_of(client, run_id))[-1]
        assert (last["type"], last["stage"], last["data"]["kind"]) == ("waiting", "contract", "window")
        assert "legacy_status" in await column_names(pair.primary)  # contract has not run

        # Rolling back is still possible, and it clears the hold.
        rolled = await post_action(client, f"/v1/migrations/{run_id}/rollback", 202)
        assert rolled["waiting"] is None


async def test_a_held_contract_starts_when_its_window_opens(pair: PgPair, tmp_path: Path) -> None:
    async with running_api(lambda: build_service(pair, tmp_path)) as client:
        run_id = await to_contract(client)
    # The same store under a service whose window opens two seconds from now.
    window, opens = opening_in(2)
    factory = lambda: build_service(pair, tmp_path, windows={"app": parse_windows(window)})  # noqa: E731
    async with running_api(factory) as client:
        held = await post_action(client, f"/v1/migrations/{run_id}/stages/contract", 202)
        assert held["waiting"]["kind"] == "window", held
        done = (await wait_for(client, run_id, "completed", timeout=30))["migration"]
        assert done["waiting"] is None
        events = await events_of(client, run_id)
    started = next(e for e in events if e["type"] == "transition" and e["data"]["to"] == "contracting")
    assert datetime.fromisoformat(started["at"]) >= opens
    assert "legacy_status" not in await column_names(pair.primary)


async def test_a_scheduled_start_waits_for_its_time(pair: PgPair, tmp_path: Path) -> None:
    async with running_api(lambda: build_service(pair, tmp_path)) as client:
        run_id = str((await create(client, spec()))["id"])
        at = datetime.now(UTC) + timedelta(seconds=1.5)
        held = await client.post(f"/v1/migrations/{run_id}/stages/expand", json={"at": at.isoformat()})
        assert held.status_code == 202, held.text
        assert held.json()["status"] == "pending"
        assert held.json()["waiting"]["kind"] == "schedule"
        assert datetime.fromisoformat(held.json()["waiting"]["until"]) == at
        await wait_for(client, run_id, "awaiting_deploy", timeout=30)
        events = await events_of(client, run_id)
    started = next(e for e in events if e["type"] == "transition" and e["data"]["to"] == "expanding")
    assert datetime.fromisoformat(started["at"]) >= at
    assert started["data"]["actor"] == "anonymous"  # the one who asked, not the timer


async def test_a_new_leader_registers_the_schedules_it_finds_in_the_store(
    pair: PgPair, tmp_path: Path
) -> None:
    at = datetime.now(UTC) + timedelta(seconds=2)
    async with running_api(lambda: build_service(pair, tmp_path)) as client:
        run_id = str((await create(client, spec()))["id"])
        held = await client.post(f"/v1/migrations/{run_id}/stages/expand", json={"at": at.isoformat()})
        assert held.json()["waiting"]["kind"] == "schedule"
    assert datetime.now(UTC) < at, "the first service must be gone before the start is due"
    async with running_api(lambda: build_service(pair, tmp_path)) as client:
        await wait_for(client, run_id, "awaiting_deploy", timeout=30)


async def test_a_start_in_the_past_or_without_a_zone(pair: PgPair, tmp_path: Path) -> None:
    async with running_api(lambda: build_service(pair, tmp_path)) as client:
        run_id = str((await create(client, spec()))["id"])
        naive = await client.post(
            f"/v1/migrations/{run_id}/stages/expand", json={"at": "2030-01-01T00:00:00"}
        )
        assert naive.status_code == 422, naive.text
        past = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
        started = await client.post(f"/v1/migrations/{run_id}/stages/expand", json={"at": past})
        assert started.status_code == 202 and started.json()["status"] == "expanding"


LEDGER_ROWS = 200


async def add_table(dsn: str, table: str) -> None:
    async with connect(dsn) as conn:
        await conn.execute(
            f"CREATE TABLE {table} (id bigserial PRIMARY KEY, amount int NOT NULL, tag text);"
            f"INSERT INTO {table} (amount) SELECT g FROM generate_series(1, {LEDGER_ROWS}) AS g"
        )


def tag_spec(table: str) -> dict[str, Any]:
    return {
        "name": f"{table}-tag",
        "target": "app",
        "operations": [
            {"backfill": {"table": table, "column": "tag", "expression": "'t' || amount", "batch_size": 50}}
        ],
    }


async def test_at_most_n_copy_at_once_per_target_and_the_rest_queue_in_order(
    pair: PgPair, tmp_path: Path
) -> None:
    for table in ("ledger", "notes"):
        await add_table(pair.primary, table)
    async with running_api(lambda: build_service(pair, tmp_path, max_copying=1)) as client:
        runs = []
        for body in (spec(), tag_spec("ledger"), tag_spec("notes")):
            run_id = str((await create(client, body))["id"])
            await post_action(client, f"/v1/migrations/{run_id}/stages/expand", 202)
            await wait_for(client, run_id, "awaiting_deploy")
            await post_action(client, f"/v1/migrations/{run_id}/deploy-gate", 200)
            runs.append(run_id)
        first, second, third = runs

        async with connect(pair.primary) as blocker:
            # Hold a row of the first backfill's first chunk: it copies, slowly, and keeps its slot.
            transaction = blocker.transaction()
            await transaction.start()
            await blocker.execute("SELECT * FROM accounts WHERE id = 1 FOR UPDATE")
            try:
                await post_action(client, f"/v1/migrations/{first}/stages/backfill", 202)
                await post_action(client, f"/v1/migrations/{second}/stages/backfill", 202)
                await post_action(client, f"/v1/migrations/{third}/stages/backfill", 202)
                views = {run_id: await settled_queue_view(client, run_id) for run_id in (second, third)}
                assert (views[second]["queue_position"], views[third]["queue_position"]) == (1, 2)
                for view in views.values():
                    assert view["status"] == "backfilling" and view["queued"] is True
                    assert view["waiting"]["kind"] == "queue"
                    assert "1 of 1 copy slots on target app" in view["waiting"]["reason"]
                first_view = (await client.get(f"/v1/migrations/{first}")).json()
                assert (first_view["queued"], first_view["waiting"]) == (False, None)
                async with connect(pair.primary) as conn:
                    assert await conn.fetchval("SELECT count(*) FROM ledger WHERE tag IS NOT NULL") == 0
            finally:
                await transaction.rollback()
        for run_id in runs:
            done = (await wait_for(client, run_id, "awaiting_contract"))["migration"]
            assert (done["queued"], done["waiting"]) == (False, None)
        started = {}
        for run_id in runs:
            events = await events_of(client, run_id)
            started[run_id] = next(
                e["id"] for e in events if e["type"] == "stage_started" and e["stage"] == "backfill"
            )
            queued = [e for e in events if e["type"] == "waiting"]
            assert len(queued) == (0 if run_id == first else 1)  # one event per queueing, not per move
        metrics = (await client.get("/metrics")).text
    # Admitted in the order they asked: the event ids of their stage starts are increasing.
    assert started[first] < started[second] < started[third]
    assert 'osctl_copy_queue_length{target="app"} 0.0' in metrics
    async with connect(pair.primary) as conn:
        for table in ("ledger", "notes"):
            assert (
                await conn.fetchval(f"SELECT count(*) FROM {table} WHERE tag IS DISTINCT FROM 't' || amount")
                == 0
            )


async def settled_queue_view(client: httpx.AsyncClient, run_id: str) -> dict[str, Any]:
    """The run's view once its task has taken its place in the queue (a second after the POST at most)."""
    for _ in range(200):
        view: dict[str, Any] = (await client.get(f"/v1/migrations/{run_id}")).json()
        if view["queued"]:
            return view
        await wait_for_change(client, run_id)
    raise AssertionError(f"{run_id} never showed as queued")


async def wait_for_change(client: httpx.AsyncClient, run_id: str) -> None:
    # A long-poll for a status it will not reach returns when the run changes (or in 0.1 s).
    await client.get(f"/v1/migrations/{run_id}/wait", params={"until": "completed", "timeout": 0.1})


async def test_metrics_show_migrations_by_state_stage_durations_and_api_latency(
    pair: PgPair, tmp_path: Path
) -> None:
    async with running_api(lambda: build_service(pair, tmp_path)) as client:
        run_id = str((await create(client, spec()))["id"])
        await post_action(client, f"/v1/migrations/{run_id}/stages/expand", 202)
        await wait_for(client, run_id, "awaiting_deploy")
        scraped = await client.get("/metrics")
    assert scraped.status_code == 200
    assert scraped.headers["content-type"].startswith("text/plain")
    text = scraped.text
    assert 'osctl_migrations{state="awaiting_deploy"} 1.0' in text
    assert 'osctl_migrations{state="pending"} 0.0' in text
    assert 'osctl_stage_duration_seconds_count{outcome="succeeded",stage="expand"}' in text
    assert (
        'osctl_api_request_seconds_count{method="GET",route="/v1/migrations/{migration_id}/wait",status="2xx"}'
        in text
    )
    assert "osctl_leader 1.0" in text
