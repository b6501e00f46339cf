"""rename_column: a new column kept equal to the old one both ways by a trigger, so the old
application version (writing the old name) and the new one (the new name) both work until contract.

- expand: add the new column (same type; a constant default too) with the sync trigger in one
  transaction, copy the existing rows, enforce NOT NULL through a validated CHECK, and build copies
  of the column's indexes concurrently. All of it happens before the deploy gate because the new
  version reads the new name as soon as it is deployed: a row not copied yet would read NULL.
- contract: drop the trigger and the old column; the new column takes over NOT NULL (trusting the
  validated check), a volatile default, and the old indexes' names and UNIQUE constraints.

Rollback after contract renames the new column back: it holds every value either version wrote,
so nothing is lost (the column moves to the end of the table). Primary-key, identity and generated
columns, and columns that views or constraints are written over, are refused with the reason.
"""

from __future__ import annotations

from orchestrator.domain.errors import SpecError
from orchestrator.domain.identifiers import quote_ident, quote_literal
from orchestrator.domain.operations import RenameColumn
from orchestrator.domain.plan import Stage, Step
from orchestrator.engine.planner.context import PlanContext
from orchestrator.engine.planner.postgres.column_facts import (
    OFFLINE_NOTE,
    ColumnFacts,
    column_facts,
    live_table,
)
from orchestrator.engine.planner.postgres.constraint_steps import Owner, ddl_step
from orchestrator.engine.planner.postgres.ddl_text import do_block, is_constant, regclass
from orchestrator.engine.planner.postgres.sync_steps import (
    copy_step,
    install_step,
    not_null_check_name,
    not_null_steps,
    rebuild_steps,
    take_over_sql,
)
from orchestrator.engine.planner.postgres.sync_triggers import SyncPair, remove_sql


def plan(op: RenameColumn, index: int, context: PlanContext) -> None:
    table = live_table(context, op.table)
    _check_names(op, context)
    if table is not None and op.new_name in table.columns:
        raise SpecError([("new_name", f"column {op.table}.{op.new_name} exists already")])
    facts = column_facts(table, op.column, op.new_name, kind=op.kind)
    context.added_columns.add((op.table, op.new_name))
    context.dropped_columns.add((op.table, op.column))

    owner = Owner(index, op.kind, op.table)
    constant_default = facts.default is not None and is_constant(facts.default)
    pair = SyncPair(
        table=op.table,
        old=op.column,
        new=op.new_name,
        up=f"NEW.{quote_ident(op.column)}",
        down=f"NEW.{quote_ident(op.new_name)}",
        # With the same constant default on both columns, an INSERT that names neither leaves the new
        # one at that default, so anything else there was written on purpose (an explicit NULL too).
        unset=facts.default if constant_default and facts.default is not None else "NULL",
    )
    table_sql, new = quote_ident(op.table), quote_ident(op.new_name)
    column_type = facts.type or f"<type of {op.table}.{op.column}>"
    # Added without a default and given one after: existing rows stay NULL until copied, which is
    # how the copy and the trigger tell a row not reached yet.
    add_column = [f"ALTER TABLE {table_sql} ADD COLUMN IF NOT EXISTS {new} {column_type}"]
    if constant_default:
        add_column.append(f"ALTER TABLE {table_sql} ALTER COLUMN {new} SET DEFAULT {facts.default}")
    note = "" if facts.known else OFFLINE_NOTE
    context.add(install_step(owner, context, pair, stage=Stage.EXPAND, add_column=add_column, note=note))
    rows = table.estimated_rows if table is not None else 0
    context.add(
        copy_step(
            owner,
            context,
            stage=Stage.EXPAND,
            column=op.new_name,
            expression=quote_ident(op.column),
            rows=rows,
        )
    )
    if facts.nullable is False:
        for step in not_null_steps(owner, context, stage=Stage.EXPAND, column=op.new_name):
            context.add(step)
    for step in rebuild_steps(owner, context, stage=Stage.EXPAND, rebuilds=facts.rebuilds):
        context.add(step)
    context.add(_contract(op, owner, context, pair, facts, constant_default=constant_default))


def _check_names(op: RenameColumn, context: PlanContext) -> None:
    if op.new_name == op.column:
        raise SpecError([("new_name", f"{op.column} is the column's name already")])
    if (op.table, op.new_name) in context.added_columns:
        raise SpecError([("new_name", f"column {op.table}.{op.new_name} is added by this spec already")])
    if (op.table, op.column) in context.dropped_columns | context.added_columns:
        raise SpecError(
            [("column", f"column {op.table}.{op.column} is added or dropped by this spec already")]
        )


def _contract(
    op: RenameColumn,
    owner: Owner,
    context: PlanContext,
    pair: SyncPair,
    facts: ColumnFacts,
    *,
    constant_default: bool,
) -> Step:
    table, old, new = quote_ident(op.table), quote_ident(op.column), quote_ident(op.new_name)
    statements = [remove_sql(pair)]
    if facts.default is not None and not constant_default:
        # A volatile default (now(), a function) was left to the old column while both existed, so
        # an INSERT naming neither evaluated it once; the new column takes it over now.
        statements.append(f"ALTER TABLE {table} ALTER COLUMN {new} SET DEFAULT {facts.default}")
    if facts.nullable is False:
        check = quote_ident(not_null_check_name(op.table, op.new_name))
        statements.append(f"ALTER TABLE {table} ALTER COLUMN {new} SET NOT NULL")
        statements.append(f"ALTER TABLE {table} DROP CONSTRAINT IF EXISTS {check}")
    statements.append(f"ALTER TABLE {table} DROP COLUMN IF EXISTS {old}")
    statements.extend(take_over_sql(op.table, facts.rebuilds))
    taken = ["its values"]
    if facts.nullable is False:
        taken.append("NOT NULL")
    if facts.rebuilds:
        taken.append("the names of " + ", ".join(rebuild.name for rebuild in facts.rebuilds))
    rename_back = do_block(
        f"IF NOT {_has_column(op.table, op.column)} AND {_has_column(op.table, op.new_name)} THEN "
        f"ALTER TABLE {table} RENAME COLUMN {new} TO {old}; END IF;"
    )
    return ddl_step(
        owner,
        context,
        stage=Stage.CONTRACT,
        suffix=op.new_name,
        description=f"drop trigger {pair.name} and column {op.table}.{op.column}; {op.new_name} keeps "
        + ", ".join(taken),
        sql=";\n".join(statements),
        risk=(
            "ACCESS EXCLUSIVE lock for catalog-only changes in one transaction: SET NOT NULL trusts "
            "the validated check, and a dropped column is not rewritten. Breaks any code still using "
            f"{op.column}: that is what the deploy gate is for."
        ),
        estimate="< 1 s once the lock is granted",
        rollback_sql=rename_back,
        rollback_description=(
            f"rename {op.table}.{op.new_name} back to {op.column}: it holds every value written "
            "since, so nothing is lost (the column moves to the end of the table)"
        ),
    )


def _has_column(table: str, column: str) -> str:
    return (
        f"EXISTS (SELECT FROM pg_attribute WHERE attrelid = {regclass(table)} "
        f"AND attname = {quote_literal(column)} AND attnum > 0 AND NOT attisdropped)"
    )
