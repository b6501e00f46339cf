"""Maintenance windows and the start decision: pure, time is an argument."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from orchestrator.domain.plan import Stage
from orchestrator.domain.run import WaitKind
from orchestrator.windows import (
    Hold,
    MaintenanceWindow,
    StartNow,
    decide_start,
    parse_duration,
    parse_windows,
)

WEDNESDAY = datetime(2024, 5, 1, tzinfo=UTC)  # 2024-05-01 was a Wednesday
NIGHTLY = parse_windows("0 2 * * mon-fri for 2h")


def at(hour: int, minute: int = 0, second: int = 0, day: datetime = WEDNESDAY) -> datetime:
    return day.replace(hour=hour, minute=minute, second=second)


@pytest.mark.parametrize(
    ("now", "is_open"),
    [
        (at(1, 59, 59), False),
        (at(2), True),  # opens on the minute
        (at(3, 30), True),
        (at(3, 59, 59), True),
        (at(4), False),  # open for two hours: [02:00, 04:00)
        (at(2, day=datetime(2024, 5, 4, tzinfo=UTC)), False),  # Saturday
    ],
)
def test_a_window_is_open_from_its_cron_time_for_its_duration(now: datetime, is_open: bool) -> None:
    (window,) = NIGHTLY
    assert window.is_open(now) is is_open


def test_the_next_opening_skips_the_weekend() -> None:
    (window,) = NIGHTLY
    friday_evening = datetime(2024, 5, 3, 20, tzinfo=UTC)
    assert window.next_opening(friday_evening) == datetime(2024, 5, 6, 2, tzinfo=UTC)


def test_windows_in_another_time_zone() -> None:
    (window,) = parse_windows("0 2 * * * for 1h", timezone="Europe/Paris")
    # 02:00 in Paris in May (UTC+2) is 00:00 UTC.
    assert window.is_open(at(0, 30))
    assert not window.is_open(at(2, 30))


def test_six_fields_put_seconds_first() -> None:
    (window,) = parse_windows("30 15 * * * * for 10s")
    assert window.is_open(at(4, 15, 35))
    assert not window.is_open(at(4, 15, 41))


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("0 2 * * 1 for 2h", "weekdays as names"),  # crontab's 1 is Monday, APScheduler 3's is Tuesday
        ("0 2 * * * for 2x", "duration"),
        ("0 2 * * *", "CRON for DURATION"),
        ("0 2 * * for 1h", "5 fields"),
        ("0 25 * * * for 1h", "cron"),
    ],
)
def test_bad_windows_say_what_is_wrong(text: str, complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        parse_windows(text)


def test_durations() -> None:
    assert parse_duration("1h30m") == timedelta(minutes=90)
    assert parse_duration("45s") == timedelta(seconds=45)
    with pytest.raises(ValueError):
        parse_duration("0m")


def test_contract_outside_the_window_waits_for_the_next_opening() -> None:
    decision = decide_start(Stage.CONTRACT, at(12), windows=NIGHTLY)
    assert isinstance(decision, Hold)
    assert decision.kind is WaitKind.WINDOW
    assert decision.until == datetime(2024, 5, 2, 2, tzinfo=UTC)
    assert "maintenance window" in decision.reason and "0 2 * * mon-fri for 2h" in decision.reason


def test_contract_inside_the_window_starts_and_other_stages_ignore_windows() -> None:
    assert decide_start(Stage.CONTRACT, at(2, 30), windows=NIGHTLY) == StartNow()
    assert decide_start(Stage.BACKFILL, at(12), windows=NIGHTLY) == StartNow()
    assert decide_start(Stage.CONTRACT, at(12)) == StartNow()  # no windows configured
    held = decide_start(Stage.BACKFILL, at(12), windows=NIGHTLY, windowed_stages={Stage.BACKFILL})
    assert isinstance(held, Hold)


def test_any_of_several_windows_will_do() -> None:
    windows = parse_windows("0 2 * * mon-fri for 2h; 0 12 * * * for 30m")
    assert decide_start(Stage.CONTRACT, at(12, 10), windows=windows) == StartNow()
    later = decide_start(Stage.CONTRACT, at(13), windows=windows)
    assert isinstance(later, Hold) and later.until == datetime(2024, 5, 2, 2, tzinfo=UTC)


def test_a_scheduled_start_waits_for_its_time_then_for_the_window() -> None:
    scheduled = decide_start(Stage.BACKFILL, at(12), at=at(13))
    assert isinstance(scheduled, Hold)
    assert (scheduled.kind, scheduled.until) == (WaitKind.SCHEDULE, at(13))
    assert decide_start(Stage.BACKFILL, at(13), at=at(13)) == StartNow()  # its time has come
    then_window = decide_start(Stage.CONTRACT, at(13), at=at(13), windows=NIGHTLY)
    assert isinstance(then_window, Hold) and then_window.kind is WaitKind.WINDOW


def test_a_yearly_window_waits_until_next_year() -> None:
    windows = [MaintenanceWindow("0 2 1 1 *", timedelta(hours=1))]
    decision = decide_start(Stage.CONTRACT, at(12), windows=windows)
    assert isinstance(decision, Hold) and decision.until == datetime(2025, 1, 1, 2, tzinfo=UTC)
