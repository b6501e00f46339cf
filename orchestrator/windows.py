"""Maintenance windows and the decision whether a stage may start now. Pure: time is an argument.

A window opens on a cron schedule and stays open for a duration: `0 2 * * mon-fri for 2h` is open
from 02:00 to 04:00 on weekdays. Six fields put seconds first (`30 0 2 * * * for 90m`). Weekdays must
be written as names: crontab counts 0 as Sunday and APScheduler 3 counts 0 as Monday, so a number
would silently mean another day.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from apscheduler.triggers.cron import CronTrigger

from orchestrator.domain.plan import Stage
from orchestrator.domain.run import WaitKind

# Stages a window restricts unless configured otherwise: the destructive one. (A MySQL cut-over runs
# inside its copy stage and follows the same rule once it is a stage of its own.)
DEFAULT_WINDOWED_STAGES = frozenset({Stage.CONTRACT})

_DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
_DIGIT = re.compile(r"\d")


def parse_duration(text: str) -> timedelta:
    match = _DURATION.match(text.strip())
    if not text.strip() or match is None or not any(match.groups()):
        raise ValueError(f"duration {text!r}: write it like 2h, 90m, 1h30m or 45s")
    hours, minutes, seconds = (int(group or 0) for group in match.groups())
    duration = timedelta(hours=hours, minutes=minutes, seconds=seconds)
    if duration <= timedelta(0):
        raise ValueError(f"duration {text!r} must be longer than zero")
    return duration


@dataclass(frozen=True)
class MaintenanceWindow:
    cron: str  # when the window opens
    duration: timedelta
    timezone: str = "UTC"
    _trigger: CronTrigger = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_trigger", _trigger(self.cron, self.timezone))

    @property
    def trigger(self) -> CronTrigger:
        return self._trigger

    def is_open(self, now: datetime) -> bool:
        # The first opening after `now - duration` is at or before `now` exactly when we are inside it.
        opening = self._trigger.get_next_fire_time(None, now - self.duration + timedelta(microseconds=1))
        return opening is not None and opening <= now

    def next_opening(self, now: datetime) -> datetime | None:
        opening = self._trigger.get_next_fire_time(None, now)
        return opening if opening is None else opening.astimezone(now.tzinfo)

    def describe(self) -> str:
        return f"{self.cron} for {_format_duration(self.duration)} ({self.timezone})"


def parse_windows(text: str, timezone: str = "UTC") -> list[MaintenanceWindow]:
    """`CRON for DURATION[; CRON for DURATION ...]`; ValueError naming what is wrong."""
    windows = []
    for part in (piece.strip() for piece in text.split(";")):
        if not part:
            continue
        cron, separator, duration = part.rpartition(" for ")
        if not separator:
            raise ValueError(
                f"window {part!r}: write it as 'CRON for DURATION', e.g. '0 2 * * mon-fri for 2h'"
            )
        windows.append(MaintenanceWindow(cron.strip(), parse_duration(duration), timezone))
    return windows


@dataclass(frozen=True)
class StartNow:
    pass


@dataclass(frozen=True)
class Hold:
    kind: WaitKind
    until: datetime | None  # None: no window will ever open again
    reason: str


def decide_start(
    stage: Stage,
    now: datetime,
    *,
    at: datetime | None = None,
    windows: Sequence[MaintenanceWindow] = (),
    windowed_stages: Collection[Stage] = DEFAULT_WINDOWED_STAGES,
) -> StartNow | Hold:
    """Whether a stage asked for now (or for `at`) starts at once or waits, and until when."""
    if at is not None and at > now:
        return Hold(WaitKind.SCHEDULE, at, f"{stage.value} is scheduled to start at {at.isoformat()}")
    if stage not in windowed_stages or not windows:
        return StartNow()
    if any(window.is_open(now) for window in windows):
        return StartNow()
    openings = [opening for window in windows if (opening := window.next_opening(now)) is not None]
    described = "; ".join(window.describe() for window in windows)
    if not openings:
        return Hold(
            WaitKind.WINDOW,
            None,
            f"{stage.value} may only start in a maintenance window ({described}), and none opens again",
        )
    until = min(openings)
    return Hold(
        WaitKind.WINDOW,
        until,
        f"{stage.value} may only start in a maintenance window ({described}); the next opens at {until.isoformat()}",
    )


def _trigger(cron: str, timezone: str) -> CronTrigger:
    fields = cron.split()
    if len(fields) not in (5, 6):
        raise ValueError(f"cron {cron!r}: 5 fields (minute hour day month weekday) or 6 (seconds first)")
    second, *rest = fields if len(fields) == 6 else ["0", *fields]
    minute, hour, day, month, weekday = rest
    if _DIGIT.search(weekday):
        raise ValueError(
            f"cron {cron!r}: write weekdays as names (mon-fri, sat,sun): crontab and APScheduler 3 "
            "number them differently"
        )
    try:
        return CronTrigger(
            second=second,
            minute=minute,
            hour=hour,
            day=day,
            month=month,
            day_of_week=weekday,
            timezone=timezone,
        )
    except (ValueError, LookupError) as error:  # LookupError: an unknown time zone
        raise ValueError(f"cron {cron!r} ({timezone}): {error}") from error


def _format_duration(duration: timedelta) -> str:
    seconds = int(duration.total_seconds())
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return (
        "".join(f"{value}{unit}" for value, unit in ((hours, "h"), (minutes, "m"), (seconds, "s")) if value)
        or "0s"
    )
