"""Bearer tokens with scopes, the audit trail, and Idempotency-Key on POSTs."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest
from structlog.testing import capture_logs

from orchestrator.access import TokenBook, hash_token, new_token, parse_tokens
from tests.api.conftest import running_api
from tests.api.test_api import assert_problem, create, spec, stored_ids, wait_for
from tests.support.pg import PgPair, build_service

pytestmark = pytest.mark.integration

SCOPES = {"release": ["pipeline"], "pager": ["oncall"], "viewer": ["read"], "root": ["admin"]}


@pytest.fixture
def tokens() -> dict[str, str]:
    return {name: new_token() for name in SCOPES}


def book(tokens: dict[str, str]) -> TokenBook:
    return TokenBook(
        parse_tokens(
            {name: {"hash": hash_token(token), "scopes": SCOPES[name]} for name, token in tokens.items()}
        )
    )


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_no_token_is_401_and_a_wrong_scope_403_both_as_problems(
    pair: PgPair, tmp_path: Path, tokens: dict[str, str]
) -> None:
    async with running_api(lambda: build_service(pair, tmp_path), tokens=book(tokens)) as client:
        for headers in ({}, bearer("osctl_not-a-token"), {"Authorization": f"Basic {tokens['root']}"}):
            refused = await client.get("/v1/migrations", headers=headers)
            assert_problem(refused, 401)
            assert refused.headers["www-authenticate"].startswith("Bearer")
        assert_problem(await client.post("/v1/migrations", json=spec()), 401)

        # Probes, scrapes and the API description need no token.
        for path in ("/healthz", "/readyz", "/metrics", "/openapi.json"):
            assert (await client.get(path)).status_code == 200, path

        viewer, release, pager = bearer(tokens["viewer"]), bearer(tokens["release"]), bearer(tokens["pager"])
        assert (await client.get("/v1/migrations", headers=viewer)).status_code == 200
        forbidden = assert_problem(await client.post("/v1/migrations", json=spec(), headers=viewer), 403)
        assert forbidden["required_scopes"] == ["pipeline"]
        assert "viewer" in forbidden["detail"]
        assert_problem(await client.post("/v1/migrations", json=spec(), headers=pager), 403)
        assert (await client.get("/v1/migrations", headers=viewer)).json()["migrations"] == []

        created = await client.post("/v1/migrations", json=spec(), headers=release)
        assert created.status_code == 201, created.text
        run_id = created.json()["migration"]["id"]
        base = f"/v1/migrations/{run_id}"
        # The pipeline advances stages; it cannot pull the on-call levers, and on-call cannot advance.
        assert_problem(await client.post(f"{base}/cancel", headers=release), 403)
        assert_problem(await client.post(f"{base}/stages/expand", headers=pager), 403)
        assert_problem(await client.post(f"{base}/stages/expand", headers=viewer), 403)
        assert (await client.post(f"{base}/stages/expand", headers=release)).status_code == 202
        waited = await client.get(f"{base}/wait", params={"until": "awaiting_deploy"}, headers=release)
        assert waited.json()["reached"], waited.text
        assert_problem(await client.post(f"{base}/deploy-gate", headers=pager), 403)
        assert_problem(await client.post(f"{base}/rollback", headers=release), 403)
        # Both may tune; a reader may not.
        for headers, status in ((release, 200), (pager, 200), (viewer, 403)):
            tuned = await client.patch(f"{base}/backfill", json={"pause_ms": 5}, headers=headers)
            assert tuned.status_code == status, tuned.text
        assert (await client.post(f"{base}/rollback", headers=pager)).status_code == 202
        rolled = await client.get(f"{base}/wait", params={"until": "rolled_back"}, headers=pager)
        assert rolled.json()["reached"], rolled.text

        # Admin may do anything.
        admin = bearer(tokens["root"])
        again = await client.post("/v1/migrations", json=spec(), headers=admin)
        assert again.status_code == 201, again.text
        assert (
            await client.post(f"/v1/migrations/{again.json()['migration']['id']}/cancel", headers=admin)
        ).status_code == 200

        events = (await client.get(f"{base}/events", headers=viewer)).json()["events"]
    actors = [(event["type"], event["data"].get("action"), event["data"].get("actor")) for event in events]
    assert ("created", None, "release") in actors
    assert ("transition", "expand", "release") in actors
    assert ("transition", "rollback", "pager") in actors
    tuned_by = [event["data"].get("actor") for event in events if event["type"] == "tuned"]
    assert tuned_by == ["release", "pager"]


async def test_every_mutating_call_is_audited_with_the_callers_name(
    pair: PgPair, tmp_path: Path, tokens: dict[str, str]
) -> None:
    async with running_api(lambda: build_service(pair, tmp_path), tokens=book(tokens)) as client:
        with capture_logs() as logs:
            await client.post("/v1/migrations", json=spec(), headers=bearer(tokens["viewer"]))
            created = await client.post("/v1/migrations", json=spec(), headers=bearer(tokens["release"]))
            await client.get("/v1/migrations", headers=bearer(tokens["viewer"]))
    audit = [
        (log["actor"], log["method"], log["path"], log["status"])
        for log in logs
        if log["event"] == "api_audit"
    ]
    assert audit == [
        ("viewer", "POST", "/v1/migrations", 403),
        ("release", "POST", "/v1/migrations", created.status_code),
    ]


async def test_without_tokens_the_api_is_open_and_says_so(pair: PgPair, tmp_path: Path) -> None:
    with capture_logs() as logs:
        async with running_api(lambda: build_service(pair, tmp_path)) as client:
            run = await create(client, spec())
            events = (await client.get(f"/v1/migrations/{run['id']}/events")).json()["events"]
    assert any(log["event"] == "api_open" and log["log_level"] == "warning" for log in logs)
    assert events[0]["data"]["actor"] == "anonymous"


# --- Idempotency-Key ---------------------------------------------------------------------------------


async def test_create_needs_a_key_and_a_retry_gets_the_first_answer(pair: PgPair, tmp_path: Path) -> None:
    async with running_api(lambda: build_service(pair, tmp_path), keys=False) as client:
        missing = assert_problem(await client.post("/v1/migrations", json=spec()), 400)
        assert "Idempotency-Key" in missing["detail"]
        assert await stored_ids(client) == []

        key = {"Idempotency-Key": "create-accounts-band-1"}
        first = await client.post("/v1/migrations", json=spec(), headers=key)
        retry = await client.post("/v1/migrations", json=spec(), headers=key)
        assert first.status_code == retry.status_code == 201
        assert retry.json() == first.json()
        assert retry.headers["location"] == first.headers["location"]
        assert retry.headers["idempotent-replayed"] == "true"
        assert "idempotent-replayed" not in first.headers
        assert await stored_ids(client) == [first.json()["migration"]["id"]]

        other = assert_problem(await client.post("/v1/migrations", json=spec(name="other"), headers=key), 422)
        assert "another request" in other["detail"]
        assert await stored_ids(client) == [first.json()["migration"]["id"]]

        # A refused request is an answer too: replayed, not re-run.
        conflict_key = {"Idempotency-Key": "second-on-same-table"}
        refused = await client.post("/v1/migrations", json=spec(name="again"), headers=conflict_key)
        assert_problem(refused, 409)
        replayed = await client.post("/v1/migrations", json=spec(name="again"), headers=conflict_key)
        assert (replayed.status_code, replayed.json()) == (409, refused.json())


async def test_a_retried_stage_start_is_answered_not_refused(pair: PgPair, tmp_path: Path) -> None:
    async with running_api(lambda: build_service(pair, tmp_path), keys=False) as client:
        run_id = (await client.post("/v1/migrations", json=spec(), headers={"Idempotency-Key": "c"})).json()[
            "migration"
        ]["id"]
        key = {"Idempotency-Key": "expand-once"}
        started = await client.post(f"/v1/migrations/{run_id}/stages/expand", headers=key)
        assert started.status_code == 202, started.text
        await wait_for(client, run_id, "awaiting_deploy")
        retried = await client.post(f"/v1/migrations/{run_id}/stages/expand", headers=key)
        assert (retried.status_code, retried.json()) == (202, started.json())
        # Without the key the same call is a new request, and a late one: 409.
        assert_problem(await client.post(f"/v1/migrations/{run_id}/stages/expand"), 409)
        transitions = [
            e
            for e in (await client.get(f"/v1/migrations/{run_id}/events")).json()["events"]
            if e["type"] == "transition"
        ]
        assert [e["data"]["to"] for e in transitions] == ["expanding", "awaiting_deploy"]


async def test_keys_belong_to_their_caller_and_concurrent_retries_create_once(
    pair: PgPair, tmp_path: Path, tokens: dict[str, str]
) -> None:
    async with running_api(lambda: build_service(pair, tmp_path), tokens=book(tokens), keys=False) as client:

        async def post(token: str, body: dict[str, Any]) -> httpx.Response:
            headers = {**bearer(token), "Idempotency-Key": "shared-key"}
            return await client.post("/v1/migrations", json=body, headers=headers)

        answers = await asyncio.gather(*(post(tokens["release"], spec()) for _ in range(4)))
        assert {answer.status_code for answer in answers} <= {201, 409}
        assert [answer.status_code for answer in answers].count(201) >= 1
        ids = {answer.json()["migration"]["id"] for answer in answers if answer.status_code == 201}
        assert len(ids) == 1
        # Another caller's identical key is theirs: their request runs (and meets the active table).
        assert_problem(await post(tokens["root"], spec(name="accounts-band-2")), 409)
        listing = await client.get("/v1/migrations", headers=bearer(tokens["viewer"]))
        assert [m["id"] for m in listing.json()["migrations"]] == list(ids)
