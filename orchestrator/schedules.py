"""The leader's timers (APScheduler 3.x, time triggers only): window openings, scheduled stage starts,
housekeeping.

Nothing here is the record: held stages live in the state store (`Run.waiting`), and each new leader
builds a fresh scheduler from it, so a timer lost with a dead leader costs nothing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime

import structlog
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from orchestrator.windows import MaintenanceWindow

log = structlog.get_logger(__name__)

Callback = Callable[[str], Awaitable[None]]


class StageScheduler:
    def __init__(self, *, on_due: Callback, on_window_open: Callback) -> None:
        self._on_due = on_due
        self._on_window_open = on_window_open
        self._scheduler = AsyncIOScheduler(
            timezone="UTC",
            # However late a timer fires (a busy loop, a leader that just took over), it still fires:
            # the callbacks re-decide from the store, so a late call is never a wrong one.
            job_defaults={"misfire_grace_time": None, "coalesce": True, "max_instances": 1},
        )

    def start(
        self,
        windows: Mapping[str, Sequence[MaintenanceWindow]],
        housekeeping: Sequence[tuple[str, float, Callable[[], Awaitable[None]]]] = (),
    ) -> None:
        for target, target_windows in windows.items():
            for index, window in enumerate(target_windows):
                self._scheduler.add_job(
                    self._on_window_open,
                    window.trigger,
                    args=[target],
                    id=f"window:{target}:{index}",
                    name=f"maintenance window of {target}: {window.describe()}",
                )
        for name, seconds, job in housekeeping:
            self._scheduler.add_job(
                job, IntervalTrigger(seconds=seconds), id=f"housekeeping:{name}", name=name
            )
        self._scheduler.start()

    def start_at(self, run_id: str, when: datetime) -> None:
        """Call `on_due(run_id)` at `when` (at once if it has passed); replaces an earlier timer."""
        self._scheduler.add_job(
            self._on_due,
            DateTrigger(run_date=when),
            args=[run_id],
            id=_start_id(run_id),
            name=f"scheduled start of {run_id}",
            replace_existing=True,
        )

    def has_start(self, run_id: str) -> bool:
        return self._scheduler.get_job(_start_id(run_id)) is not None

    def cancel_start(self, run_id: str) -> None:
        if self.has_start(run_id):
            self._scheduler.remove_job(_start_id(run_id))

    def shutdown(self) -> None:
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)


def _start_id(run_id: str) -> str:
    return f"start:{run_id}"
