"""How many rows the next backfill chunk takes: sized to a time target from measured throughput. Pure."""

from __future__ import annotations

from dataclasses import dataclass

MIN_ROWS = 10
MAX_ROWS = 100_000
# Weight of the newest measurement in the throughput average: recent enough to follow load changes,
# smooth enough that one slow chunk (a checkpoint, a lock wait) does not halve the next.
SMOOTHING = 0.5
# Growth per chunk is capped so a burst of fast chunks over cached pages cannot jump the size past
# what the next, colder range can do within the target.
MAX_GROWTH = 2.0


@dataclass
class ChunkSizer:
    """Like pt-osc's --chunk-time: keep each chunk's transaction near `target_seconds`."""

    target_seconds: float
    size: int
    fixed: bool = False
    rows_per_second: float | None = None

    def observe(self, rows: int, seconds: float) -> None:
        """Account for a finished chunk of `rows` rows that took `seconds`."""
        if self.fixed or rows <= 0 or seconds <= 0:
            return
        sample = rows / seconds
        if self.rows_per_second is None:
            self.rows_per_second = sample
        else:
            self.rows_per_second = SMOOTHING * sample + (1 - SMOOTHING) * self.rows_per_second
        proposed = round(self.rows_per_second * self.target_seconds)
        self.size = max(MIN_ROWS, min(MAX_ROWS, int(self.size * MAX_GROWTH), proposed))

    def retune(self, *, target_seconds: float | None, fixed_size: int | None) -> None:
        """Apply a run-time change: a fixed size turns adaptation off, None turns it back on."""
        if target_seconds is not None:
            self.target_seconds = target_seconds
        if fixed_size is not None:
            self.size = fixed_size
            self.fixed = True
        elif self.fixed:
            self.fixed = False
