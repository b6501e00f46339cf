"""POST /slack/interactivity: the buttons on a migration's Slack message.

Slack wants an answer within 3 seconds, and a rollback takes longer: the request is verified and
acknowledged at once, the action runs in the background through the same service calls as the API
(so the same state checks and audit trail apply), and anything the presser should know (refused,
not allowed now, failed) goes back to them through the interaction's `response_url`, visible only
to them. The migration's own message is updated by the notifier, naming who acted.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

import structlog
from fastapi import FastAPI, Request, Response
from slack_sdk.webhook.async_client import AsyncWebhookClient

from orchestrator.access import Scope
from orchestrator.api import problems
from orchestrator.domain.errors import OrchestratorError
from orchestrator.domain.run import Run
from orchestrator.runbooks.confirm import Confirmation
from orchestrator.service import MigrationService
from orchestrator.slack_actions import (
    VERBS,
    Interaction,
    SlackRequestError,
    parse_interaction,
    refusal,
    verify_request,
)

log = structlog.get_logger(__name__)

PATH = "/slack/interactivity"


@dataclass(frozen=True)
class SlackInteractivity:
    signing_secret: str
    users: Mapping[str, frozenset[Scope]] = field(default_factory=dict)


Act = Callable[[MigrationService, str, str], Awaitable[Run]]
ACTIONS: Mapping[str, Act] = {
    "approve_deploy": lambda service, run_id, actor: service.approve_deploy(run_id, actor=actor),
    "pause": lambda service, run_id, actor: service.pause(run_id, actor=actor),
    "resume": lambda service, run_id, actor: service.resume(run_id, actor=actor),
    # The button's own dialog ("Roll back this migration?") is the confirmation a runbook asks for.
    "rollback": lambda service, run_id, actor: service.rollback(
        run_id, actor=actor, confirmation=Confirmation(confirm=True)
    ),
}


async def _tell(interaction: Interaction, text: str) -> None:
    """An ephemeral answer to the presser only; never raises (Slack may be unreachable)."""
    if not interaction.response_url:
        return
    try:
        await AsyncWebhookClient(interaction.response_url, timeout=10).send(
            text=text, response_type="ephemeral", replace_original=False
        )
    except Exception as error:  # the action itself is recorded either way
        log.warning("slack_response_failed", migration_id=interaction.run_id, error=str(error))


async def handle(service: MigrationService, settings: SlackInteractivity, interaction: Interaction) -> None:
    reason = refusal(interaction, settings.users)
    if reason is not None:
        log.info("slack_action_refused", migration_id=interaction.run_id, user=interaction.user_id)
        await _tell(interaction, f":no_entry: {reason}")
        return
    try:
        run = await ACTIONS[interaction.action](service, interaction.run_id, interaction.actor)
    except OrchestratorError as error:
        log.info("slack_action_failed", migration_id=interaction.run_id, error=str(error))
        await _tell(
            interaction, f":warning: Could not {VERBS[interaction.action]} `{interaction.run_id}`: {error}"
        )
        return
    log.info("slack_action", migration_id=run.id, action=interaction.action, actor=interaction.actor)


def install(app: FastAPI, settings: SlackInteractivity | None) -> None:
    tasks: set[asyncio.Task[None]] = set()

    @app.post(PATH, include_in_schema=False)
    async def interactivity(request: Request) -> Response:
        if settings is None:
            return problems.problem(
                404, "Not Found", "Slack interactivity is off: set OSCTL_SLACK_SIGNING_SECRET to turn it on"
            )
        body = await request.body()
        try:
            verify_request(settings.signing_secret, request.headers, body, now=time.time())
            interaction = parse_interaction(body)
        except SlackRequestError as error:
            title = "Unauthorized" if error.status == 401 else "Bad Request"
            return problems.problem(error.status, title, error.reason)
        service: MigrationService = request.app.state.service
        task = asyncio.create_task(handle(service, settings, interaction))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        return Response(status_code=200)
