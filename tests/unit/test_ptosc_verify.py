"""Which of pt-osc's key ranges the copy has passed: compared while the tool still copies. The
open-ended last range (where new rows land) always waits for the copy's end."""

from __future__ import annotations

from adapters.mysql.ptosc_verify import MARGIN_PERCENT, Part, behind_the_copy, position_of
from adapters.mysql.verify import Range, split_range


def parts(low: int, high: int, rows: int, chunk: int) -> list[Part]:
    return [Part(part, position_of(part, low, high)) for part in split_range(low, high, rows, chunk)]


def test_positions_follow_the_key_span_and_the_last_range_waits_for_the_end() -> None:
    found = parts(1, 1_000, rows=1_000, chunk=250)
    assert [part.position for part in found] == [25.0, 50.0, 75.0, None]
    assert position_of(Range(None, None), None, None) is None


def test_a_range_is_ready_once_the_copy_is_past_it_by_the_margin() -> None:
    found = parts(1, 1_000, rows=1_000, chunk=250)
    assert behind_the_copy(found, None) is None
    assert behind_the_copy(found, 25.0 + MARGIN_PERCENT - 0.1) is None
    assert behind_the_copy(found, 25.0 + MARGIN_PERCENT) is found[0]
    assert behind_the_copy(found[1:], 60.0) is found[1]
    assert behind_the_copy(found[3:], 100.0) is None, "the open-ended range is compared after the copy"


def test_a_table_too_small_to_split_is_compared_after_the_copy_only() -> None:
    [only] = parts(1, 2_000, rows=2_000, chunk=50_000)
    assert only.range == Range(None, None) and only.position is None
    assert not only.equal
