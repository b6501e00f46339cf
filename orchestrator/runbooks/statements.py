"""What a planned step will run, spelled out for the dry run. Pure.

DDL steps carry their SQL and are shown as they will run. The steps whose SQL an adapter makes at run
time from the live catalog (a shadow table's phases, a copy tool's cleanup) are shown as the commands
and the objects they act on, named as they are named in the database.
"""

from __future__ import annotations

from collections.abc import Sequence

from orchestrator.domain.copy_tools import CopyPhase
from orchestrator.domain.identifiers import quote_ident
from orchestrator.domain.plan import Step, StepAction
from orchestrator.engine.planner.mysql.sql import quote_name

# The work tables each MySQL copy tool leaves when it is stopped (pt-osc: `_<t>_new` and three
# triggers; gh-ost: `_<t>_gho` and its changelog `_<t>_ghc`).
PTOSC_NEW = "_{table}_new"
GHOST_TABLES = ("_{table}_gho", "_{table}_ghc")


def copy_work_tables(table: str) -> list[str]:
    return [PTOSC_NEW.format(table=table), *(name.format(table=table) for name in GHOST_TABLES)]


def shadow_work_tables(table: str) -> list[str]:
    return [f"_osc_shadow_{table}", f"_osc_log_{table}"]


def step_statements(step: Step, engine: str, present: Sequence[str] = ()) -> list[str]:
    """The statements (or commands) `step` runs. `present`: work tables found in the database now."""
    if step.action is StepAction.NOOP:
        return []
    if step.backfill is not None:
        work = step.backfill
        quote = quote_name if engine == "mysql" else quote_ident
        # Shown, never run: the adapter makes the chunk statement; the expression is the planner's.
        return [
            f"UPDATE {quote(work.table)} SET {quote(work.column)} = {work.expression} "  # noqa: S608
            f"-- in chunks of up to {work.batch_size} rows along the primary key, one transaction "
            "each, rows already equal skipped, throttled between chunks"
        ]
    if step.copy_work is not None and step.copy_work.phase is CopyPhase.CLEANUP:
        table = step.copy_work.table
        found = [name for name in copy_work_tables(table) if name in present]
        commands = [
            f"stop the copy tool on {table}: gh-ost gets `panic` on its socket, pt-osc SIGTERM "
            "(a tool left by an earlier osctl process is found by its pid file)",
            f"DROP TRIGGER IF EXISTS <each of pt-osc's triggers on {table}, found in information_schema>",
        ]
        drops = found or copy_work_tables(table)
        commands.extend(f"DROP TABLE IF EXISTS {quote_name(name)}" for name in drops)
        if not found:
            commands.append(f"(none of {', '.join(drops)} exists now: the drops find nothing)")
        return commands
    if step.shadow is not None:
        return [
            f"[shadow table, {step.shadow.phase.value}] {step.description} "
            "(its statements are made from the live catalog when it runs)"
        ]
    if step.copy_work is not None:
        return [f"[{step.copy_work.phase.value}] {step.description}"]
    if step.sql is not None:
        return [step.sql]
    return [step.description]
