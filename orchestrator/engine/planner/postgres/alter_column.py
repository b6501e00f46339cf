"""alter_column: three ways, chosen from the change and the live table.

- a shadow table (planner/postgres/shadow.py) for `strategy: shadow`, or `auto` with a primary-key
  column's type changing;
- a synced column (alter_column_sync.py) when the values change: a new `type`, or `up`/`down`;
- otherwise the column is changed in place, catalog-only, each change in the stage where both
  application versions tolerate it:
  * `nullable: true` in expand (the new version may write NULL once deployed; the old never does);
  * `nullable: false` as CHECK (c IS NOT NULL) NOT VALID and VALIDATE after the gate (the old
    version may still write NULL before it), SET NOT NULL in contract trusting the validated check;
  * a new `default` in expand (catalog-only, for rows inserted from now on);
  * `drop_default` in contract (the old version may insert relying on it until then).
"""

from __future__ import annotations

from orchestrator.domain.errors import SpecError
from orchestrator.domain.identifiers import quote_ident, quote_literal
from orchestrator.domain.operations import AlterColumn
from orchestrator.domain.plan import Stage
from orchestrator.domain.schema import ColumnInfo
from orchestrator.engine.planner.context import PlanContext
from orchestrator.engine.planner.postgres import alter_column_sync, shadow
from orchestrator.engine.planner.postgres.column_facts import live_table
from orchestrator.engine.planner.postgres.constraint_steps import (
    CATALOG_ONLY_ESTIMATE,
    CATALOG_ONLY_RISK,
    Owner,
    ddl_step,
)
from orchestrator.engine.planner.postgres.ddl_text import check_expression_at
from orchestrator.engine.planner.postgres.sync_steps import not_null_check_name, not_null_steps

OFFLINE_DEFAULT = "the previous default is read from the live table when the migration is submitted"


def plan(op: AlterColumn, index: int, context: PlanContext) -> None:
    _check_expressions(op)
    table = live_table(context, op.table)
    if shadow.needs_shadow(op, table):
        shadow.plan_shadow(op, index, context)
        return
    key = (op.table, op.column)
    if key in context.added_columns | context.dropped_columns:
        raise SpecError([("column", f"column {op.table}.{op.column} is added or dropped by this spec")])
    if op.type is not None or op.up is not None:
        alter_column_sync.plan(op, index, context, table)
        return
    info = None
    if table is not None:
        info = table.columns.get(op.column)
        if info is None:
            raise SpecError([("column", f"column {op.table}.{op.column} does not exist")])
        if op.nullable and op.column in table.primary_key:
            raise SpecError(
                [("nullable", f"{op.table}.{op.column} is in the primary key: it stays NOT NULL")]
            )
    owner = Owner(index, op.kind, op.table)
    if op.nullable is True:
        alter_column_sync.drop_not_null(owner, context, op.column, info)
    elif op.nullable is False and (info is None or info.nullable):
        _set_not_null(owner, context, op.column)
    if op.default is not None:
        _set_default(owner, context, op, info)
    if op.drop_default and (info is None or info.default is not None):
        _drop_default(owner, context, op, info)


def _check_expressions(op: AlterColumn) -> None:
    problems: list[tuple[str, str]] = []
    for field, expression in (("up", op.up), ("down", op.down)):
        if expression is not None:
            try:
                check_expression_at(expression, field)
            except SpecError as error:
                problems.extend(error.problems)
    if op.down is not None and op.type is None and op.up is None:
        problems.append(("down", "'down' maps new values back to old ones: give it with 'type' or 'up'"))
    if problems:
        raise SpecError(problems)


def _set_not_null(owner: Owner, context: PlanContext, column: str) -> None:
    for step in not_null_steps(owner, context, stage=Stage.BACKFILL, column=column):
        context.add(step)
    table, name = quote_ident(owner.table), quote_ident(column)
    check = quote_ident(not_null_check_name(owner.table, column))
    context.add(
        ddl_step(
            owner,
            context,
            stage=Stage.CONTRACT,
            suffix=f"{column}.set_not_null",
            description=f"make {owner.table}.{column} NOT NULL, trusting the validated check, and drop it",
            sql=f"ALTER TABLE {table} ALTER COLUMN {name} SET NOT NULL;\n"
            f"ALTER TABLE {table} DROP CONSTRAINT IF EXISTS {check}",
            risk=CATALOG_ONLY_RISK + " SET NOT NULL finds the validated check and skips the scan.",
            estimate=CATALOG_ONLY_ESTIMATE,
            rollback_sql=f"ALTER TABLE {table} ALTER COLUMN {name} DROP NOT NULL",
            rollback_description=f"let {owner.table}.{column} hold NULL again",
        )
    )


def _set_default(owner: Owner, context: PlanContext, op: AlterColumn, info: ColumnInfo | None) -> None:
    table, column = quote_ident(op.table), quote_ident(op.column)
    restore, reason = _restore_default(table, column, info)
    context.add(
        ddl_step(
            owner,
            context,
            stage=Stage.EXPAND,
            suffix=f"{op.column}.set_default",
            description=f"default {op.table}.{op.column} to {op.default!r} for rows inserted from now on",
            sql=f"ALTER TABLE {table} ALTER COLUMN {column} SET DEFAULT {quote_literal(op.default)}",
            risk=CATALOG_ONLY_RISK + " Existing rows keep their values.",
            estimate=CATALOG_ONLY_ESTIMATE,
            rollback_sql=restore,
            rollback_description=f"give {op.table}.{op.column} its previous default back",
            irreversible_reason=reason,
        )
    )


def _drop_default(owner: Owner, context: PlanContext, op: AlterColumn, info: ColumnInfo | None) -> None:
    table, column = quote_ident(op.table), quote_ident(op.column)
    restore, reason = _restore_default(table, column, info)
    context.add(
        ddl_step(
            owner,
            context,
            stage=Stage.CONTRACT,
            suffix=f"{op.column}.drop_default",
            description=f"drop the default of {op.table}.{op.column} (the old version may rely on it "
            "until the gate)",
            sql=f"ALTER TABLE {table} ALTER COLUMN {column} DROP DEFAULT",
            risk=CATALOG_ONLY_RISK + " INSERTs that leave the column out get NULL from now on.",
            estimate=CATALOG_ONLY_ESTIMATE,
            rollback_sql=restore,
            rollback_description=f"give {op.table}.{op.column} its previous default back",
            irreversible_reason=reason,
        )
    )


def _restore_default(table: str, column: str, info: ColumnInfo | None) -> tuple[str | None, str | None]:
    """The statement that puts the live default back, or why there is none (planned offline)."""
    if info is None:
        return None, OFFLINE_DEFAULT
    if info.default is None:
        return f"ALTER TABLE {table} ALTER COLUMN {column} DROP DEFAULT", None
    return f"ALTER TABLE {table} ALTER COLUMN {column} SET DEFAULT {info.default}", None
