"""Tables set aside by drop_table: markers, what is due at a given time, and the purge loop."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from orchestrator.domain.retention import MARKER_PREFIX, AsideTable, due_for_purge, parse_marker
from orchestrator.engine.retention import purge_dropped_tables
from orchestrator.ports import PurgeResult, SupportsAsideTables

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def aside(name: str, *, hours_left: float) -> AsideTable:
    purge_after = NOW + timedelta(hours=hours_left)
    return AsideTable(
        name=name,
        original=name.removeprefix("_osc_dropped_"),
        dropped_at=purge_after - timedelta(hours=48),
        purge_after=purge_after,
    )


def test_markers_are_read_back_and_foreign_comments_ignored() -> None:
    comment = MARKER_PREFIX + json.dumps(
        {
            "original": "legacy",
            "migration": "drop-legacy",
            "dropped_at": "2025-03-01T10:00:00.5+00:00",
            "purge_after": "2025-03-03T10:00:00.5+00:00",
            "comment": None,
        }
    )
    table = parse_marker("_osc_dropped_legacy_1234abcd", comment)
    assert table is not None and table.original == "legacy" and table.migration == "drop-legacy"
    assert table.purge_after == datetime(2025, 3, 3, 10, 0, 0, 500000, tzinfo=UTC)
    assert parse_marker("x", None) is None
    assert parse_marker("x", "a table a human commented") is None
    assert parse_marker("x", MARKER_PREFIX + "{not json") is None
    assert parse_marker("x", MARKER_PREFIX + '{"original": "legacy"}') is None  # no dates


def test_due_is_decided_by_the_clock_given() -> None:
    late, early, exact = (
        aside("late", hours_left=-2),
        aside("early", hours_left=5),
        aside("exact", hours_left=0),
    )
    assert due_for_purge([early, late, exact], NOW) == [late, exact]
    assert due_for_purge([early, late, exact], NOW + timedelta(hours=6)) == [late, exact, early]
    assert due_for_purge([early], NOW - timedelta(days=1)) == []


@dataclass
class FakeAsideTarget:
    tables: list[AsideTable]
    results: dict[str, PurgeResult | Exception] = field(default_factory=dict)
    asked: list[tuple[str, int]] = field(default_factory=list)

    async def aside_tables(self) -> list[AsideTable]:
        return list(self.tables)

    async def purge_aside_table(self, name: str, *, lock_timeout_ms: int) -> PurgeResult:
        self.asked.append((name, lock_timeout_ms))
        result = self.results.get(name, "purged")
        if isinstance(result, Exception):
            raise result
        return result


async def test_purge_drops_what_is_due_and_carries_on_past_trouble() -> None:
    tables = [aside(n, hours_left=h) for n, h in (("a", -1), ("b", -3), ("c", -2), ("d", 1))]
    target = FakeAsideTarget(tables, results={"b": "busy", "c": RuntimeError("a view depends on c")})
    assert isinstance(target, SupportsAsideTables)
    report = await purge_dropped_tables(target, NOW, lock_timeout_ms=250)
    assert target.asked == [("b", 250), ("c", 250), ("a", 250)]  # oldest due first, "d" never
    assert [t.name for t in report.purged] == ["a"]
    assert [t.name for t in report.busy] == ["b"]
    assert report.failed == {"c": "RuntimeError: a view depends on c"}
    assert [t.name for t in report.kept] == ["d"]


async def test_dry_run_touches_nothing() -> None:
    target = FakeAsideTarget([aside("a", hours_left=-1), aside("d", hours_left=1)])
    report = await purge_dropped_tables(target, NOW, dry_run=True)
    assert target.asked == []
    assert [t.name for t in report.due] == ["a"] and [t.name for t in report.kept] == ["d"]
