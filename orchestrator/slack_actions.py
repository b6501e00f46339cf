"""Slack's buttons, as pure decisions: request signatures, the payload, and who may press what.

Slack signs each interactivity request with the app's signing secret: `X-Slack-Signature` is
`v0=` + HMAC-SHA256 over `v0:{X-Slack-Request-Timestamp}:{raw body}`. A request older than five
minutes is refused, so a captured one cannot be replayed. Slack users map to the API's scopes
(`OSCTL_SLACK_USERS`): approving the gate needs `pipeline`, pause/resume/roll back need `oncall`,
exactly what the same call needs through the API.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs

from pydantic import BaseModel, ConfigDict

from orchestrator.access import Scope, permits

SIGNATURE_HEADER = "X-Slack-Signature"
TIMESTAMP_HEADER = "X-Slack-Request-Timestamp"
MAX_AGE_SECONDS = 300
ACTION_PREFIX = "osctl:"

# Button action -> the scopes that allow it (the API's own rule for the same call).
REQUIRED_SCOPES: Mapping[str, frozenset[Scope]] = {
    "approve_deploy": frozenset({Scope.PIPELINE}),
    "pause": frozenset({Scope.ONCALL}),
    "resume": frozenset({Scope.ONCALL}),
    "rollback": frozenset({Scope.ONCALL}),
}
VERBS = {
    "approve_deploy": "approve the deploy gate",
    "pause": "pause",
    "resume": "resume",
    "rollback": "roll back",
}


class SlackRequestError(Exception):
    """Not from Slack, altered, replayed, or not a payload we understand; `status` is the HTTP answer."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def slack_signature(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), b"v0:" + timestamp.encode() + b":" + body, hashlib.sha256)
    return "v0=" + mac.hexdigest()


def verify_request(secret: str, headers: Mapping[str, str], body: bytes, *, now: float) -> None:
    lowered = {name.lower(): value for name, value in headers.items()}
    timestamp = lowered.get(TIMESTAMP_HEADER.lower(), "")
    signature = lowered.get(SIGNATURE_HEADER.lower(), "")
    if not timestamp or not signature:
        raise SlackRequestError(401, f"missing {SIGNATURE_HEADER} or {TIMESTAMP_HEADER}")
    try:
        sent = int(timestamp)
    except ValueError as error:
        raise SlackRequestError(401, f"{TIMESTAMP_HEADER} is not a Unix time") from error
    if abs(now - sent) > MAX_AGE_SECONDS:
        raise SlackRequestError(401, f"request timestamp is more than {MAX_AGE_SECONDS} s from now")
    if not hmac.compare_digest(slack_signature(secret, timestamp, body), signature):
        raise SlackRequestError(401, "signature does not match the signing secret")


class Interaction(BaseModel):
    """One button press."""

    model_config = ConfigDict(frozen=True)

    action: str  # approve_deploy, pause, resume, rollback
    run_id: str
    user_id: str
    user_name: str
    channel: str | None = None
    message_ts: str | None = None
    response_url: str | None = None

    @property
    def actor(self) -> str:
        return f"slack:{self.user_id} ({self.user_name})" if self.user_name else f"slack:{self.user_id}"


def parse_interaction(body: bytes) -> Interaction:
    """A `block_actions` payload (form field `payload`, JSON) to the one osctl action it carries."""
    fields = parse_qs(body.decode("utf-8", errors="replace"))
    raw = fields.get("payload", [""])[-1]
    try:
        payload: dict[str, Any] = json.loads(raw)
    except json.JSONDecodeError as error:
        raise SlackRequestError(400, "the form field 'payload' is not JSON") from error
    if payload.get("type") != "block_actions":
        raise SlackRequestError(400, f"unsupported interaction type {payload.get('type')!r}")
    actions = [
        a for a in payload.get("actions") or [] if str(a.get("action_id", "")).startswith(ACTION_PREFIX)
    ]
    if len(actions) != 1:
        raise SlackRequestError(400, "expected exactly one osctl action in 'actions'")
    action = str(actions[0]["action_id"]).removeprefix(ACTION_PREFIX)
    if action not in REQUIRED_SCOPES:
        raise SlackRequestError(400, f"unknown osctl action {action!r}")
    user = payload.get("user") or {}
    if not user.get("id"):
        raise SlackRequestError(400, "the payload names no user")
    channel = (payload.get("channel") or {}).get("id") or (payload.get("container") or {}).get("channel_id")
    message_ts = (payload.get("container") or {}).get("message_ts") or (payload.get("message") or {}).get(
        "ts"
    )
    return Interaction(
        action=action,
        run_id=str(actions[0].get("value", "")),
        user_id=str(user["id"]),
        user_name=str(user.get("username") or user.get("name") or ""),
        channel=channel,
        message_ts=message_ts,
        response_url=payload.get("response_url"),
    )


def refusal(interaction: Interaction, users: Mapping[str, frozenset[Scope]]) -> str | None:
    """None when the user may press this button; otherwise the reason, as Slack shows it to them."""
    granted = users.get(interaction.user_id, frozenset())
    needed = REQUIRED_SCOPES[interaction.action]
    if permits(granted, needed):
        return None
    held = ", ".join(sorted(scope.value for scope in granted)) or "no osctl scope"
    return (
        f"<@{interaction.user_id}> may not {VERBS[interaction.action]} `{interaction.run_id}`: that needs "
        f"the `{'` or `'.join(sorted(s.value for s in needed))}` scope, and this Slack user has {held}. "
        "Ask an osctl admin to add it to OSCTL_SLACK_USERS."
    )


def parse_users(data: Any) -> dict[str, frozenset[Scope]]:
    """`{"U012ABC": ["oncall"], "U034DEF": ["pipeline", "oncall"]}`; ValueError naming the entry."""
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError("OSCTL_SLACK_USERS must map Slack user IDs to lists of scopes")
    users: dict[str, frozenset[Scope]] = {}
    known = ", ".join(scope.value for scope in Scope)
    for user_id, scopes in data.items():
        if not isinstance(scopes, list) or not scopes:
            raise ValueError(f"OSCTL_SLACK_USERS.{user_id}: give a non-empty list of scopes ({known})")
        try:
            users[str(user_id)] = frozenset(Scope(str(scope)) for scope in scopes)
        except ValueError as error:
            raise ValueError(
                f"OSCTL_SLACK_USERS.{user_id}: unknown scope in {scopes!r}; known: {known}"
            ) from error
    return users
