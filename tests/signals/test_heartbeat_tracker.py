"""HeartbeatTracker as a table: beats written (primary time), the beat the replica shows, the lag."""

from __future__ import annotations

import pytest

from adapters.signals.heartbeat import HeartbeatTracker


def test_first_reading_is_the_upper_bound_until_a_beat_of_ours_shows() -> None:
    tracker = HeartbeatTracker()
    tracker.wrote(100.0)
    # The replica shows an old row (from an earlier run): we cannot know when it fell behind.
    lag = tracker.lag(seen=40.0, primary_now=100.01)
    assert lag.seconds == pytest.approx(60.01)
    assert not lag.exact
    lag = tracker.lag(seen=100.0, primary_now=100.02)
    assert (lag.seconds, lag.exact) == (0.0, True)


@pytest.mark.parametrize(
    ("beats", "seen", "now", "expected", "upper"),
    [
        # Healthy, beats a poll interval (0.5 s) apart: the replica misses only the beat just written.
        ([0.0, 0.5, 1.0], 0.5, 1.002, 0.002, 0.502),
        # ... or already shows it.
        ([0.0, 0.5, 1.0], 1.0, 1.002, 0.0, 0.002),
        # Replay stopped just after 1.0: the oldest missed beat (1.5) is 2.5 s old at 4.0.
        ([0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0], 1.0, 4.0, 2.5, 3.0),
        # Catching up: the replica has replayed up to 2.5; the oldest missed is 3.0.
        ([0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0], 2.5, 4.1, 1.1, 1.6),
        # Another writer's beat (2.7) between ours: only the ordering counts.
        ([0.0, 1.0, 2.0, 3.0], 2.7, 3.1, 0.1, 0.4),
    ],
)
def test_lag_is_the_age_of_the_oldest_missed_beat(
    beats: list[float], seen: float, now: float, expected: float, upper: float
) -> None:
    tracker = HeartbeatTracker()
    tracker.wrote(beats[0])
    assert tracker.lag(seen=beats[0], primary_now=beats[0]).exact  # in step from the start
    for beat in beats[1:]:
        tracker.wrote(beat)
    lag = tracker.lag(seen=seen, primary_now=now)
    assert lag.exact
    assert lag.seconds == pytest.approx(expected)
    assert lag.newest_seen_age == pytest.approx(upper)


def test_a_replica_going_back_in_time_falls_back_to_the_upper_bound() -> None:
    tracker = HeartbeatTracker()
    for beat in (1.0, 2.0, 3.0):
        tracker.wrote(beat)
        tracker.lag(seen=beat, primary_now=beat)
    tracker.wrote(4.0)
    lag = tracker.lag(seen=0.5, primary_now=4.0)  # restored from an old backup
    assert (lag.seconds, lag.exact) == (3.5, False)


def test_lag_never_negative_and_clock_steps_back_are_ignored() -> None:
    tracker = HeartbeatTracker()
    tracker.wrote(10.0)
    tracker.wrote(9.0)  # the primary's clock stepped back: the older entry already counts
    assert tracker.pending == 1
    lag = tracker.lag(seen=10.0, primary_now=9.5)
    assert lag.seconds == 0.0 and lag.newest_seen_age == 0.0


def test_memory_is_bounded_keeping_the_oldest_missed_beats() -> None:
    tracker = HeartbeatTracker(max_pending=3)
    tracker.wrote(0.0)
    tracker.lag(seen=0.0, primary_now=0.0)
    for beat in (1.0, 2.0, 3.0, 4.0, 5.0):
        tracker.wrote(beat)
    assert tracker.pending == 3
    lag = tracker.lag(seen=0.0, primary_now=6.0)
    assert lag.seconds == 5.0  # beat 1.0, the oldest missed, is kept


def busy_tracker() -> HeartbeatTracker:
    """Beat k at 1.0 (WAL 1000-1100) shown by the replica; other writes fill WAL 1100-5000; beat m at
    1.2 (WAL 5000-5100) not shown yet."""
    tracker = HeartbeatTracker()
    tracker.wrote(1.0, start=1000, end=1100)
    tracker.lag(seen=1.0, primary_now=1.0, replayed=1150)
    tracker.wrote(1.2, start=5000, end=5100)
    return tracker


@pytest.mark.parametrize(
    ("replayed", "now", "expected"),
    [
        # Stopped just after k while the primary kept writing: nearly k's age (the upper bound).
        (1150, 2.0, 2.0 - (1.0 + 0.2 * 50 / 3900)),
        # A few bytes behind on a busy, healthy replica: a few milliseconds, not the beat spacing.
        (4990, 1.201, 1.201 - (1.0 + 0.2 * 3890 / 3900)),
        # Everything but m replayed: m's age (the lower bound).
        (5000, 1.201, 0.001),
        # No position known: the lower bound.
        (None, 2.0, 0.8),
    ],
)
def test_wal_positions_place_the_first_missed_write(
    replayed: int | None, now: float, expected: float
) -> None:
    lag = busy_tracker().lag(seen=1.0, primary_now=now, replayed=replayed)
    assert lag.exact
    assert lag.seconds == pytest.approx(expected, abs=1e-9)
    assert max(0.0, now - 1.2) - 1e-9 <= lag.seconds <= lag.newest_seen_age + 1e-9  # within the bounds


def test_an_idle_primary_between_beats_reads_the_lower_bound() -> None:
    """Only k's commit record lies between k and m: a replica stopped at m reads m's age."""
    tracker = HeartbeatTracker()
    tracker.wrote(1.0, start=1000, end=1100)
    tracker.lag(seen=1.0, primary_now=1.0, replayed=1150)
    tracker.wrote(1.2, start=1150, end=1250)
    lag = tracker.lag(seen=1.0, primary_now=2.0, replayed=1150)
    assert lag.seconds == pytest.approx(0.8)
