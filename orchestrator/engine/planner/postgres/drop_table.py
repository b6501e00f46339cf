"""drop_table: nothing before the gate; contract sets the table aside, dropped for good later.

Contract renames the table to its aside name (see orchestrator/domain/retention.py) and marks it with
when it may be purged, in one short transaction under lock_timeout: a catalog-only change, so the
data stays where it is and a rollback renames it back. The osctl service (or `osctl purge-dropped`)
drops it once `retention_hours` have passed. `retention_hours: 0` drops it in contract: irreversible.
Preflight refuses a table that views or other tables' foreign keys depend on.
"""

from __future__ import annotations

from orchestrator.domain.identifiers import quote_ident, quote_literal
from orchestrator.domain.operations import DropTable
from orchestrator.domain.plan import Stage, Step, StepAction
from orchestrator.domain.retention import MARKER_PREFIX, aside_name
from orchestrator.engine.planner.context import PlanContext, step_id
from orchestrator.engine.planner.postgres.relations import do_block, is_table, regclass

RISK = (
    "ACCESS EXCLUSIVE lock on {table} for a catalog-only change, bounded by lock_timeout per attempt. "
    "Code still using {table} fails from here on: that is what the deploy gate is for."
)


def plan(op: DropTable, index: int, context: PlanContext) -> None:
    forward_id = step_id(Stage.CONTRACT, index, op.kind, op.table)
    if op.retention_hours == 0:
        context.add(
            Step(
                id=forward_id,
                stage=Stage.CONTRACT,
                operation_index=index,
                action=StepAction.DDL,
                description=f"drop table {op.table} now (retention_hours: 0)",
                sql=f"DROP TABLE IF EXISTS {quote_ident(op.table)}",
                table=op.table,
                lock_timeout_ms=context.lock_timeout_ms,
                risk=RISK.format(table=op.table) + " The rows are gone at once.",
                estimate="< 1 s once the lock is granted (files are unlinked at commit)",
                irreversible_reason=f"retention_hours is 0: {op.table} and its rows are dropped in contract",
            )
        )
        return
    aside = aside_name(op.table, context.migration)
    context.add(
        Step(
            id=forward_id,
            stage=Stage.CONTRACT,
            operation_index=index,
            action=StepAction.DDL,
            description=f"set table {op.table} aside as {aside} for {op.retention_hours} h",
            sql=set_aside_sql(op.table, aside, op.retention_hours, context.migration),
            table=op.table,
            lock_timeout_ms=context.lock_timeout_ms,
            risk=RISK.format(table=op.table)
            + f" The rows stay in {aside} until the purge, {op.retention_hours} h after contract "
            "(the osctl service, or `osctl purge-dropped`); its foreign keys to other tables stay "
            "in force until then.",
            estimate="< 1 s once the lock is granted (a rename, no data moves)",
            rollback=Step(
                id=f"rollback.{forward_id}",
                stage=Stage.ROLLBACK,
                operation_index=index,
                action=StepAction.DDL,
                description=f"rename {aside} back to {op.table}",
                sql=put_back_sql(op.table, aside),
                table=op.table,
                lock_timeout_ms=context.lock_timeout_ms,
            ),
        )
    )


def set_aside_sql(table: str, aside: str, retention_hours: int, migration: str) -> str:
    """Rename and mark in one transaction; a replay finds the aside table and does nothing."""
    marker = (
        f"{quote_literal(MARKER_PREFIX)} || json_build_object("
        f"'original', {quote_literal(table)}, 'migration', {quote_literal(migration)}, "
        f"'dropped_at', now(), 'purge_after', now() + make_interval(hours => {int(retention_hours)}), "
        "'comment', kept_comment)::text"
    )
    body = f"""
IF {regclass(aside)} IS NOT NULL THEN
  RETURN;  -- set aside already (a replay after a crash)
END IF;
IF NOT {is_table(table)} THEN
  RAISE EXCEPTION 'table % does not exist, nor is it kept aside as %', {quote_literal(table)}, {quote_literal(aside)};
END IF;
-- The table's own comment is kept in the marker, for a rollback to restore.
kept_comment := obj_description({regclass(table)}, 'pg_class');
ALTER TABLE {quote_ident(table)} RENAME TO {quote_ident(aside)};
EXECUTE format('COMMENT ON TABLE %I IS %L', {quote_literal(aside)}, {marker});
"""
    return do_block(body, declare="kept_comment text;")


def put_back_sql(table: str, aside: str) -> str:
    """Rename back and restore the table's own comment; fails loudly once the table was purged."""
    body = f"""
IF {is_table(aside)} THEN
  IF {regclass(table)} IS NOT NULL THEN
    RAISE EXCEPTION 'cannot rename % back: a relation named % exists again', {quote_literal(aside)}, {quote_literal(table)};
  END IF;
  marker := obj_description({regclass(aside)}, 'pg_class');
  ALTER TABLE {quote_ident(aside)} RENAME TO {quote_ident(table)};
  EXECUTE format('COMMENT ON TABLE %I IS %L', {quote_literal(table)},
                 substr(marker, {len(MARKER_PREFIX) + 1})::json ->> 'comment');
ELSIF NOT {is_table(table)} THEN
  RAISE EXCEPTION 'table % was purged (kept aside as %): restore it from a backup', {quote_literal(table)}, {quote_literal(aside)};
END IF;
"""
    return do_block(body, declare="marker text;")
