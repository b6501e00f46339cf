"""Emergency stop: everything on one target stops with one call, and says so.

In order: the target's throttle is held first (copy tools and backfills hold within a poll, even
while the pauses below are still being written), every running stage is paused at its next safe
point, and every held stage start (maintenance window, schedule) is dropped so nothing starts by
itself later. A rollback in progress is left to finish: it is the way out, and pausing it would
leave the schema half-way. Every affected migration gets an event naming who stopped it and why.

Lifting it is deliberate and per migration: DELETE /v1/targets/{t}/throttle, then resume each.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import structlog
from pydantic import BaseModel, Field

from orchestrator.domain.errors import ConflictError, IllegalTransitionError
from orchestrator.domain.run import EventType, Run
from orchestrator.domain.states import TERMINAL, RunStatus
from orchestrator.engine.events import EventSink
from orchestrator.engine.throttler import Throttler
from orchestrator.ports import ServiceStore, Throttle

log = structlog.get_logger(__name__)

PAUSABLE = frozenset({RunStatus.EXPANDING, RunStatus.BACKFILLING, RunStatus.CONTRACTING})


class Pauser(Protocol):
    events: EventSink

    async def pause(self, run_id: str, *, actor: str | None = None) -> Run: ...

    async def runs_in_status(self, statuses: tuple[RunStatus, ...]) -> list[Run]: ...


class EmergencyStopReport(BaseModel):
    target: str
    reason: str
    actor: str | None = None
    paused: list[str] = Field(default_factory=list, description="Migrations paused now.")
    held_starts_dropped: list[str] = Field(
        default_factory=list, description="Migrations whose held stage start was dropped."
    )
    left_alone: dict[str, str] = Field(
        default_factory=dict, description="Migrations on the target not stopped, and why."
    )
    throttle_hold: str | None = Field(
        default=None, description="The hold now on the target's throttle; null when there is no throttler."
    )
    note: str = ""


async def emergency_stop(
    service: Pauser,
    store: ServiceStore,
    throttle: Throttle | None,
    target: str,
    *,
    reason: str,
    actor: str | None,
    hold_seconds: float | None,
) -> EmergencyStopReport:
    by = f"emergency stop by {actor or 'an unnamed caller'}: {reason}"
    report = EmergencyStopReport(target=target, reason=reason, actor=actor)
    if isinstance(throttle, Throttler):
        throttle.hold(target, by, hold_seconds)
        report.throttle_hold = by
    else:
        report.note = (
            "no throttler is configured (OSCTL_SIGNALS), so there is no hold: a migration resumed or "
            "started now runs at once"
        )
    active = tuple(status for status in RunStatus if status not in TERMINAL)
    runs = [run for run in await service.runs_in_status(active) if run.target == target]
    for run in runs:
        await _stop_one(service, store, run, by, actor, report)
    log.warning(
        "emergency_stop",
        target=target,
        actor=actor,
        reason=reason,
        paused=report.paused,
        held_starts_dropped=report.held_starts_dropped,
        left_alone=sorted(report.left_alone),
    )
    return report


async def _stop_one(
    service: Pauser, store: ServiceStore, run: Run, by: str, actor: str | None, report: EmergencyStopReport
) -> None:
    done: list[str] = []
    if run.waiting is not None:
        try:
            await store.set_waiting(run.id, None, expected_status=run.status)
            done.append(f"dropped the held start of {run.waiting.stage.value}")
            report.held_starts_dropped.append(run.id)
        except ConflictError as error:
            report.left_alone[run.id] = f"moved on meanwhile: {error}"
    if run.status in PAUSABLE:
        try:
            await service.pause(run.id, actor=actor)
            done.append(f"paused while {run.status.value}")
            report.paused.append(run.id)
        except (IllegalTransitionError, ConflictError) as error:
            report.left_alone[run.id] = f"could not pause: {error}"
    elif run.status is RunStatus.ROLLING_BACK:
        report.left_alone[run.id] = "rolling back: left to finish (the rollback is the way out)"
    elif not done:
        report.left_alone[run.id] = f"{run.status.value}: nothing running"
    if done:
        await service.events.emit(
            run.id,
            EventType.EMERGENCY_STOP,
            f"{by} ({'; '.join(done)})",
            stage=run.stage,
            data={"reason": report.reason, "done": done, **({"actor": actor} if actor else {})},
        )


def summary(report: EmergencyStopReport) -> Sequence[str]:
    """Lines for the CLI."""
    lines = [f"emergency stop of {report.target}: {report.reason}"]
    lines.append(f"  throttle: {report.throttle_hold or report.note}")
    lines.extend(f"  paused: {run_id}" for run_id in report.paused)
    lines.extend(f"  held start dropped: {run_id}" for run_id in report.held_starts_dropped)
    lines.extend(f"  left alone: {run_id}: {why}" for run_id, why in sorted(report.left_alone.items()))
    if not (report.paused or report.held_starts_dropped or report.left_alone):
        lines.append("  no migration is active on this target")
    return lines
