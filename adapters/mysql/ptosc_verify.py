"""pt-osc's copy verified range by range, most of it while the tool is still copying.

Why a range found equal stays equal: pt-osc's triggers write every change to the original into the
copy in the application's own transaction, and its chunk copy is INSERT IGNORE, which skips rows the
copy already holds. So once a consistent snapshot shows a key range identical in both tables (same
rows, same values), nothing can make it differ again while the triggers live. Each range is therefore
compared once it is behind the copy (by the tool's own progress), one at a time so the copy keeps the
server's other core; a range that does not match yet (the estimate ran ahead of the copy) is simply
compared again after the tool has finished, with every range not yet seen equal and the open-ended
last one (where new rows land). The verdict is the same as comparing everything after the copy; it
just stops costing wall time on top of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pymysql.cursors import Cursor

from adapters.mysql.keyset import INTEGER_TYPES
from adapters.mysql.verify import Column, Comparison, Range, compare_range, key_bounds, split_range

if TYPE_CHECKING:
    from adapters.mysql.copy import CursorCall

# Small ranges keep what is left after the copy small (the last, open-ended one is always compared
# after it); each still reads in one short snapshot.
CHUNK_ROWS = 50_000
PARALLEL_AFTER = 2  # ranges compared at once once the tool is done (the server's cores are free)
MARGIN_PERCENT = 2.0  # the tool's percentage is of its row estimate: keep a little behind it
IDLE_SECONDS = 0.2


@dataclass
class Part:
    range: Range
    position: float | None  # percent of the key span at its upper end; None: compared after the copy
    result: tuple[int, int, bool] | None = None  # (original rows, copy rows, equal) as last compared

    @property
    def equal(self) -> bool:
        return self.result is not None and self.result[2]


class RangeVerification:
    """One pt-osc copy's comparison; `call` runs blocking work on a pooled connection."""

    def __init__(
        self,
        call: CursorCall,
        table: str,
        copy: str,
        columns: list[Column],
        key: str | None,
        ranges: list[Range],
        low: int | None,
        high: int | None,
    ) -> None:
        self._call = call
        self._table, self._copy = table, copy
        self._columns, self._key = columns, key
        self._parts = [Part(part, position_of(part, low, high)) for part in ranges]
        self.skipped: list[str] = []  # columns left out of the comparison (their type changed)
        self.compared_during_copy = 0
        self.seconds = 0.0  # the comparisons' own time, during the copy and after it

    @property
    def ranges(self) -> int:
        return len(self._parts)

    @classmethod
    async def plan(
        cls, call: CursorCall, table: str, copy: str, columns: list[Column], key: str | None
    ) -> RangeVerification:
        """Ranges along a single integer key (one whole-table range otherwise)."""
        data_type = next((column.data_type for column in columns if column.old == key), None)
        if key is None or data_type not in INTEGER_TYPES:
            return cls(call, table, copy, columns, key, [Range(None, None)], None, None)

        def bounds(cur: Cursor, key: str = key) -> tuple[int, int, int] | None:
            return key_bounds(cur, table, key)

        found = await call(bounds)
        if found is None:
            return cls(call, table, copy, columns, key, [Range(None, None)], None, None)
        low, high, rows = found
        ranges = split_range(low, high, rows, CHUNK_ROWS)
        return cls(call, table, copy, columns, key, ranges, low, high)

    async def _compare(self, part: Part) -> None:
        started = time.monotonic()
        key = self._key or self._columns[0].old

        def work(cur: Cursor) -> tuple[int, int, bool]:
            return compare_range(cur, self._table, self._copy, self._columns, key, part.range, snapshot=True)

        part.result = await self._call(work)
        self.seconds += time.monotonic() - started

    async def follow(
        self, percent: Callable[[], float | None], running: Callable[[], bool], stop: asyncio.Event
    ) -> None:
        """While the tool is `running()` and until `stop`: compare, one at a time, each range the copy
        has passed (`percent` of its rows)."""
        waiting = [part for part in self._parts if part.position is not None]
        while running() and not stop.is_set() and waiting:
            ready = behind_the_copy(waiting, percent())
            if ready is None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=IDLE_SECONDS)
                continue
            waiting.remove(ready)
            await self._compare(ready)
            self.compared_during_copy += 1

    async def finish(self) -> Comparison:
        """After the tool: every range not yet seen equal, a few at a time; the verdict over all."""
        semaphore = asyncio.Semaphore(PARALLEL_AFTER)

        async def one(part: Part) -> None:
            async with semaphore:
                await self._compare(part)

        await asyncio.gather(*(one(part) for part in self._parts if not part.equal))
        results = [part.result for part in self._parts]
        assert all(result is not None for result in results)
        return Comparison(
            original_rows=sum(result[0] for result in results if result is not None),
            copy_rows=sum(result[1] for result in results if result is not None),
            mismatched=[_text(self._key, part.range) for part in self._parts if not part.equal],
            compared_columns=[column.old for column in self._columns],
            skipped_columns=self.skipped,
        )


def behind_the_copy(parts: list[Part], percent: float | None) -> Part | None:
    """The first of `parts` the copy (at `percent` of its rows) has passed, with a margin."""
    if percent is None:
        return None
    return next(
        (part for part in parts if part.position is not None and part.position <= percent - MARGIN_PERCENT),
        None,
    )


def position_of(part: Range, low: int | None, high: int | None) -> float | None:
    """How far (percent of the key span) the copy must be before `part` is behind it."""
    if part.high is None or low is None or high is None or high <= low:
        return None  # open-ended: rows are still added there; compared after the copy
    return 100.0 * (part.high - low + 1) / (high - low + 1)


def _text(key: str | None, part: Range) -> str:
    if key is None or (part.low is None and part.high is None):
        return "the whole table"
    return f"{key} {'' if part.low is None else part.low}..{'' if part.high is None else part.high}"
