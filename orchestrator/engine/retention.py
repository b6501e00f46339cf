"""Purging the tables drop_table set aside, once their retention has run out.

Run by the leading osctl service every few minutes for each target, and by `osctl purge-dropped`.
Everything it needs is in the database (the marker on each aside table), so it is restart-safe: a
purge interrupted half-way, or a leader that died, leaves nothing that the next round does not find.
The clock is an argument, so what is due at a given time is decided, and tested, without waiting.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

import structlog

from orchestrator.domain.retention import AsideTable, due_for_purge
from orchestrator.ports import PurgeResult, SupportsAsideTables, TargetDatabase

log = structlog.get_logger(__name__)


@dataclass
class PurgeReport:
    purged: list[AsideTable] = field(default_factory=list)
    # Due, but the lock was not granted within lock_timeout (or dry run): the next round tries again.
    busy: list[AsideTable] = field(default_factory=list)
    due: list[AsideTable] = field(default_factory=list)  # dry run: what would be purged
    kept: list[AsideTable] = field(default_factory=list)  # still within retention
    # Purges that failed for another reason (something came to depend on the table): table -> why.
    failed: dict[str, str] = field(default_factory=dict)


async def purge_dropped_tables(
    target: SupportsAsideTables, now: datetime, *, lock_timeout_ms: int = 1000, dry_run: bool = False
) -> PurgeReport:
    report = PurgeReport()
    tables = await target.aside_tables()
    due = due_for_purge(tables, now)
    report.kept = [table for table in tables if table not in due]
    if dry_run:
        report.due = due
        return report
    for table in due:
        try:
            result: PurgeResult = await target.purge_aside_table(table.name, lock_timeout_ms=lock_timeout_ms)
        except Exception as error:  # one table's trouble must not keep the others past retention
            report.failed[table.name] = f"{type(error).__name__}: {error}"
            log.warning("aside_table_purge_failed", table=table.name, error=report.failed[table.name])
            continue
        if result == "purged":
            report.purged.append(table)
            log.info(
                "aside_table_purged",
                table=table.name,
                original=table.original,
                migration=table.migration,
                dropped_at=table.dropped_at.isoformat(),
            )
        elif result == "busy":
            report.busy.append(table)
    return report


class OpensTargets(Protocol):
    def names(self) -> list[str]: ...

    def open(self, name: str) -> TargetDatabase: ...


async def purge_every_target(
    targets: OpensTargets, now: datetime, *, dry_run: bool = False
) -> dict[str, PurgeReport]:
    """Purge on every target that keeps set-aside tables; one that is down now is tried next round."""
    reports: dict[str, PurgeReport] = {}
    for name in targets.names():
        target = targets.open(name)
        try:
            if isinstance(target, SupportsAsideTables):
                reports[name] = await purge_dropped_tables(target, now, dry_run=dry_run)
        except Exception as error:  # a target that is down now is tried again next round
            log.warning("purge_dropped_tables_failed", target=name, error=f"{type(error).__name__}: {error}")
        finally:
            await target.close()
    return reports
