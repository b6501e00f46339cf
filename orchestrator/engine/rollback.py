"""Which steps undo a run: the inverses of everything started, newest first. Pure."""

from __future__ import annotations

from collections.abc import Mapping

from orchestrator.domain.errors import IrreversibleError
from orchestrator.domain.plan import Plan, Step
from orchestrator.ports import StepCheckpoint


def rollback_steps(plan: Plan, checkpoints: Mapping[str, StepCheckpoint]) -> list[Step]:
    """Inverse steps for every forward step that was started, in reverse order.

    A step that was only started may have half-happened (an INVALID index, say); inverses are
    idempotent, so undoing it is always safe. Refuses before anything runs when a step without an
    inverse was started: even unfinished, a drop may have committed before its checkpoint and a
    backfill has overwritten the rows of its finished chunks, so only a human (or a runbook) can say
    what state the data is in.
    """
    touched = [step for step in plan.steps() if step.id in checkpoints]
    blocking = [step for step in touched if step.rollback is None and step.irreversible_reason]
    if blocking:
        reasons = "; ".join(
            f"{step.id} ({checkpoints[step.id].state}): {step.irreversible_reason}" for step in blocking
        )
        raise IrreversibleError(f"cannot roll back by reversing DDL: {reasons}")
    return [step.rollback for step in reversed(touched) if step.rollback is not None]
