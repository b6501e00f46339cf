"""The runner's side of a long copy step: the stop signal and the throttle it consults, and where its
progress goes (the run's progress, shown like a backfill's; an event on each phase or throttle change
and every few seconds of progress)."""

from __future__ import annotations

import re
from typing import Any

from orchestrator.domain.plan import Stage
from orchestrator.domain.run import BackfillProgress, EventType, Run
from orchestrator.engine.control import StopSignal
from orchestrator.engine.events import EventSink
from orchestrator.ports import Clock, CopyStatus, StateStore, Throttle

PROGRESS_EVENT_SECONDS = 10.0
_FIGURES = re.compile(r"\d+(\.\d+)?")
PROGRESS_WRITE_SECONDS = 1.0


class RunStepControls:
    """StepControls for one run's stage: answers at once, writes progress at most once a second."""

    def __init__(
        self,
        run: Run,
        stage: Stage,
        store: StateStore,
        events: EventSink,
        clock: Clock,
        stop: StopSignal,
        throttle: Throttle | None,
    ) -> None:
        self._run = run
        self._stage = stage
        self._store = store
        self._events = events
        self._clock = clock
        self._stop = stop
        self._throttle = throttle
        self._last: dict[str, tuple[str, str | None]] = {}  # step -> (phase, waiting) last reported
        self._written = float("-inf")
        self._evented = float("-inf")

    def stop_reason(self) -> str | None:
        if not self._stop.requested:
            return None
        return self._stop.reason or "stop requested"

    def hold_reason(self) -> str | None:
        return self._throttle.reason(self._run.target) if self._throttle is not None else None

    async def report(self, step_id: str, status: CopyStatus) -> None:
        now = self._clock.now()
        previous = self._last.get(step_id)
        # A hold starting, ending or changing cause is worth an event; its changing figures ("lag 4 s",
        # "lag 3 s") are chatter that only updates the progress.
        turned = previous is not None and _cause(previous[1]) != _cause(status.waiting)
        changed = previous is None or previous[0] != status.phase or turned
        self._last[step_id] = (status.phase, status.waiting)
        if changed or now - self._written >= PROGRESS_WRITE_SECONDS:
            self._written = now
            progress = (await self._store.get_run(self._run.id)).progress
            copy = BackfillProgress(
                step_id=step_id,
                rows_done=status.rows_done or 0,
                rows_total_estimate=status.rows_total or 0,
                eta_seconds=status.eta_seconds,
                throttled=status.waiting,
            )
            await self._store.set_progress(self._run.id, progress.model_copy(update={"backfill": copy}))
        data: dict[str, Any] = {
            "tool": status.tool,
            "phase": status.phase,
            "percent": status.percent,
            "eta_seconds": status.eta_seconds,
            "waiting": status.waiting,
        }
        if turned:
            kind = EventType.THROTTLED if status.waiting else EventType.UNTHROTTLED
            message = f"copy holding: {status.waiting}" if status.waiting else "copy resumed"
            await self._events.emit(
                self._run.id, kind, message, stage=self._stage, step_id=step_id, data=data
            )
        elif (
            previous is None or previous[0] != status.phase
        ) or now - self._evented >= PROGRESS_EVENT_SECONDS:
            self._evented = now
            percent = f" {status.percent:.1f}%" if status.percent is not None else ""
            await self._events.emit(
                self._run.id,
                EventType.COPY_PROGRESS,
                f"{status.tool} {status.phase}{percent}",
                stage=self._stage,
                step_id=step_id,
                data=data,
            )

    async def note(self, step_id: str, message: str, data: dict[str, Any]) -> None:
        await self._events.emit(
            self._run.id, EventType.COPY_PROGRESS, message, stage=self._stage, step_id=step_id, data=data
        )


def _cause(waiting: str | None) -> str | None:
    return _FIGURES.sub("#", waiting) if waiting is not None else None
