"""Outgoing webhooks: every stage event, signed, delivered to a local receiver that checks them."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from prometheus_client import REGISTRY

from adapters.webhooks import SignedWebhookNotifier
from orchestrator.webhook_signature import SignatureError, verify
from tests.api.conftest import running_api
from tests.api.test_api import create, post_action, spec, wait_for
from tests.support.pg import PgPair, build_service

pytestmark = pytest.mark.integration

SECRET = "whsec-" + "x" * 24


@dataclass
class Receiver:
    url: str
    deliveries: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    refuse_next: int = 0  # answer 503 to this many requests first, to see retries
    refused: list[str] = field(default_factory=list)  # delivery ids answered 503


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    app = web.Application()
    state = Receiver(url="")

    async def handle(request: web.Request) -> web.Response:
        body = await request.read()
        headers = dict(request.headers)
        if state.refuse_next > 0:
            state.refuse_next -= 1
            state.refused.append(headers["Osctl-Delivery"])
            return web.Response(status=503)
        # What a receiver does first: refuse anything not signed by us, or too old.
        try:
            verify(SECRET, headers, body, now=time.time())
        except SignatureError as error:
            return web.Response(status=401, text=str(error))
        state.deliveries.append((headers, body))
        return web.Response(status=204)

    app.router.add_post("/hooks/osctl", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    state.url = f"http://127.0.0.1:{port}/hooks/osctl"
    try:
        yield state
    finally:
        await runner.cleanup()


async def test_stage_events_arrive_signed_and_a_receiver_can_refuse_forgeries_and_replays(
    pair: PgPair, tmp_path: Path, receiver: Receiver
) -> None:
    receiver.refuse_next = 1
    webhooks = SignedWebhookNotifier([receiver.url], SECRET, backoff_seconds=0.01)
    async with running_api(lambda: build_service(pair, tmp_path, notifier=webhooks)) as client:
        run_id = str((await create(client, spec()))["id"])
        await post_action(client, f"/v1/migrations/{run_id}/stages/expand", 202)
        await wait_for(client, run_id, "awaiting_deploy")
        await webhooks.drain()

    bodies = [json.loads(body) for _, body in receiver.deliveries]
    kinds = [(body["event"]["type"], body["event"]["data"].get("to")) for body in bodies]
    assert kinds == [
        ("created", None),
        ("transition", "expanding"),
        ("stage_started", None),
        ("stage_finished", None),
        ("transition", "awaiting_deploy"),
    ]
    assert all(body["migration"]["id"] == run_id for body in bodies)
    assert bodies[-1]["migration"]["status"] == "awaiting_deploy"
    headers = [headers for headers, _ in receiver.deliveries]
    assert [h["Osctl-Event"] for h in headers] == [kind for kind, _ in kinds]
    # The refused first attempt was retried under the same delivery id.
    assert receiver.refused == [headers[0]["Osctl-Delivery"]]
    assert len({h["Osctl-Delivery"] for h in headers}) == len(headers)

    first_headers, first_body = receiver.deliveries[0]
    with pytest.raises(SignatureError, match="does not match"):
        verify(SECRET, first_headers, first_body.replace(run_id.encode(), b"forged"), now=time.time())
    with pytest.raises(SignatureError, match="tolerance"):
        verify(SECRET, first_headers, first_body, now=time.time() + 600)  # replayed ten minutes later


async def test_an_unreachable_receiver_never_holds_the_migration_up(pair: PgPair, tmp_path: Path) -> None:
    failed_before = REGISTRY.get_sample_value("osctl_webhook_deliveries_total", {"outcome": "failed"}) or 0.0
    webhooks = SignedWebhookNotifier(["http://127.0.0.1:9/nowhere"], SECRET, backoff_seconds=0.01)
    async with running_api(lambda: build_service(pair, tmp_path, notifier=webhooks)) as client:
        run_id = str((await create(client, spec()))["id"])
        await post_action(client, f"/v1/migrations/{run_id}/stages/expand", 202)
        result: dict[str, Any] = await wait_for(client, run_id, "awaiting_deploy")
        assert result["reached"]
        await webhooks.drain()
    failed = REGISTRY.get_sample_value("osctl_webhook_deliveries_total", {"outcome": "failed"})
    assert failed == failed_before + 5  # each stage event given up on, after its retries
