"""Slack interactivity as pure decisions: the v0 signature, the payload, who may press what."""

from __future__ import annotations

import json
from urllib.parse import urlencode

import pytest

from orchestrator.access import Scope
from orchestrator.slack_actions import (
    SlackRequestError,
    parse_interaction,
    parse_users,
    refusal,
    slack_signature,
    verify_request,
)

# Slack's documented example (api.slack.com/authentication/verifying-requests-from-slack).
DOC_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
DOC_TIMESTAMP = "1531420618"
DOC_BODY = (
    b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V"
    b"&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text="
    b"&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN"
    b"&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
)
DOC_SIGNATURE = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"


def headers(timestamp: str, signature: str) -> dict[str, str]:
    return {"X-Slack-Request-Timestamp": timestamp, "X-Slack-Signature": signature}


def test_the_signature_matches_slacks_documented_example() -> None:
    assert slack_signature(DOC_SECRET, DOC_TIMESTAMP, DOC_BODY) == DOC_SIGNATURE
    verify_request(DOC_SECRET, headers(DOC_TIMESTAMP, DOC_SIGNATURE), DOC_BODY, now=int(DOC_TIMESTAMP) + 299)


@pytest.mark.parametrize(
    ("hdrs", "body", "now", "reason"),
    [
        (headers(DOC_TIMESTAMP, DOC_SIGNATURE), DOC_BODY + b"x", int(DOC_TIMESTAMP), "does not match"),
        (headers(DOC_TIMESTAMP, DOC_SIGNATURE), DOC_BODY, int(DOC_TIMESTAMP) + 301, "more than 300 s"),
        (headers(DOC_TIMESTAMP, DOC_SIGNATURE), DOC_BODY, int(DOC_TIMESTAMP) - 301, "more than 300 s"),
        ({}, DOC_BODY, int(DOC_TIMESTAMP), "missing"),
        (headers("yesterday", DOC_SIGNATURE), DOC_BODY, int(DOC_TIMESTAMP), "not a Unix time"),
    ],
    ids=["altered-body", "too-old", "from-the-future", "unsigned", "bad-timestamp"],
)
def test_requests_that_are_not_provably_slacks_are_401(
    hdrs: dict[str, str], body: bytes, now: int, reason: str
) -> None:
    with pytest.raises(SlackRequestError, match=reason) as raised:
        verify_request(DOC_SECRET, hdrs, body, now=now)
    assert raised.value.status == 401


def payload(**changes: object) -> bytes:
    data: dict[str, object] = {
        "type": "block_actions",
        "user": {"id": "U1", "username": "alice"},
        "container": {"channel_id": "C1", "message_ts": "1.2"},
        "response_url": "https://hooks.slack.com/actions/T/1/x",
        "actions": [{"action_id": "osctl:pause", "value": "m-1"}],
    }
    data.update(changes)
    return urlencode({"payload": json.dumps(data)}).encode()


def test_a_button_press_parses_into_one_action() -> None:
    pressed = parse_interaction(payload())
    assert (pressed.action, pressed.run_id, pressed.user_id, pressed.channel, pressed.message_ts) == (
        "pause",
        "m-1",
        "U1",
        "C1",
        "1.2",
    )
    assert pressed.actor == "slack:U1 (alice)"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"payload=not-json", "not JSON"),
        (payload(type="view_submission"), "unsupported interaction type"),
        (payload(actions=[{"action_id": "osctl:drop_everything", "value": "m-1"}]), "unknown osctl action"),
        (payload(actions=[]), "exactly one osctl action"),
        (payload(user={}), "names no user"),
    ],
)
def test_payloads_we_do_not_understand_are_400(body: bytes, reason: str) -> None:
    with pytest.raises(SlackRequestError, match=reason) as raised:
        parse_interaction(body)
    assert raised.value.status == 400


def test_scopes_decide_who_may_press_what() -> None:
    users = parse_users({"U1": ["pipeline"], "U2": ["oncall"], "U3": ["admin"]})
    approve = parse_interaction(payload(actions=[{"action_id": "osctl:approve_deploy", "value": "m"}]))
    rollback = parse_interaction(payload(actions=[{"action_id": "osctl:rollback", "value": "m"}]))
    assert refusal(approve, users) is None
    reason = refusal(rollback, users)
    assert reason is not None and "may not roll back" in reason and "pipeline" in reason
    as_oncall = rollback.model_copy(update={"user_id": "U2"})
    assert refusal(as_oncall, users) is None
    assert refusal(approve.model_copy(update={"user_id": "U3"}), users) is None
    stranger = refusal(approve.model_copy(update={"user_id": "U9"}), users)
    assert stranger is not None and "no osctl scope" in stranger
    assert users["U3"] == frozenset({Scope.ADMIN})


@pytest.mark.parametrize(
    ("data", "reason"),
    [([], "map Slack user IDs"), ({"U1": []}, "non-empty list"), ({"U1": ["root"]}, "unknown scope")],
)
def test_bad_user_maps_name_the_entry(data: object, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_users(data)
