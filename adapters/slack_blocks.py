"""The migration's Slack message as Block Kit, built from slack_sdk's block models.

The buttons are the actions legal in the migration's current state, so a stale button is rare and
a pressed one is still checked by the service (a 409 there becomes a message to the user).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ConfirmObject,
    ContextBlock,
    MarkdownTextObject,
    PlainTextObject,
    SectionBlock,
)

from orchestrator.domain.run import Run
from orchestrator.domain.states import allowed_actions
from orchestrator.slack_actions import ACTION_PREFIX

ACTIONS_BLOCK_ID = "osctl-actions"
# (action, label, style): Slack shows at most a few buttons comfortably; these are the ones on-call
# and the release engineer need from a phone.
BUTTONS: tuple[tuple[str, str, str | None], ...] = (
    ("approve_deploy", "Approve deploy gate", "primary"),
    ("pause", "Pause", None),
    ("resume", "Resume", None),
    ("rollback", "Roll back", "danger"),
)


def _confirm_rollback(run: Run, scrub: Callable[[str], str]) -> ConfirmObject:
    return ConfirmObject(
        title="Roll back this migration?",
        text=MarkdownTextObject(
            text=scrub(f"Every step of `{run.id}` done so far is reversed on `{run.target}`, newest first.")
        ),
        confirm="Roll back",
        deny="Cancel",
        style="danger",
    )


def message_blocks(
    run: Run, text: str, last_action: str | None = None, scrub: Callable[[str], str] = str
) -> list[dict[str, Any]]:
    """`text` is the status as mrkdwn (also sent as the notification fallback), already scrubbed;
    `scrub` removes credentials from the other text the blocks carry."""
    blocks: list[Block] = [SectionBlock(text=MarkdownTextObject(text=text))]
    if last_action:
        blocks.append(ContextBlock(elements=[MarkdownTextObject(text=last_action)]))
    allowed = set(allowed_actions(run.status, stage=run.stage))
    buttons = [
        ButtonElement(
            text=PlainTextObject(text=label),
            action_id=ACTION_PREFIX + action,
            value=run.id,
            style=style,
            confirm=_confirm_rollback(run, scrub) if action == "rollback" else None,
        )
        for action, label, style in BUTTONS
        if action in allowed
    ]
    if buttons:
        blocks.append(ActionsBlock(block_id=ACTIONS_BLOCK_ID, elements=buttons))
    return [block.to_dict() for block in blocks]
