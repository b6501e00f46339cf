"""Replica lag from heartbeats, on the primary's clock alone.

A source writes a beat (the primary's `now()`) on the primary, then reads on the replica the newest beat
it has replayed. The replica misses every beat written after that one, so the first write it misses
happened between the newest beat it shows (k) and the oldest beat it misses (m): it is behind by at
least the age of m and at most the age of k. Both ages are measured against the primary's time,
extrapolated from the beat just written with a monotonic clock, so the replica's clock (and any skew or
time zone) never enters the figure.

Where in that interval the first missed write falls decides the figure:
- An idle primary writes nothing but beats: the first missed write is m itself, and the figure is m's
  age. It stays near 0 on a healthy replica even though beats are a poll interval apart (where
  `now() - newest beat seen` would read the poll interval), and grows second for second once replay
  stops.
- A busy primary writes between beats. With WAL positions (PostgreSQL: the insert position at the end of
  k and at the start of m, and the replica's replay position), the replica's place in the WAL written
  between k and m places the first missed write in time, assuming the writes in between were spread
  evenly: a replica stopped at k under load reads k's age, a replica a few kilobytes behind reads a few
  milliseconds. Without positions (MySQL here) the figure is m's age, which trails the true lag by at
  most the spacing of beats.

Until the replica has shown one of this tracker's own beats (the first sample, or after the replica went
backwards), the tracker does not know when the missed writes began and reports the upper bound.

`HeartbeatTracker` is pure; `measure()` adds the one wait: on a first sample it re-reads the replica for
a short, bounded time until the beat just written (or the table just created) has arrived.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from adapters.signals.base import SignalReadError

T = TypeVar("T")

MAX_PENDING = 100_000
# While the tracker has not yet seen the replica show one of its beats (the first sample), a source
# waits this long at most for the beat it just wrote to arrive, rather than report the age of an old row.
FIRST_SYNC_SECONDS = 0.25
SETTLE_POLL_SECONDS = 0.005


class NotReplicatedYet(SignalReadError):
    """The heartbeat table or row has not reached the replica (yet)."""


@dataclass(frozen=True)
class HeartbeatLag:
    seconds: float  # the figure to throttle on
    newest_seen_age: float  # the upper bound: age of the newest beat the replica shows
    exact: bool  # False while the figure is the conservative upper bound


@dataclass(frozen=True)
class WrittenBeat:
    at: float  # the primary's time of the beat, epoch seconds
    start: int | None = None  # WAL insert position just before the beat (None: positions unknown)
    end: int | None = None  # WAL insert position just after it


class HeartbeatTracker:
    """Beats this source wrote that a replica has not shown yet, oldest first."""

    def __init__(self, *, max_pending: int = MAX_PENDING) -> None:
        if max_pending < 2:
            raise ValueError("max_pending must be at least 2")
        self._pending: deque[WrittenBeat] = deque()
        self._max_pending = max_pending
        self._shown: WrittenBeat | None = None  # the newest of our beats the replica has shown
        self._synced = False  # the replica has shown one of our beats since we last lost track
        self._last_seen: float | None = None

    def wrote(self, at: float, *, start: int | None = None, end: int | None = None) -> None:
        if self._pending and at <= self._pending[-1].at:
            return  # the primary's clock stepped back, or a duplicate: the older entry already counts
        if len(self._pending) >= self._max_pending:
            # A replica stuck for a very long time: keep the oldest missed beats (they carry the lag)
            # and replace the newest one, so memory stays bounded.
            self._pending.pop()
        self._pending.append(WrittenBeat(at, start, end))

    def lag(self, seen: float, primary_now: float, *, replayed: int | None = None) -> HeartbeatLag:
        """`seen`: the newest beat the replica shows; `primary_now`: the primary's time at the read;
        `replayed`: the replica's replay position, in the same units as the beats' positions."""
        if self._last_seen is not None and seen < self._last_seen:
            self._synced = False  # the replica went back in time (rebuilt, restored): start over
            self._shown = None
        self._last_seen = seen
        while self._pending and self._pending[0].at <= seen:
            self._shown = self._pending.popleft()
            self._synced = True
        upper = max(0.0, primary_now - seen)
        if not self._synced:
            return HeartbeatLag(seconds=upper, newest_seen_age=upper, exact=False)
        if not self._pending:
            return HeartbeatLag(seconds=0.0, newest_seen_age=upper, exact=True)
        missed = self._pending[0]
        first_missed_write = missed.at
        shown = self._shown
        if (
            replayed is not None
            and shown is not None
            and shown.at == seen
            and shown.end is not None
            and missed.start is not None
            and missed.start > shown.end
        ):
            # Other writes happened between the two beats: place the replica among them.
            share = min(1.0, max(0.0, (replayed - shown.end) / (missed.start - shown.end)))
            first_missed_write = shown.at + (missed.at - shown.at) * share
        lower = max(0.0, primary_now - missed.at)
        seconds = min(upper, max(lower, primary_now - first_missed_write))
        return HeartbeatLag(seconds=seconds, newest_seen_age=upper, exact=True)

    @property
    def pending(self) -> int:
        return len(self._pending)


async def measure(
    tracker: HeartbeatTracker,
    beat_at: float,
    beat_sent: float,
    read: Callable[[], Awaitable[tuple[float, int | None, T]]],
    *,
    budget: float = FIRST_SYNC_SECONDS,
) -> tuple[HeartbeatLag, T]:
    """Read the replica (`read` gives the newest beat it shows, its replay position if known, and
    whatever else the caller wants) and measure the lag; re-read within `budget` only while the figure
    is not yet exact.

    `beat_at` is the primary's time of the beat just written, `beat_sent` the monotonic clock when it
    was sent: the primary's time at each read is extrapolated from them.
    """
    deadline = time.monotonic() + budget
    while True:
        try:
            seen, replayed, extra = await read()
        except NotReplicatedYet:
            if time.monotonic() >= deadline:
                raise
        else:
            now = beat_at + (time.monotonic() - beat_sent)
            lag = tracker.lag(seen, now, replayed=replayed)
            if lag.exact or time.monotonic() >= deadline:
                return lag, extra
        await asyncio.sleep(SETTLE_POLL_SECONDS)
