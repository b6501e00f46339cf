"""The buttons on the migration's Slack message, pressed the way Slack delivers a press: a signed
form POST to /slack/interactivity. The message itself comes from slack_sdk's block models, sent by the
real client to the local recorder; refusals go back through the interaction's response_url."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from adapters.statestore.store import SqlStateStore
from orchestrator.access import Scope
from orchestrator.api.slack import SlackInteractivity
from orchestrator.slack_actions import slack_signature
from tests.api.conftest import running_api
from tests.api.test_api import create, post_action, slack_service, spec, state_url, wait_for
from tests.support.pg import PgPair
from tests.support.slack_recorder import SlackRecorder

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
USERS = {
    "URELEASE": frozenset({Scope.PIPELINE}),
    "UONCALL": frozenset({Scope.ONCALL}),
    "UREADER": frozenset({Scope.READ}),
}
SETTINGS = SlackInteractivity(signing_secret=SECRET, users=USERS)


def press(action: str, run_id: str, user: str, response_url: str) -> bytes:
    payload = {
        "type": "block_actions",
        "user": {"id": user, "username": user.lower()},
        "container": {"type": "message", "channel_id": "C0DEPLOYS", "message_ts": "1700000001.000001"},
        "channel": {"id": "C0DEPLOYS"},
        "response_url": response_url,
        "actions": [{"action_id": f"osctl:{action}", "block_id": "osctl-actions", "value": run_id}],
    }
    return urlencode({"payload": json.dumps(payload)}).encode()


async def send(
    client: httpx.AsyncClient, body: bytes, *, secret: str = SECRET, sent_at: float | None = None
) -> httpx.Response:
    timestamp = str(int(time.time() if sent_at is None else sent_at))
    return await client.post(
        "/slack/interactivity",
        content=body,
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Slack-Request-Timestamp": timestamp,
            "X-Slack-Signature": slack_signature(secret, timestamp, body),
        },
    )


async def recorded(recorder: SlackRecorder, what: str, count: int = 1, timeout: float = 10.0) -> list[Any]:
    deadline = time.monotonic() + timeout
    while len(recorder.webhook_calls()) < count:
        assert time.monotonic() < deadline, f"no {what} reached the recorder"
        await asyncio.sleep(0.02)
    return recorder.webhook_calls()


def buttons(blocks: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    actions = [block for block in blocks if block["type"] == "actions"]
    return {element["action_id"]: element for block in actions for element in block["elements"]}


@pytest.fixture
def slack_app(pair: PgPair, tmp_path: Path, slack_recorder: SlackRecorder) -> Any:
    store = SqlStateStore(state_url(tmp_path))
    service, notifier = slack_service(pair, store, slack_recorder)
    return service, notifier


async def test_the_approve_button_moves_the_migration_on_and_the_message_names_who_pressed_it(
    slack_app: Any, slack_recorder: SlackRecorder
) -> None:
    service, notifier = slack_app
    async with running_api(lambda: service, slack=SETTINGS) as client:
        run_id = (await create(client, spec()))["id"]
        await post_action(client, f"/v1/migrations/{run_id}/stages/expand", 202)
        await wait_for(client, run_id, "awaiting_deploy")
        await notifier.drain()

        # The message's buttons are the actions legal now, built from slack_sdk's block models.
        latest = slack_recorder.calls("chat.update")[-1]
        offered = buttons(latest.body["blocks"])
        assert set(offered) == {"osctl:approve_deploy", "osctl:rollback"}
        assert offered["osctl:approve_deploy"]["value"] == run_id
        assert offered["osctl:rollback"]["style"] == "danger"
        assert offered["osctl:rollback"]["confirm"]["confirm"]["text"] == "Roll back"

        response = await send(client, press("approve_deploy", run_id, "URELEASE", slack_recorder.webhook_url))
        assert response.status_code == 200, response.text
        await wait_for(client, run_id, "awaiting_backfill")
        await notifier.drain()

        events = (await client.get(f"/v1/migrations/{run_id}/events")).json()["events"]
        approvals = [
            e for e in events if e["type"] == "transition" and e["data"]["action"] == "approve_deploy"
        ]
        assert [e["data"]["actor"] for e in approvals] == ["slack:URELEASE (urelease)"]
        latest = slack_recorder.calls("chat.update")[-1]
        context = [b for b in latest.body["blocks"] if b["type"] == "context"]
        assert "slack:URELEASE" in json.dumps(context)
        assert "osctl:approve_deploy" not in buttons(latest.body["blocks"])
    assert slack_recorder.webhook_calls() == []  # nothing to tell the presser: it worked


async def test_a_user_without_the_scope_is_refused_and_told_why(
    slack_app: Any, slack_recorder: SlackRecorder
) -> None:
    service, _ = slack_app
    async with running_api(lambda: service, slack=SETTINGS) as client:
        run_id = (await create(client, spec()))["id"]
        await post_action(client, f"/v1/migrations/{run_id}/stages/expand", 202)
        await wait_for(client, run_id, "awaiting_deploy")

        response = await send(client, press("rollback", run_id, "URELEASE", slack_recorder.webhook_url))
        assert response.status_code == 200  # acknowledged; the refusal goes to the presser only
        [told] = await recorded(slack_recorder, "refusal")
        assert told.body["response_type"] == "ephemeral"
        assert told.body["replace_original"] is False
        assert "may not roll back" in told.body["text"] and "`oncall`" in told.body["text"]
        view = (await client.get(f"/v1/migrations/{run_id}")).json()
        assert view["status"] == "awaiting_deploy"


async def test_an_oncall_rollback_press_rolls_back(slack_app: Any, slack_recorder: SlackRecorder) -> None:
    service, _ = slack_app
    async with running_api(lambda: service, slack=SETTINGS) as client:
        run_id = (await create(client, spec()))["id"]
        await post_action(client, f"/v1/migrations/{run_id}/stages/expand", 202)
        await wait_for(client, run_id, "awaiting_deploy")
        response = await send(client, press("rollback", run_id, "UONCALL", slack_recorder.webhook_url))
        assert response.status_code == 200
        await wait_for(client, run_id, "rolled_back")
        # Pressed again on a stale message: not allowed any more, and the presser is told so.
        await send(client, press("rollback", run_id, "UONCALL", slack_recorder.webhook_url))
        [told] = await recorded(slack_recorder, "not-allowed message")
        assert "Could not roll back" in told.body["text"]


@pytest.mark.parametrize(
    ("secret", "age", "reason"),
    [
        ("not-the-signing-secret", 0, "signature does not match"),
        (SECRET, 301, "more than 300 s"),
    ],
    ids=["bad-signature", "old-timestamp"],
)
async def test_unsigned_or_replayed_presses_are_401_and_change_nothing(
    slack_app: Any, slack_recorder: SlackRecorder, secret: str, age: int, reason: str
) -> None:
    service, _ = slack_app
    async with running_api(lambda: service, slack=SETTINGS) as client:
        run_id = (await create(client, spec()))["id"]
        await post_action(client, f"/v1/migrations/{run_id}/stages/expand", 202)
        await wait_for(client, run_id, "awaiting_deploy")
        body = press("approve_deploy", run_id, "URELEASE", slack_recorder.webhook_url)
        response = await send(client, body, secret=secret, sent_at=time.time() - age)
        assert response.status_code == 401
        assert reason in response.json()["detail"]
        view = (await client.get(f"/v1/migrations/{run_id}")).json()
        assert view["status"] == "awaiting_deploy"
    assert slack_recorder.webhook_calls() == []
