"""The contract safety proof over HTTP: a refused contract is 409 with the evidence, an override needs
a reason (422 without one), and a contract run with one shows the override on the migration and in
its events, with the caller as actor."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from adapters.postgres.usage import PgUsageReader
from adapters.postgres.workload import create_accounts
from orchestrator.service import MigrationService
from tests.api.conftest import running_api
from tests.api.test_api import assert_problem, create, post_action, problem_fields, wait_for
from tests.support.pg import PgPair, build_service, connect, fresh_database

pytestmark = pytest.mark.integration

SPEC: dict[str, Any] = {
    "name": "drop-legacy-status",
    "target": "app",
    "operations": [{"drop_column": {"table": "accounts", "column": "legacy_status"}}],
}


@pytest.fixture
async def tracked() -> AsyncIterator[PgPair]:
    async with fresh_database() as pair:
        async with connect(pair.primary) as conn:
            await conn.execute("CREATE EXTENSION pg_stat_statements")
            await create_accounts(conn, rows=200)
        yield pair


@pytest.fixture
async def client(tracked: PgPair, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    def factory() -> MigrationService:
        return build_service(tracked, tmp_path, usage_readers=lambda _t: PgUsageReader(tracked.primary))

    async with running_api(factory) as api:
        yield api


async def awaiting_contract(client: httpx.AsyncClient) -> str:
    run_id = str((await create(client, SPEC))["id"])
    await post_action(client, f"/v1/migrations/{run_id}/stages/expand", 202)
    await wait_for(client, run_id, "awaiting_deploy")
    await post_action(client, f"/v1/migrations/{run_id}/deploy-gate", 200)
    await post_action(client, f"/v1/migrations/{run_id}/stages/backfill", 202)
    await wait_for(client, run_id, "awaiting_contract")
    return run_id


async def test_a_refused_contract_is_409_with_the_evidence(
    client: httpx.AsyncClient, tracked: PgPair
) -> None:
    run_id = await awaiting_contract(client)
    async with connect(tracked.primary) as conn:
        await conn.fetch("SELECT id, legacy_status FROM accounts WHERE id < $1", 10)

    body = assert_problem(await client.post(f"/v1/migrations/{run_id}/stages/contract"), 409)

    assert body["current_state"] == "awaiting_contract" and "contract" in body["allowed_actions"]
    assert "override_usage" in body["override"]
    evidence = body["evidence"]
    assert evidence["verdict"] == "usage_seen" and evidence["targets"] == ["column accounts.legacy_status"]
    (use,) = [finding for finding in evidence["findings"] if finding["blocking"]]
    assert use["statement"] == "SELECT id, legacy_status FROM accounts WHERE id < $1" and use["calls"] == 1
    view = (await client.get(f"/v1/migrations/{run_id}")).json()
    assert view["status"] == "awaiting_contract" and view["contract_proof"]["verdict"] == "usage_seen"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"override_usage": {}}, "override_usage.reason"),
        ({"override_usage": {"reason": "because"}}, "override_usage.reason"),
        ({"override_usage": {"reason": "   ok            "}}, "override_usage.reason"),
        ({"override_usage": {"reason": "x" * 40, "force": True}}, "override_usage.force"),
    ],
)
async def test_an_override_needs_a_real_reason(
    client: httpx.AsyncClient, body: dict[str, Any], field: str
) -> None:
    run_id = str((await create(client, SPEC))["id"])
    problem = assert_problem(await client.post(f"/v1/migrations/{run_id}/stages/contract", json=body), 422)
    assert any(name.endswith(field) for name in problem_fields(problem)), problem


async def test_an_override_on_another_stage_is_422(client: httpx.AsyncClient) -> None:
    run_id = str((await create(client, SPEC))["id"])
    body = {"override_usage": {"reason": "not a contract, so nothing to override"}}
    problem = assert_problem(await client.post(f"/v1/migrations/{run_id}/stages/expand", json=body), 422)
    assert problem_fields(problem) == ["override_usage"]


async def test_an_override_runs_contract_and_is_on_the_migration_and_in_its_events(
    client: httpx.AsyncClient, tracked: PgPair
) -> None:
    run_id = await awaiting_contract(client)
    async with connect(tracked.primary) as conn:
        await conn.fetch("SELECT legacy_status FROM accounts WHERE id = $1", 1)
    reason = "the admin screen still shows it; accepted, it hides missing columns"

    response = await client.post(
        f"/v1/migrations/{run_id}/stages/contract", json={"override_usage": {"reason": reason}}
    )
    assert response.status_code == 202, response.text
    done = (await wait_for(client, run_id, "completed"))["migration"]

    view = (await client.get(f"/v1/migrations/{run_id}")).json()
    assert view["contract_proof"]["verdict"] == "overridden"
    assert view["usage_override"]["reason"] == reason and view["usage_override"]["actor"]
    assert done["status"] == "completed"
    events = (await client.get(f"/v1/migrations/{run_id}/events")).json()["events"]
    (audit,) = [event for event in events if event["type"] == "usage_override"]
    assert audit["data"]["reason"] == reason and audit["data"]["needed"] is True
    assert audit["data"]["actor"] == view["usage_override"]["actor"]
