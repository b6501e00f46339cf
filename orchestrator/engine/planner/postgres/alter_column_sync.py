"""alter_column through a synced column: a new column of the new type beside the live one, filled
by `up` and kept in step by a trigger, swapped in under the old name at contract.

The application keeps the column's name throughout, so until contract both versions read and write
the live column in its old type; the trigger derives the new column from it (`up`, a cast by
default). Something writing the new column directly (a tool, a data fix) is mapped back through
`down`. So an `up` that changes what values mean (cents for units) takes effect at contract: it
suits representation changes (int -> bigint, text -> varchar(n), text -> jsonb) and clean-ups the
new version's own values already satisfy (coalesce(note, '') for NOT NULL).

- expand: the new column (no default: NULL marks a row not copied yet) and the trigger in one
  transaction, after `up` and `down` are compiled against the table;
- backfill: copy the rows written before, CHECK (new IS NOT NULL) NOT VALID and VALIDATE when the
  result is NOT NULL, build copies of the column's indexes concurrently;
- contract, one short transaction: drop the trigger and the old column, rename the new one, SET NOT
  NULL trusting the validated check, the default, and the old indexes' names and constraints.
  Irreversible: the old column's values are gone (a reverse alter_column brings the type back).
"""

from __future__ import annotations

import re

from orchestrator.domain.errors import SpecError
from orchestrator.domain.identifiers import quote_ident, quote_literal
from orchestrator.domain.operations import AlterColumn
from orchestrator.domain.plan import Stage, Step
from orchestrator.domain.schema import ColumnInfo, TableInfo
from orchestrator.engine.planner.context import PlanContext
from orchestrator.engine.planner.postgres.column_facts import OFFLINE_NOTE, ColumnFacts, column_facts
from orchestrator.engine.planner.postgres.constraint_steps import (
    CATALOG_ONLY_ESTIMATE,
    CATALOG_ONLY_RISK,
    Owner,
    ddl_step,
)
from orchestrator.engine.planner.postgres.ddl_text import derived_name, reads_columns, regclass
from orchestrator.engine.planner.postgres.sync_steps import (
    copy_step,
    install_step,
    not_null_check_name,
    not_null_steps,
    rebuild_steps,
    take_over_sql,
)
from orchestrator.engine.planner.postgres.sync_triggers import (
    SyncPair,
    bare_constant,
    over_new,
    remove_statements,
    rewrite_columns,
    substitute,
)

# An explicit cast to varchar(n)/char(n)/bit(n) silently cuts a longer value; assignment (what the
# trigger's NEW.col := ... and the backfill's SET col = ... do without a CAST) refuses it with "value
# too long", as ALTER COLUMN TYPE itself would. Better a failed write than a silently shortened one.
_LENGTH_LIMITED = re.compile(
    r"^(character varying|varchar|character|char|bpchar|bit varying|varbit|bit)\s*\("
)


def plan(op: AlterColumn, index: int, context: PlanContext, table: TableInfo | None) -> None:
    temporary = derived_name("_osc", op.column, suffix="new")
    if table is not None and temporary in table.columns:
        raise SpecError(
            [("column", f"column {op.table}.{temporary} exists: a leftover of an earlier attempt? drop it")]
        )
    if any(step.id.endswith(f".alter_column.{temporary}") for step in context.steps.get(Stage.EXPAND, [])):
        raise SpecError([("column", f"{op.table}.{op.column} is altered twice in this spec: merge them")])
    facts = column_facts(table, op.column, temporary, kind=op.kind)
    owner = Owner(index, op.kind, op.table)
    new_type = op.type or facts.type
    up = op.up or quote_ident(op.column)
    if new_type is not None and not _LENGTH_LIMITED.match(new_type):
        up = f"CAST(({up}) AS {new_type})"
    down = op.down or quote_ident(op.column)
    pair = SyncPair(
        table=op.table,
        old=op.column,
        new=temporary,
        up=over_new(up, "up"),
        down=over_new(down, "down", {op.column: temporary}),
    )
    table_sql, new = quote_ident(op.table), quote_ident(temporary)
    # Compiled against the table before the trigger depends on them: a typo fails this step, not
    # every write of the application.
    down_here = rewrite_columns(down, "down", lambda column: (temporary if column == op.column else column,))
    default = _new_default(op, facts, new_type)
    # Identifiers are validated and quoted; up, down and the default are parsed as one expression.
    add_column = [
        f"ALTER TABLE {table_sql} ADD COLUMN IF NOT EXISTS {new} {new_type or f'<type of {op.table}.{op.column}>'}",
        f"UPDATE {table_sql} SET {new} = {up} WHERE false",  # noqa: S608
        f"SELECT {down_here} FROM {table_sql} WHERE false",  # noqa: S608
    ]
    if default is not None and new_type is not None:
        add_column.append(f"SELECT CAST({default} AS {new_type}) FROM {table_sql} WHERE false")  # noqa: S608
    info = table.columns.get(op.column) if table is not None else None
    if op.nullable is True:
        drop_not_null(owner, context, op.column, info)
    note = "" if facts.known else OFFLINE_NOTE
    context.add(install_step(owner, context, pair, stage=Stage.EXPAND, add_column=add_column, note=note))

    rows = table.estimated_rows if table is not None else 0
    copy = f"coalesce({new}, {up})"
    context.add(copy_step(owner, context, stage=Stage.BACKFILL, column=temporary, expression=copy, rows=rows))
    not_null = op.nullable is False or (op.nullable is None and facts.nullable is False)
    if not_null:
        for step in not_null_steps(owner, context, stage=Stage.BACKFILL, column=temporary, label=op.column):
            context.add(step)
    for step in rebuild_steps(owner, context, stage=Stage.BACKFILL, rebuilds=facts.rebuilds):
        context.add(step)
    context.add(_swap(op, owner, context, pair, facts, not_null=not_null, default=default))


def drop_not_null(owner: Owner, context: PlanContext, column: str, info: ColumnInfo | None) -> None:
    """Expand: the new version may write NULL from the gate on; the old one never did."""
    if info is not None and info.nullable:
        return
    table = quote_ident(owner.table)
    context.add(
        ddl_step(
            owner,
            context,
            stage=Stage.EXPAND,
            suffix=f"{column}.drop_not_null",
            description=f"let {owner.table}.{column} hold NULL",
            sql=f"ALTER TABLE {table} ALTER COLUMN {quote_ident(column)} DROP NOT NULL",
            risk=CATALOG_ONLY_RISK,
            estimate=CATALOG_ONLY_ESTIMATE,
            rollback_sql=f"ALTER TABLE {table} ALTER COLUMN {quote_ident(column)} SET NOT NULL",
            rollback_description=(
                f"make {owner.table}.{column} NOT NULL again: scans the table under ACCESS EXCLUSIVE, "
                "and fails if the new version has written NULL since"
            ),
        )
    )


def _new_default(op: AlterColumn, facts: ColumnFacts, new_type: str | None) -> str | None:
    """The default the column has after contract: the one asked for, or the live one carried
    through `up` (the expression `up` gives for a row holding the old default)."""
    if op.default is not None:
        return quote_literal(op.default)
    if op.drop_default or facts.default is None or new_type is None:
        return None
    if op.up is None:
        constant = bare_constant(facts.default)
        return constant if constant is not None else f"CAST(({facts.default}) AS {new_type})"
    if reads_columns(op.up) - {op.column}:
        raise SpecError(
            [
                (
                    "default",
                    f"{op.table}.{op.column} has the default {facts.default}, which 'up' cannot carry "
                    "over because it reads other columns: give 'default' or 'drop_default: true'",
                )
            ]
        )
    return f"CAST(({substitute(op.up, op.column, facts.default)}) AS {new_type})"


def _swap(
    op: AlterColumn,
    owner: Owner,
    context: PlanContext,
    pair: SyncPair,
    facts: ColumnFacts,
    *,
    not_null: bool,
    default: str | None,
) -> Step:
    table, column, new = quote_ident(op.table), quote_ident(op.column), quote_ident(pair.new)
    statements = [
        *remove_statements(pair),
        f"ALTER TABLE {table} DROP COLUMN {column}",
        f"ALTER TABLE {table} RENAME COLUMN {new} TO {column}",
    ]
    if not_null:
        check = quote_ident(not_null_check_name(op.table, op.column))
        statements.append(f"ALTER TABLE {table} ALTER COLUMN {column} SET NOT NULL")
        statements.append(f"ALTER TABLE {table} DROP CONSTRAINT IF EXISTS {check}")
    if default is not None:
        statements.append(f"ALTER TABLE {table} ALTER COLUMN {column} SET DEFAULT {default}")
    statements.extend(take_over_sql(op.table, facts.rebuilds, guarded=True))
    body = ";\n    ".join(statements)
    # Replayed after a crash between its commit and its checkpoint, the old column is gone and the
    # new one has its name: only the leftover temporary column says the swap has not happened.
    guard = (
        f"EXISTS (SELECT FROM pg_attribute WHERE attrelid = {regclass(op.table)} "
        f"AND attname = {quote_literal(pair.new)} AND attnum > 0 AND NOT attisdropped)"
    )
    tag = "$osc$"
    while tag in body:  # a default's text must not end the block early
        tag = f"${tag.strip('$')}x$"
    sql = f"DO {tag}\nBEGIN\n  IF {guard} THEN\n    {body};\n  END IF;\nEND\n{tag}"
    old_type = facts.type or "its old type"
    return ddl_step(
        owner,
        context,
        stage=Stage.CONTRACT,
        suffix=pair.new,
        description=f"swap in {op.table}.{pair.new} as {op.column}: drop trigger {pair.name} and the old "
        "column, carry over NOT NULL, the default and the indexes",
        sql=sql,
        risk=(
            "ACCESS EXCLUSIVE lock for catalog-only changes in one transaction: dropping a column does "
            "not rewrite the table, SET NOT NULL trusts the validated check, the indexes are built."
        ),
        estimate="< 1 s once the lock is granted",
        irreversible_reason=(
            f"the old {op.table}.{op.column} and its values are dropped; to go back, alter the column "
            f"to {old_type} again with up and down swapped"
        ),
    )
