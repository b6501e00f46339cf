"""Taking a spec in: from what the caller sent to a planned, preflighted run ready to store.

A spec the planner refuses costs no database round trip; otherwise the live tables are read once,
the plan is made against them (a strategy may depend on them) and the preflight judges the same
snapshot. What the preflight accepted but a DBA should see (long transactions, replica lag, table
sizes) travels with the `created` event, which the API, the CLI and Slack all show.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from orchestrator.domain.direct_ddl import DirectLimits
from orchestrator.domain.errors import SpecError
from orchestrator.domain.plan import Plan
from orchestrator.domain.spec import MigrationSpec
from orchestrator.engine.planner import plan_migration
from orchestrator.engine.preflight import preflight_problems, preflight_warnings, read_live_schema
from orchestrator.engine.preflight_data import data_notes
from orchestrator.ports import TargetDatabase


@dataclass(frozen=True)
class Intake:
    plan: Plan
    message: str  # the created event's line
    preflight: dict[str, Any]  # warnings and notes for the created event's data; {} when none


def target_of(spec: MigrationSpec, override: str | None, configured: list[str]) -> str:
    """The target the migration runs on, or SpecError naming the field and what is configured."""
    target = override or spec.target
    known = ", ".join(configured) or "none configured"
    if target is None:
        raise SpecError([("target", f"name a configured target ({known})")])
    if target not in configured:
        raise SpecError([("target", f"unknown target {target!r}; configured: {known}")])
    return target


async def take_in(
    spec: MigrationSpec,
    target: str,
    engine: str,
    open_target: Callable[[], TargetDatabase],
    *,
    direct_limits: DirectLimits | None,
) -> Intake:
    plan_migration(spec, engine)  # a spec the planner refuses never costs a database round trip
    database = open_target()
    try:
        live = await read_live_schema(spec, database)
    finally:
        await database.close()
    plan = plan_migration(spec, engine, live.tables, direct_limits=direct_limits)
    problems = preflight_problems(spec, live, target)
    if problems:
        raise SpecError(problems)
    preflight: dict[str, Any] = {}
    warnings = preflight_warnings(spec, live)
    if warnings:
        preflight["warnings"] = [{"path": path, "message": message} for path, message in warnings]
    if live.data is not None:
        preflight["notes"] = data_notes(live.data)
    message = f"migration {spec.name} planned on {target}"
    if warnings:
        message += f" ({len(warnings)} preflight warning{'s' if len(warnings) > 1 else ''})"
    return Intake(plan=plan, message=message, preflight=preflight)
