from __future__ import annotations

import pytest

from orchestrator.engine.chunking import MAX_ROWS, MIN_ROWS, ChunkSizer


@pytest.mark.parametrize(
    ("start", "rows", "seconds", "expected"),
    [
        (1000, 1000, 0.2, 1000),  # on target: unchanged
        (1000, 1000, 0.1, 2000),  # twice as fast: doubles
        (1000, 1000, 0.01, 2000),  # twenty times as fast: growth capped at 2x per chunk
        (1000, 1000, 0.4, 500),  # twice as slow: halves
        (1000, 1000, 10.0, 20),  # a stalled chunk shrinks at once, no cap on the way down
        (1000, 1000, 1000.0, MIN_ROWS),  # never below the floor
        (90_000, 90_000, 0.01, MAX_ROWS),  # never above the ceiling
    ],
)
def test_first_observation_sizes_to_the_target(start: int, rows: int, seconds: float, expected: int) -> None:
    sizer = ChunkSizer(target_seconds=0.2, size=start)
    sizer.observe(rows, seconds)
    assert sizer.size == expected


def test_the_rate_is_smoothed_so_one_slow_chunk_does_not_halve_the_next() -> None:
    sizer = ChunkSizer(target_seconds=0.2, size=1000)
    sizer.observe(1000, 0.2)  # 5,000 rows/s
    sizer.observe(1000, 0.4)  # 2,500 rows/s once: average 3,750
    assert sizer.size == 750


def test_fixed_size_ignores_measurements_until_adaptation_is_turned_back_on() -> None:
    sizer = ChunkSizer(target_seconds=0.2, size=1000)
    sizer.retune(target_seconds=None, fixed_size=300)
    sizer.observe(300, 0.01)
    assert sizer.size == 300
    sizer.retune(target_seconds=0.05, fixed_size=None)
    sizer.observe(300, 0.1)  # 3,000 rows/s x 50 ms
    assert sizer.size == 150


@pytest.mark.parametrize(("rows", "seconds"), [(0, 0.1), (100, 0.0), (-1, 1.0)])
def test_empty_or_instant_chunks_teach_nothing(rows: int, seconds: float) -> None:
    sizer = ChunkSizer(target_seconds=0.2, size=1000)
    sizer.observe(rows, seconds)
    assert sizer.size == 1000 and sizer.rows_per_second is None
