"""When `strategy: auto` lets a MySQL or MariaDB server make an alter_table change itself (its own
ALGORITHM=INSTANT or INPLACE, LOCK=NONE) rather than running a copy tool: the pure decision.

The planner reads what the server would do with the change (`OnlineVerdict`, from the version table
and the live columns); the live table gives its size. The decision:
- a change the server can only make by blocking writes (a table copy, LOCK=SHARED) goes to a copy tool;
- a revert window (keep_old_table) needs a copy: the server changes the table in place;
- INSTANT or catalog-only in-place changes run directly whatever the size: no row is read;
- an in-place change that reads or rebuilds every row (an index build, a rebuild) runs directly only on
  a small table: it is one unthrottled statement, and every replica replays it afterwards, lagging for
  as long as it ran. Above the limits a copy tool, which throttles on replica lag, does it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

DEFAULT_DIRECT_MAX_ROWS = 100_000
DEFAULT_DIRECT_MAX_BYTES = 256 * 1024 * 1024


class OnlineCost(IntEnum):
    """What the server's own online DDL costs, least first (a statement costs its dearest clause)."""

    INSTANT = 0  # catalog only (ALGORITHM=INSTANT)
    METADATA = 1  # in place, catalog only: no row is read (drop an index, rename a column)
    SCAN = 2  # in place, but every row is read or rewritten (build an index, rebuild the table)


@dataclass(frozen=True)
class OnlineVerdict:
    """How `server` would make the change itself. `cost` None: only by blocking writes (or not at all)."""

    server: str  # "MariaDB 10.11"
    cost: OnlineCost | None
    why: str  # the clauses that decide it, e.g. "ADD INDEX note_idx: in place, reads every row"


@dataclass(frozen=True)
class DirectLimits:
    """The largest table whose every row auto lets the server read or rewrite in one statement
    (OSCTL_DIRECT_MAX_ROWS, OSCTL_DIRECT_MAX_BYTES)."""

    max_rows: int = DEFAULT_DIRECT_MAX_ROWS
    max_bytes: int = DEFAULT_DIRECT_MAX_BYTES


@dataclass(frozen=True)
class TableSize:
    rows: int  # information_schema's estimate (counted when there are no statistics yet)
    bytes: int  # data and indexes


@dataclass(frozen=True)
class DirectChoice:
    direct: bool
    why: str  # one sentence for the plan


def human_bytes(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def choose_direct(
    verdict: OnlineVerdict, size: TableSize, limits: DirectLimits, *, keep_old_table: bool
) -> DirectChoice:
    """Whether auto runs the change as the server's own online DDL, and why (or why not)."""
    if verdict.cost is None:
        return DirectChoice(False, f"{verdict.server} cannot make it without blocking writes ({verdict.why})")
    if keep_old_table:
        return DirectChoice(
            False,
            "a revert window (keep_old_table) needs a copy: the server's own DDL changes the table in place",
        )
    if verdict.cost is OnlineCost.INSTANT:
        return DirectChoice(
            True, f"{verdict.server} makes it INSTANT (catalog only), whatever the table's size"
        )
    if verdict.cost is OnlineCost.METADATA:
        return DirectChoice(
            True, f"{verdict.server} makes it in place without reading the rows ({verdict.why})"
        )
    described = f"{size.rows} rows, {human_bytes(size.bytes)}"
    limit = f"{limits.max_rows} rows / {human_bytes(limits.max_bytes)}"
    if size.rows <= limits.max_rows and size.bytes <= limits.max_bytes:
        return DirectChoice(
            True,
            f"{verdict.server} makes it in place with LOCK=NONE ({verdict.why}) and the table is small "
            f"({described}; direct up to {limit}): replicas lag for at most as long as it runs",
        )
    return DirectChoice(
        False,
        f"{verdict.server} could make it in place ({verdict.why}), but on {described} (above {limit}) "
        "that is one unthrottled statement and every replica would lag for as long",
    )
