"""Confirming a runbook that asks for it: what on-call sends, and what a refusal carries. Pure.

At 3 a.m. the safe path is: look at the dry run (`osctl runbook plan ID`), then confirm *that* plan
with its token. A token binds the confirmation to the plan it was shown for: if the run moved on
since (another step started, the runbook file changed), the token no longer matches and the
refusal carries the new plan to look at. `{"confirm": true}` confirms whatever the plan is now, for
a caller that has just been shown it (the CLI prompt, a Slack dialog).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from orchestrator.domain.errors import IllegalTransitionError
from orchestrator.runbooks.planner import RunbookPlan


class Confirmation(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    confirm: bool = Field(default=False, description="Confirm the runbook's plan as it is now.")
    token: str | None = Field(
        default=None,
        min_length=8,
        max_length=64,
        description="The dry run's token (GET /v1/migrations/{id}/runbook): confirm exactly that plan.",
    )


class ConfirmationRequiredError(IllegalTransitionError):
    """The runbook asks for a confirmation that was not given (or was given for another plan)."""

    def __init__(self, current: str, allowed: list[str], plan: RunbookPlan, reason: str) -> None:
        super().__init__(current, "rollback", allowed, reason)
        self.plan = plan


class RunbookRefusedError(IllegalTransitionError):
    """The runbook cannot run on this migration (a step without an inverse has run, say)."""

    def __init__(self, current: str, allowed: list[str], plan: RunbookPlan) -> None:
        super().__init__(current, "rollback", allowed, plan.refused or "")
        self.plan = plan


def how_confirmed(plan: RunbookPlan, confirmation: Confirmation | None) -> str | None:
    """`token` or `confirm` when the plan is confirmed, None when it needs no confirmation.

    Raises ValueError with the reason to refuse: no confirmation, or a token for another plan.
    """
    if confirmation is not None and confirmation.token is not None:
        if confirmation.token != plan.token:
            raise ValueError(
                f"the plan changed since the dry run that gave token {confirmation.token} (it is "
                f"{plan.token} now): look at it again and confirm that one"
            )
        return "token"
    if confirmation is not None and confirmation.confirm:
        return "confirm"
    if plan.confirmation_required:
        raise ValueError(
            f"runbook {plan.runbook} asks for a confirmation: {plan.confirmation_message} "
            f'Send {{"confirm": true}}, or {{"token": "{plan.token}"}} to confirm this very plan '
            "(osctl rollback ID --yes)"
        )
    return None
