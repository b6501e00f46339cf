"""The HTTP API in-process (httpx over ASGI) against a real PostgreSQL database per test."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from adapters.postgres.target import PostgresTarget
from adapters.postgres.workload import BAND_EXPRESSION
from adapters.slack import SlackNotifier, build_notifier
from adapters.statestore.store import SqlStateStore
from orchestrator.api.app import create_app
from orchestrator.domain.run import MigrationEvent, Run
from orchestrator.domain.states import RunStatus
from orchestrator.service import MigrationService, TargetRegistry
from tests.api.conftest import Api, running_api
from tests.support.pg import PgPair, build_service, connect
from tests.support.slack_recorder import SlackRecorder

pytestmark = pytest.mark.integration

PROBLEM_JSON = "application/problem+json"
UNKNOWN_ID = "no-such-migration-1234"


# --- helpers -----------------------------------------------------------------------------------------


def spec(**changes: Any) -> dict[str, Any]:
    """The canonical expand/backfill/contract migration of `accounts`."""
    body: dict[str, Any] = {
        "name": "accounts-band",
        "target": "app",
        "operations": [
            {"add_column": {"table": "accounts", "column": {"name": "band", "type": "text"}}},
            {"create_index": {"table": "accounts", "name": "accounts_email_idx", "columns": ["email"]}},
            {
                "backfill": {
                    "table": "accounts",
                    "column": "band",
                    "expression": BAND_EXPRESSION,
                    "batch_size": 100,
                }
            },
            {"drop_column": {"table": "accounts", "column": "legacy_status"}},
        ],
    }
    body.update(changes)
    return body


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].split(";")[0].strip() == PROBLEM_JSON
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["title"]
    assert isinstance(body["detail"], str) and body["detail"]
    return body


def problem_fields(body: dict[str, Any]) -> list[str]:
    return [error["field"] for error in body.get("errors", [])]


async def create(client: httpx.AsyncClient, body: dict[str, Any]) -> dict[str, Any]:
    response = await client.post("/v1/migrations", json=body)
    assert response.status_code == 201, response.text
    migration: dict[str, Any] = response.json()["migration"]
    return migration


async def post_action(client: httpx.AsyncClient, path: str, status: int) -> dict[str, Any]:
    response = await client.post(path)
    assert response.status_code == status, response.text
    view: dict[str, Any] = response.json()
    return view


async def wait_for(
    client: httpx.AsyncClient, run_id: str, until: str, timeout: float = 60.0
) -> dict[str, Any]:
    """Long-poll until the run reaches `until`; fail with its error otherwise."""
    response = await client.get(f"/v1/migrations/{run_id}/wait", params={"until": until, "timeout": timeout})
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    migration = result["migration"]
    assert result["reached"], f"expected {until}, got {migration['status']}: {migration['error']}"
    assert migration["status"] == until
    return result


async def stored_ids(client: httpx.AsyncClient) -> list[str]:
    response = await client.get("/v1/migrations")
    assert response.status_code == 200, response.text
    return [migration["id"] for migration in response.json()["migrations"]]


async def drive_to_completion(client: httpx.AsyncClient, run_id: str) -> None:
    await post_action(client, f"/v1/migrations/{run_id}/stages/expand", 202)
    await wait_for(client, run_id, "awaiting_deploy")
    gate = await post_action(client, f"/v1/migrations/{run_id}/deploy-gate", 200)
    assert gate["status"] == "awaiting_backfill"
    await post_action(client, f"/v1/migrations/{run_id}/stages/backfill", 202)
    await wait_for(client, run_id, "awaiting_contract")
    await post_action(client, f"/v1/migrations/{run_id}/stages/contract", 202)
    await wait_for(client, run_id, "completed")


async def column_names(dsn: str, table: str = "accounts") -> list[str]:
    async with connect(dsn) as conn:
        rows = await conn.fetch(
            "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass($1) AND attnum > 0 "
            "AND NOT attisdropped ORDER BY attnum",
            table,
        )
    return [row["attname"] for row in rows]


async def index_validity(dsn: str, name: str) -> bool | None:
    async with connect(dsn) as conn:
        value = await conn.fetchval(
            "SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass($1)", name
        )
    return None if value is None else bool(value)


async def wrong_bands(dsn: str) -> int:
    async with connect(dsn) as conn:
        return int(
            await conn.fetchval(
                f"SELECT count(*) FROM accounts WHERE band IS DISTINCT FROM ({BAND_EXPRESSION})"
            )
        )


# --- health ------------------------------------------------------------------------------------------


async def test_health_and_readiness_follow_the_lifespan(pair: PgPair, tmp_path: Path) -> None:
    app = create_app(lambda: build_service(pair, tmp_path))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        assert (await client.get("/healthz")).status_code == 200
        assert_problem(await client.get("/readyz"), 503)  # the lifespan has not started the service

        async with app.router.lifespan_context(app):
            health = await client.get("/healthz")
            assert health.status_code == 200
            assert health.json()["status"] == "ok"
            ready = await client.get("/readyz")
            assert ready.status_code == 200
            assert ready.json()["status"] == "ready"
            assert await stored_ids(client) == []  # the service (and its store) is up

        assert_problem(await client.get("/readyz"), 503)  # drained


# --- create ------------------------------------------------------------------------------------------


async def test_create_from_json_and_from_yaml(api: Api) -> None:
    client = api.client
    response = await client.post("/v1/migrations", json=spec())
    assert response.status_code == 201, response.text
    body = response.json()
    migration = body["migration"]
    assert response.headers["location"] == f"/v1/migrations/{migration['id']}"
    assert migration["id"].startswith("accounts-band-")
    assert migration["status"] == "pending"
    assert migration["target"] == "app"
    assert migration["engine"] == "postgres"
    assert migration["allowed_actions"] == ["cancel", "expand"]
    stages = migration["plan"]["stages"]
    assert [stage["stage"] for stage in stages] == ["expand", "deploy_gate", "backfill", "contract"]
    assert [len(stage["steps"]) for stage in stages] == [2, 0, 1, 1]
    plan_text = body["plan_text"]
    assert plan_text.startswith("Migration accounts-band (postgres)")
    assert "1. expand:" in plan_text and "4. contract:" in plan_text
    assert "CREATE INDEX CONCURRENTLY" in plan_text
    assert "DROP COLUMN IF EXISTS" in plan_text

    fetched = await client.get(response.headers["location"])
    assert fetched.status_code == 200
    assert fetched.json()["id"] == migration["id"]
    assert fetched.json()["status"] == "pending"
    assert fetched.json()["plan"] == migration["plan"]

    # Nothing ran: the table is untouched until a stage is started.
    assert "band" not in await column_names(api.pair.primary)

    # Free the table, then send the same spec as YAML (not valid JSON, so the YAML parser must read it).
    cancelled = await post_action(client, f"/v1/migrations/{migration['id']}/cancel", 200)
    assert cancelled["status"] == "cancelled"
    text = yaml.safe_dump(spec(name="accounts-band-yaml"), sort_keys=False)
    from_yaml = await client.post(
        "/v1/migrations", content=text, headers={"content-type": "application/yaml"}
    )
    assert from_yaml.status_code == 201, from_yaml.text
    yaml_migration = from_yaml.json()["migration"]
    assert yaml_migration["name"] == "accounts-band-yaml"
    assert yaml_migration["status"] == "pending"
    assert len(yaml_migration["plan"]["stages"]) == 4
    assert from_yaml.headers["location"] == f"/v1/migrations/{yaml_migration['id']}"
    assert from_yaml.json()["plan_text"].startswith("Migration accounts-band-yaml (postgres)")
    assert sorted(await stored_ids(client)) == sorted([migration["id"], yaml_migration["id"]])


# --- 422 ---------------------------------------------------------------------------------------------


def _with_operations(*operations: dict[str, Any]) -> dict[str, Any]:
    return spec(operations=list(operations))


def _without(key: str) -> dict[str, Any]:
    body = spec()
    del body[key]
    return body


INVALID_SPECS = [
    pytest.param(
        _with_operations(
            {"add_column": {"table": "accounts", "column": {"name": "band", "type": "int unique"}}}
        ),
        "operations.0.add_column.column.type",
        id="bad-column-type",
    ),
    pytest.param(
        _with_operations({"truncate_table": {"table": "accounts"}}),
        "operations.0",
        id="unknown-operation-kind",
    ),
    pytest.param(_without("name"), "name", id="missing-name"),
    pytest.param(spec(target="nowhere"), "target", id="unknown-target"),
    pytest.param(
        _with_operations({"drop_column": {"table": "accounts", "column": "nope"}}),
        "operations.0.drop_column.column",
        id="preflight-missing-column",
    ),
    pytest.param(
        _with_operations(
            {"add_column": {"table": "accounts", "column": {"name": "band", "type": "text"}}},
            {
                "backfill": {
                    "table": "accounts",
                    "column": "legacy_status",
                    "expression": "upper(no_such_column)",
                }
            },
        ),
        "operations.1.backfill.expression",
        id="preflight-backfill-expression",
    ),
    pytest.param(
        # The usual shape (add a column, then backfill it) with a typo in the expression. The
        # expression reads no column the spec adds, so preflight could compile it against the table.
        spec(
            operations=[
                *spec()["operations"][:2],
                {
                    "backfill": {
                        "table": "accounts",
                        "column": "band",
                        "expression": "CASE WHEN scroe >= 50 THEN 'high' ELSE 'low' END",
                    }
                },
            ]
        ),
        "operations.2.backfill.expression",
        id="preflight-expression-of-an-added-column",
    ),
]


@pytest.mark.parametrize(("body", "field"), INVALID_SPECS)
async def test_invalid_specs_are_422_naming_the_field_and_nothing_is_stored(
    api: Api, body: dict[str, Any], field: str
) -> None:
    response = await api.client.post("/v1/migrations", json=body)
    problem = assert_problem(response, 422)
    assert field in problem_fields(problem), problem
    assert field in problem["detail"]
    assert await stored_ids(api.client) == []


async def test_malformed_bodies_are_422_and_nothing_is_stored(api: Api) -> None:
    client = api.client
    broken_json = await client.post(
        "/v1/migrations", content=b'{"name": "x", ', headers={"content-type": "application/json"}
    )
    problem = assert_problem(broken_json, 422)
    assert problem_fields(problem) == ["(body)"]
    assert "not valid application/json" in problem["detail"]

    broken_yaml = await client.post(
        "/v1/migrations", content=b"name: [unclosed", headers={"content-type": "application/yaml"}
    )
    assert problem_fields(assert_problem(broken_yaml, 422)) == ["(body)"]

    not_a_mapping = await client.post("/v1/migrations", json=["a", "list"])
    assert problem_fields(assert_problem(not_a_mapping, 422)) == ["(spec)"]

    empty = await client.post("/v1/migrations", content=b"", headers={"content-type": "application/json"})
    assert problem_fields(assert_problem(empty, 422)) == ["(spec)"]

    assert await stored_ids(client) == []


# --- 404 ---------------------------------------------------------------------------------------------


async def test_unknown_ids_are_404_problems(api: Api) -> None:
    client = api.client
    requests = [
        client.get(f"/v1/migrations/{UNKNOWN_ID}"),
        client.get(f"/v1/migrations/{UNKNOWN_ID}/events"),
        client.get(f"/v1/migrations/{UNKNOWN_ID}/wait", params={"until": "completed", "timeout": 0}),
        client.post(f"/v1/migrations/{UNKNOWN_ID}/stages/expand"),
        client.post(f"/v1/migrations/{UNKNOWN_ID}/rollback"),
    ]
    for request in requests:
        response = await request
        problem = assert_problem(response, 404)
        assert UNKNOWN_ID in problem["detail"], (response.request.url, problem)
    assert await stored_ids(client) == []


# --- 409 ---------------------------------------------------------------------------------------------


async def test_illegal_actions_are_409_with_the_current_state_and_allowed_actions(api: Api) -> None:
    client = api.client
    run_id = (await create(client, spec()))["id"]
    base = f"/v1/migrations/{run_id}"

    contract = assert_problem(await client.post(f"{base}/stages/contract"), 409)
    assert contract["current_state"] == "pending"
    assert contract["allowed_actions"] == ["cancel", "expand"]
    assert "contract" in contract["detail"]

    gate = assert_problem(await client.post(f"{base}/deploy-gate"), 409)
    assert gate["current_state"] == "pending"
    assert gate["allowed_actions"] == ["cancel", "expand"]
    assert "approve_deploy" in gate["detail"]

    as_stage = assert_problem(await client.post(f"{base}/stages/deploy_gate"), 409)
    assert as_stage["current_state"] == "pending"
    assert as_stage["allowed_actions"] == ["cancel", "expand"]
    assert "deploy-gate" in as_stage["detail"]

    unknown_stage = assert_problem(await client.post(f"{base}/stages/explode"), 422)
    assert problem_fields(unknown_stage) == ["path.stage"]

    # A second migration on the same table while the first is active.
    second = await client.post("/v1/migrations", json=spec(name="accounts-band-again"))
    conflict = assert_problem(second, 409)
    assert run_id in conflict["detail"]
    assert "accounts" in conflict["detail"]
    assert await stored_ids(client) == [run_id]

    # None of the refused requests moved the migration.
    current = (await client.get(base)).json()
    assert current["status"] == "pending"
    assert current["stage"] is None
    events = (await client.get(f"{base}/events")).json()["events"]
    assert [event["type"] for event in events] == ["created"]
    assert "band" not in await column_names(api.pair.primary)


# --- long-poll ---------------------------------------------------------------------------------------


async def test_wait_long_polls_until_the_status_or_the_timeout(api: Api) -> None:
    client = api.client
    run_id = (await create(client, spec()))["id"]
    started = await post_action(client, f"/v1/migrations/{run_id}/stages/expand", 202)
    assert started["status"] == "expanding"
    assert started["stage"] == "expand"

    result = await wait_for(client, run_id, "awaiting_deploy", timeout=30)
    assert result == {"reached": True, "timed_out": False, "migration": result["migration"]}
    assert result["migration"]["status"] == "awaiting_deploy"
    assert result["migration"]["allowed_actions"] == ["approve_deploy", "rollback"]
    assert "band" in await column_names(api.pair.primary)
    assert await index_validity(api.pair.primary, "accounts_email_idx") is True

    # Waiting at the gate: nothing will move it on, so a short wait times out, and quickly.
    began = time.monotonic()
    short = await client.get(f"/v1/migrations/{run_id}/wait", params={"until": "completed", "timeout": 0.2})
    elapsed = time.monotonic() - began
    assert short.status_code == 200, short.text
    assert short.json()["reached"] is False
    assert short.json()["timed_out"] is True
    assert short.json()["migration"]["status"] == "awaiting_deploy"
    assert 0.15 <= elapsed < 3.0, elapsed

    # Several statuses: any one of them counts.
    several = await client.get(
        f"/v1/migrations/{run_id}/wait", params={"until": "completed, awaiting_deploy", "timeout": 5}
    )
    assert several.json()["reached"] is True

    bad_until = assert_problem(
        await client.get(f"/v1/migrations/{run_id}/wait", params={"until": "done", "timeout": 1}), 422
    )
    assert problem_fields(bad_until) == ["until"]
    bad_timeout = assert_problem(
        await client.get(f"/v1/migrations/{run_id}/wait", params={"until": "completed", "timeout": 301}),
        422,
    )
    assert problem_fields(bad_timeout) == ["query.timeout"]


async def test_wait_on_a_failed_migration_returns_without_timing_out(api: Api) -> None:
    unique = {
        "name": "accounts-unique-email",
        "target": "app",
        "operations": [
            {
                "create_index": {
                    "table": "accounts",
                    "name": "accounts_email_key",
                    "columns": ["email"],
                    "unique": True,
                }
            }
        ],
    }
    client = api.client
    run_id = (await create(client, unique))["id"]
    # Duplicates written after the preflight (which would have refused them) fail the build.
    async with connect(api.pair.primary) as conn:
        await conn.execute("UPDATE accounts SET email = 'dup@example.com' WHERE id IN (1, 2)")
    await post_action(client, f"/v1/migrations/{run_id}/stages/expand", 202)

    began = time.monotonic()
    response = await client.get(
        f"/v1/migrations/{run_id}/wait", params={"until": "awaiting_deploy", "timeout": 60}
    )
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["reached"] is False
    assert result["timed_out"] is False
    assert result["migration"]["status"] == "failed"
    assert "UniqueViolation" in result["migration"]["error"]
    assert time.monotonic() - began < 55  # it returned on the failure, not at the deadline

    # Once failed, a further wait settles at once too.
    began = time.monotonic()
    again = await client.get(f"/v1/migrations/{run_id}/wait", params={"until": "completed", "timeout": 30})
    assert (again.json()["reached"], again.json()["timed_out"]) == (False, False)
    assert again.json()["migration"]["status"] == "failed"
    assert time.monotonic() - began < 25


# --- the whole pipeline ------------------------------------------------------------------------------


TRANSITIONS = [
    ("pending", "expanding"),
    ("expanding", "awaiting_deploy"),
    ("awaiting_deploy", "awaiting_backfill"),
    ("awaiting_backfill", "backfilling"),
    ("backfilling", "awaiting_contract"),
    ("awaiting_contract", "contracting"),
    ("contracting", "completed"),
]


async def test_the_whole_pipeline_through_the_api(api: Api) -> None:
    client, dsn = api.client, api.pair.primary
    run_id = (await create(client, spec()))["id"]
    assert await column_names(dsn) == ["id", "email", "score", "legacy_status", "created_at"]

    await post_action(client, f"/v1/migrations/{run_id}/stages/expand", 202)
    await wait_for(client, run_id, "awaiting_deploy")
    assert "band" in await column_names(dsn)
    assert await wrong_bands(dsn) > 0  # nothing backfilled yet

    gate = await post_action(client, f"/v1/migrations/{run_id}/deploy-gate", 200)
    assert gate["status"] == "awaiting_backfill"
    assert gate["stage"] == "deploy_gate"

    await post_action(client, f"/v1/migrations/{run_id}/stages/backfill", 202)
    backfilled = (await wait_for(client, run_id, "awaiting_contract"))["migration"]
    assert backfilled["progress"]["backfill"]["rows_done"] >= 300
    assert await wrong_bands(dsn) == 0

    await post_action(client, f"/v1/migrations/{run_id}/stages/contract", 202)
    done = (await wait_for(client, run_id, "completed"))["migration"]
    assert done["allowed_actions"] == []
    assert done["error"] is None

    assert await column_names(dsn) == ["id", "email", "score", "created_at", "band"]
    assert await index_validity(dsn, "accounts_email_idx") is True
    assert await wrong_bands(dsn) == 0

    events = (await client.get(f"/v1/migrations/{run_id}/events")).json()["events"]
    ids = [event["id"] for event in events]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert events[0]["type"] == "created"
    transitions = [event for event in events if event["type"] == "transition"]
    assert [(e["data"]["from"], e["data"]["to"]) for e in transitions] == TRANSITIONS
    assert events[-1]["type"] == "transition" and events[-1]["data"]["to"] == "completed"
    finished = [event["stage"] for event in events if event["type"] == "stage_finished"]
    assert finished == ["expand", "backfill", "contract"]

    # `after` pages on: only the events after the given id.
    after = (await client.get(f"/v1/migrations/{run_id}/events", params={"after": ids[-2]})).json()
    assert [event["id"] for event in after["events"]] == [ids[-1]]

    listing = (await client.get("/v1/migrations")).json()["migrations"]
    assert [(m["id"], m["status"], m["plan"]) for m in listing] == [(run_id, "completed", None)]

    refused = assert_problem(await client.post(f"/v1/migrations/{run_id}/rollback"), 409)
    assert refused["current_state"] == "completed"
    assert refused["allowed_actions"] == []
    assert (await client.get(f"/v1/migrations/{run_id}")).json()["status"] == "completed"

    # Completion released the table: the next migration of `accounts` is accepted.
    tier = {"add_column": {"table": "accounts", "column": {"name": "tier", "type": "smallint"}}}
    await create(client, {"name": "accounts-tier", "target": "app", "operations": [tier]})


async def test_rollback_of_a_completed_migration_names_the_dropped_column(api: Api) -> None:
    client = api.client
    run_id = (await create(client, spec()))["id"]
    await drive_to_completion(client, run_id)
    refused = assert_problem(await client.post(f"/v1/migrations/{run_id}/rollback"), 409)
    assert refused["current_state"] == "completed"
    assert "legacy_status" in refused["detail"]


async def test_rollback_after_a_column_was_dropped_names_it(api: Api) -> None:
    """A contract that failed half-way (one column dropped, the next lock not granted) cannot be undone."""
    dsn = api.pair.primary
    async with connect(dsn) as conn:
        await conn.execute("CREATE TABLE ledger (id bigserial PRIMARY KEY, note text)")
    client = api.client
    body = {
        "name": "drop-two",
        "target": "app",
        "settings": {"lock_timeout_ms": 100, "ddl_attempts": 3},
        "operations": [
            {"drop_column": {"table": "accounts", "column": "legacy_status"}},
            {"drop_column": {"table": "ledger", "column": "note"}},
        ],
    }
    run_id = (await create(client, body))["id"]
    await post_action(client, f"/v1/migrations/{run_id}/stages/expand", 202)
    await wait_for(client, run_id, "awaiting_deploy")
    await post_action(client, f"/v1/migrations/{run_id}/deploy-gate", 200)
    await post_action(client, f"/v1/migrations/{run_id}/stages/backfill", 202)
    await wait_for(client, run_id, "awaiting_contract")

    async with connect(dsn) as blocker:
        transaction = blocker.transaction()
        await transaction.start()
        await blocker.fetch("SELECT * FROM ledger")  # ACCESS SHARE until the end of the transaction
        try:
            await post_action(client, f"/v1/migrations/{run_id}/stages/contract", 202)
            response = await client.get(
                f"/v1/migrations/{run_id}/wait", params={"until": "completed", "timeout": 60}
            )
            failed = response.json()["migration"]
            assert failed["status"] == "failed", failed
            assert "could not take its lock" in failed["error"]
        finally:
            await transaction.rollback()
    assert "legacy_status" not in await column_names(dsn)

    refused = assert_problem(await client.post(f"/v1/migrations/{run_id}/rollback"), 409)
    assert refused["current_state"] == "failed"
    assert "rollback" in refused["allowed_actions"]
    assert "accounts.legacy_status" in refused["detail"]
    assert (await client.get(f"/v1/migrations/{run_id}")).json()["status"] == "failed"


async def test_rollback_after_expand_removes_what_expand_added(api: Api) -> None:
    client, dsn = api.client, api.pair.primary
    run_id = (await create(client, spec()))["id"]
    await post_action(client, f"/v1/migrations/{run_id}/stages/expand", 202)
    await wait_for(client, run_id, "awaiting_deploy")
    assert "band" in await column_names(dsn)
    assert await index_validity(dsn, "accounts_email_idx") is True

    rolling = await post_action(client, f"/v1/migrations/{run_id}/rollback", 202)
    assert rolling["status"] == "rolling_back"
    assert rolling["stage"] == "rollback"
    await wait_for(client, run_id, "rolled_back")

    assert await column_names(dsn) == ["id", "email", "score", "legacy_status", "created_at"]
    assert await index_validity(dsn, "accounts_email_idx") is None
    events = (await client.get(f"/v1/migrations/{run_id}/events")).json()["events"]
    transitions = [(e["data"]["from"], e["data"]["to"]) for e in events if e["type"] == "transition"]
    assert transitions[-2:] == [("awaiting_deploy", "rolling_back"), ("rolling_back", "rolled_back")]

    # Rolled back is final, and the table is free for the next attempt.
    again = assert_problem(await client.post(f"/v1/migrations/{run_id}/rollback"), 409)
    assert again["current_state"] == "rolled_back"
    await create(client, spec())


# --- Slack -------------------------------------------------------------------------------------------


REPLY_TYPE = re.compile(r"^:[a-z_]+: \*([a-z_]+)\*")
FIRST_TS = "1700000001.000001"  # the recorder's answer to its first chat.postMessage
SaveRef = Callable[[str, dict[str, Any]], Awaitable[None]]


def slack_service(
    pair: PgPair, store: SqlStateStore, recorder: SlackRecorder, save_ref: SaveRef | None = None
) -> tuple[MigrationService, SlackNotifier]:
    """Wired as orchestrator/bootstrap.py does it, with the recorder standing in for slack.com."""
    notifier = build_notifier(
        bot_token="xoxb-test",
        channel="#deploys",
        webhook_url=None,
        base_url=recorder.api_url,
        save_ref=save_ref or store.set_notification_ref,
    )
    assert isinstance(notifier, SlackNotifier)
    targets = TargetRegistry({"app": ("postgres", lambda: PostgresTarget(pair.primary))})
    return MigrationService(store, targets, notifier), notifier


def state_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'state.db'}"


async def test_slack_gets_one_message_updated_in_place_and_stage_events_in_its_thread(
    pair: PgPair, tmp_path: Path, slack_recorder: SlackRecorder
) -> None:
    store = SqlStateStore(state_url(tmp_path))
    saved: list[tuple[str, dict[str, Any]]] = []

    async def save_ref(run_id: str, ref: dict[str, Any]) -> None:
        saved.append((run_id, ref))
        await store.set_notification_ref(run_id, ref)

    service, notifier = slack_service(pair, store, slack_recorder, save_ref)
    async with running_api(lambda: service) as client:
        run_id = (await create(client, spec()))["id"]
        await post_action(client, f"/v1/migrations/{run_id}/stages/expand", 202)
        await wait_for(client, run_id, "awaiting_deploy")
        await notifier.drain()

    posts = slack_recorder.calls("chat.postMessage")
    top_level = [post for post in posts if "thread_ts" not in post.body]
    replies = [post for post in posts if "thread_ts" in post.body]
    updates = slack_recorder.calls("chat.update")

    assert len(top_level) == 1, [post.body for post in top_level]
    [main] = top_level
    assert main.body["channel"] == "#deploys"
    assert main.headers["authorization"] == "Bearer xoxb-test"
    assert run_id in main.body["text"]
    assert saved == [(run_id, {"channel": "#deploys", "ts": FIRST_TS})]

    assert updates, "the main message must be kept up to date"
    assert all(update.body["ts"] == FIRST_TS and update.body["channel"] == "#deploys" for update in updates)
    assert "Status: *awaiting_deploy*" in updates[-1].body["text"]

    assert all(reply.body["thread_ts"] == FIRST_TS for reply in replies)
    reply_types = [REPLY_TYPE.match(reply.body["text"]) for reply in replies]
    assert all(reply_types), [reply.body["text"] for reply in replies]
    assert [match.group(1) for match in reply_types if match] == [
        "created",
        "transition",
        "stage_started",
        "stage_finished",
        "transition",
    ]
    assert "expand" in replies[2].body["text"] and "expand" in replies[3].body["text"]
    assert "expanding -&gt; awaiting_deploy" in replies[4].body["text"]
    assert all(request.status == 200 for request in slack_recorder.requests)


class SlackAnswersMidTransition(SqlStateStore):
    """Orders one interleaving that also happens by itself under load (seen in parallel runs): Slack's
    answer to the first post, and so the save of the message handle, lands after `start_stage` read the
    pending run and before it wrote the `expanding` one."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.writing = asyncio.Event()
        self.saved = asyncio.Event()

    async def update_run(self, run: Run, *, expected_status: RunStatus, event: MigrationEvent | None) -> Run:
        if expected_status is RunStatus.PENDING and run.status is RunStatus.EXPANDING:
            self.writing.set()
            await asyncio.wait_for(self.saved.wait(), timeout=10)
        return await super().update_run(run, expected_status=expected_status, event=event)

    async def set_notification_ref(self, run_id: str, ref: dict[str, Any]) -> None:
        await asyncio.wait_for(self.writing.wait(), timeout=10)
        await super().set_notification_ref(run_id, ref)
        self.saved.set()


async def test_the_slack_message_handle_survives_a_transition_and_a_restart(
    pair: PgPair, tmp_path: Path, slack_recorder: SlackRecorder
) -> None:
    store = SlackAnswersMidTransition(state_url(tmp_path))
    service, notifier = slack_service(pair, store, slack_recorder)
    async with running_api(lambda: service) as client:
        run_id = (await create(client, spec()))["id"]
        await post_action(client, f"/v1/migrations/{run_id}/stages/expand", 202)
        await wait_for(client, run_id, "awaiting_deploy")
        await notifier.drain()
        assert store.saved.is_set()
    assert len([p for p in slack_recorder.calls("chat.postMessage") if "thread_ts" not in p.body]) == 1

    # A restart (same state database, a new notifier): the next event must update the same message.
    restarted_store = SqlStateStore(state_url(tmp_path))
    restarted, restarted_notifier = slack_service(pair, restarted_store, slack_recorder)
    async with running_api(lambda: restarted) as client:
        stored = await restarted_store.get_run(run_id)
        assert stored.notification_ref == {"channel": "#deploys", "ts": FIRST_TS}
        await post_action(client, f"/v1/migrations/{run_id}/deploy-gate", 200)
        await restarted_notifier.drain()
    top_level = [p for p in slack_recorder.calls("chat.postMessage") if "thread_ts" not in p.body]
    assert len(top_level) == 1, [post.body["text"] for post in top_level]
