"""`osctl purge-dropped` and `osctl restore-dropped`: the tables drop_table set aside, by hand.

The leading service purges every few minutes; `purge-dropped` is for a DBA who runs osctl without the
service (`osctl migrate`), or wants to see what is kept aside and until when (`--dry-run`).
`restore-dropped` puts a table back after its migration completed, when rollback is no longer offered.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from pydantic import SecretStr

from orchestrator.bootstrap import build_targets
from orchestrator.config import Settings, TargetConfig, engine_of, redact_dsn
from orchestrator.domain.errors import LockTimeoutExhaustedError, SpecError
from orchestrator.domain.plan import Stage, Step, StepAction
from orchestrator.domain.retention import AsideTable
from orchestrator.engine.planner.postgres.drop_table import put_back_sql
from orchestrator.engine.retention import PurgeReport, purge_dropped_tables
from orchestrator.ports import SupportsAsideTables
from orchestrator.service import TargetRegistry

EXIT_OK, EXIT_FAILED = 0, 1


async def purge_dropped(
    settings: Settings,
    *,
    target: str | None,
    target_dsn: str | None,
    now: datetime,
    dry_run: bool,
    lock_timeout_ms: int,
    report: Callable[[dict[str, Any]], None],
) -> int:
    """Purge (or list) on one target, or on every configured one; `report` gets one record per table."""
    registry, target = _registry(settings, target, target_dsn)
    failed = False
    for name in [target] if target is not None else registry.names():
        database = registry.open(name)
        try:
            if not isinstance(database, SupportsAsideTables):
                continue  # MySQL: drop_table is not offered there
            outcome = await purge_dropped_tables(
                database, now, lock_timeout_ms=lock_timeout_ms, dry_run=dry_run
            )
        finally:
            await database.close()
        for record in records(name, outcome):
            report(record)
        failed = failed or bool(outcome.failed)
    return EXIT_FAILED if failed else EXIT_OK


def records(target: str, outcome: PurgeReport) -> list[dict[str, Any]]:
    def record(table: AsideTable, result: str, detail: str = "") -> dict[str, Any]:
        return {
            "target": target,
            "table": table.name,
            "original": table.original,
            "migration": table.migration,
            "dropped_at": table.dropped_at.isoformat(),
            "purge_after": table.purge_after.isoformat(),
            "result": result,
            "detail": detail,
        }

    return [
        *(record(table, "purged") for table in outcome.purged),
        *(record(table, "due", "dry run: would be purged") for table in outcome.due),
        *(record(table, "busy", "lock not granted; tried again next round") for table in outcome.busy),
        *(record(table, "kept", "within retention") for table in outcome.kept),
        *(
            {"target": target, "table": name, "result": "failed", "detail": why}
            for name, why in outcome.failed.items()
        ),
    ]


def render(record: dict[str, Any]) -> str:
    if record["result"] == "failed":
        return f"{record['target']}: {record['table']}: failed: {record['detail']}"
    return (
        f"{record['target']}: {record['table']} (was {record['original']}, set aside "
        f"{record['dropped_at']}, purge after {record['purge_after']}): {record['result']}"
        + (f" - {record['detail']}" if record["detail"] else "")
    )


async def restore_dropped(
    settings: Settings,
    table: str,
    *,
    target: str | None,
    target_dsn: str | None,
    lock_timeout_ms: int,
) -> AsideTable:
    """Rename the newest aside copy of `table` (or the aside table so named) back, comment and all:
    for a table needed again after its migration completed, when a rollback is no longer offered."""
    registry, name = _one_target(settings, target, target_dsn)
    database = registry.open(name)
    try:
        if not isinstance(database, SupportsAsideTables):
            raise SpecError([("target", f"target {name!r} keeps no tables aside (PostgreSQL only)")])
        candidates = [t for t in await database.aside_tables() if table in (t.original, t.name)]
        if not candidates:
            raise SpecError([("table", f"no table {table!r} is kept aside on {name!r} (purged already?)")])
        chosen = max(candidates, key=lambda t: t.dropped_at)
        step = Step(
            id=f"restore.{chosen.name}",
            stage=Stage.ROLLBACK,
            operation_index=0,
            action=StepAction.DDL,
            description=f"rename {chosen.name} back to {chosen.original}",
            sql=put_back_sql(chosen.original, chosen.name),
            table=chosen.original,
        )
        attempt = await database.execute_step(step, lock_timeout_ms=lock_timeout_ms)
        if attempt.lock_timed_out:
            raise LockTimeoutExhaustedError(step.id, 1, attempt.blockers)
        return chosen
    finally:
        await database.close()


def _one_target(settings: Settings, target: str | None, target_dsn: str | None) -> tuple[TargetRegistry, str]:
    registry, target = _registry(settings, target, target_dsn)
    if target is None:
        if len(registry.names()) != 1:
            raise SpecError([("target", "name the target: --target NAME or --target-dsn DSN")])
        target = registry.names()[0]
    return registry, target


def _registry(
    settings: Settings, target: str | None, target_dsn: str | None
) -> tuple[TargetRegistry, str | None]:
    if target_dsn:
        target = redact_dsn(target_dsn)
        config = TargetConfig(name=target, engine=engine_of(target_dsn), dsn=SecretStr(target_dsn))
        settings = settings.model_copy(update={"targets": {target: config}})
    registry = build_targets(settings)
    if target is not None and target not in registry:
        known = ", ".join(registry.names()) or "none configured"
        raise SpecError([("target", f"unknown target {target!r}; configured: {known}")])
    return registry, target
