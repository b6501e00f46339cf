"""drop_column with `archive: true`: keep the values, so a rollback after contract can restore them.

Contract, in order (a rollback runs the inverses newest first, so they read bottom-up):

  archive table  `_osc_archive_<table>_<column>`: the key and the column, empty, with a unique
                 index on the key                     <- rollback: drop the archive (last of all)
  [NOT NULL]     three markers with nothing to do forward, whose inverses restore NOT NULL without
                 a scan under a write-blocking lock: CHECK NOT VALID, VALIDATE, SET NOT NULL
  copy           DELETE + INSERT ... SELECT, one transaction (replayable): only ACCESS SHARE on the
                 table, so writes go on          <- rollback: write the values back, in checkpointed
                                                    chunks along the key (the backfill engine)
  drop           the column                      <- rollback: re-add it, type and default as before

The archive stays after a completed migration: it is what a later restore would read. Drop it
(`DROP TABLE _osc_archive_...`) once the change is final; its comment says which migration made it.

The column's type, default and NOT NULL come from the live table the plan was made against. A NOT
NULL column with a constant default is re-added NOT NULL at once (catalog-only); otherwise it is
re-added nullable and NOT NULL is proven by the validated CHECK once the values are back. Rows
inserted after the drop are not in the archive: they get the default, or NULL, and if that breaks
NOT NULL the VALIDATE fails and says so (the archive is kept).
"""

from __future__ import annotations

from orchestrator.domain.errors import SpecError
from orchestrator.domain.identifiers import check_type_name, quote_ident, quote_literal
from orchestrator.domain.operations import Backfill, DropColumn
from orchestrator.domain.plan import BackfillWork, Stage, Step, StepAction
from orchestrator.domain.schema import ColumnInfo, TableInfo
from orchestrator.engine.planner.context import PlanContext
from orchestrator.engine.planner.postgres.constraint_steps import Owner, ddl_step
from orchestrator.engine.planner.postgres.ddl_text import (
    check_expression_at,
    derived_name,
    do_block,
    is_constant,
    regclass,
    unless_constraint,
)

# Offline (no live table) the key is assumed to be `id`; planned against the target it is read.
OFFLINE_KEY = ["id"]


def archive_name(op: DropColumn) -> str:
    return derived_name("_osc_archive", op.table, suffix=op.column)


def relations(op: DropColumn) -> list[str]:
    """The relations the archive creates: their names must be free before contract."""
    if not op.archive:
        return []
    return [archive_name(op), derived_name(archive_name(op), suffix="key")]


def not_null_check_name(op: DropColumn) -> str:
    return derived_name(op.table, op.column, suffix="osc_not_null")


def steps(op: DropColumn, index: int, context: PlanContext, drop_sql: str, drop_risk: str) -> list[Step]:
    live = context.tables.get(op.table) if context.tables is not None else None
    column = live.columns.get(op.column) if live is not None else None
    key = _key(op, live)
    owner = Owner(index=index, kind=op.kind, table=op.table)
    archive = archive_name(op)
    deferred_not_null = column is not None and not column.nullable and not _constant_default(column)
    found = [_archive_table_step(op, owner, context, archive, key)]
    if deferred_not_null:
        found.extend(_not_null_markers(op, owner, context))
    found.append(_copy_step(op, owner, context, archive, key))
    found.append(
        ddl_step(
            owner,
            context,
            stage=Stage.CONTRACT,
            suffix=op.column,
            description=op.describe(),
            sql=drop_sql,
            risk=drop_risk + f" The values are kept in {archive}.",
            estimate="< 1 s once the lock is granted",
            rollback_sql=_re_add_sql(op, column, archive),
            rollback_description=f"re-add column {op.table}.{op.column}"
            + (
                ""
                if column
                else " with the type kept in the archive (planned offline: no default or NOT NULL)"
            ),
        )
    )
    return found


def _key(op: DropColumn, live: TableInfo | None) -> list[str]:
    if live is None:
        return OFFLINE_KEY
    key = live.primary_key or live.walk_key
    if not key:
        raise SpecError(
            [
                (
                    "archive",
                    f"table {op.table} has no primary key (nor a unique NOT NULL key) to restore values by",
                )
            ]
        )
    return key


def _constant_default(column: ColumnInfo) -> bool:
    return column.default is not None and is_constant(column.default)


def _archive_table_step(
    op: DropColumn, owner: Owner, context: PlanContext, archive: str, key: list[str]
) -> Step:
    keys = ", ".join(quote_ident(part) for part in key)
    comment = (
        f"osctl: values of {op.table}.{op.column} dropped by migration {context.migration or '?'}; "
        "a rollback restores them from here. Drop this table once the change is final."
    )
    return ddl_step(
        owner,
        context,
        stage=Stage.CONTRACT,
        suffix=f"{op.column}.archive_table",
        description=f"create archive {archive} for {op.table}.{op.column}",
        # Identifiers are validated and quoted; nothing else is spliced in.
        sql=f"CREATE TABLE IF NOT EXISTS {quote_ident(archive)} AS SELECT {keys}, {quote_ident(op.column)} "  # noqa: S608
        f"FROM {quote_ident(op.table)} WITH NO DATA; "
        f"CREATE UNIQUE INDEX IF NOT EXISTS {quote_ident(derived_name(archive, suffix='key'))} "
        f"ON {quote_ident(archive)} ({keys}); "
        f"COMMENT ON TABLE {quote_ident(archive)} IS {quote_literal(comment)}",
        risk="An empty new table; nothing locked on the table beyond a brief ACCESS SHARE."
        + ("" if context.tables else f" (Planned offline: the key is assumed to be {', '.join(key)}.)"),
        estimate="< 1 s",
        rollback_sql=f"DROP TABLE IF EXISTS {quote_ident(archive)}",
        rollback_description=f"drop archive {archive} (the values are back in {op.table}.{op.column})",
    )


def _copy_step(op: DropColumn, owner: Owner, context: PlanContext, archive: str, key: list[str]) -> Step:
    keys = ", ".join(quote_ident(part) for part in key)
    copy = ddl_step(
        owner,
        context,
        stage=Stage.CONTRACT,
        suffix=f"{op.column}.archive_values",
        description=f"copy {op.table}.{op.column} with its key into {archive}",
        # DELETE first: a replay after a crash between commit and checkpoint copies afresh.
        sql=f"DELETE FROM {quote_ident(archive)}; INSERT INTO {quote_ident(archive)} "  # noqa: S608
        f"SELECT {keys}, {quote_ident(op.column)} FROM {quote_ident(op.table)}",
        risk="ACCESS SHARE on the table while it is read once: writes go on. One transaction, so a "
        "large table holds back vacuum's horizon for as long as the copy runs.",
        estimate="one table scan; roughly 1-3 s per million rows on idle hardware",
    )
    batch_size = Backfill.model_fields["batch_size"].default
    restore = Step(
        id=f"rollback.{copy.id}",
        stage=Stage.ROLLBACK,
        operation_index=owner.index,
        action=StepAction.BACKFILL,
        description=f"restore {op.table}.{op.column} from {archive}",
        table=op.table,
        backfill=BackfillWork(
            table=op.table,
            column=op.column,
            expression=restore_expression(op, archive, key),
            batch_size=batch_size,
            pause_ms=0,
        ),
        risk=f"Row locks on about {batch_size} rows per short transaction, checkpointed and throttled.",
    )
    return copy.model_copy(update={"rollback": restore})


def restore_expression(op: DropColumn, archive: str, key: list[str]) -> str:
    """The archived value where the row was archived (NULL included), else the row's own value: rows
    inserted since the drop keep what they were given."""
    table = quote_ident(op.table)
    match = " AND ".join(f"a.{quote_ident(part)} = {table}.{quote_ident(part)}" for part in key)
    source = f"FROM {quote_ident(archive)} AS a WHERE {match}"
    return (
        f"CASE WHEN EXISTS (SELECT {source}) THEN (SELECT a.{quote_ident(op.column)} {source}) "
        f"ELSE {quote_ident(op.column)} END"
    )


def _not_null_markers(op: DropColumn, owner: Owner, context: PlanContext) -> list[Step]:
    """Nothing to do forward; their inverses restore NOT NULL after the values are back, each in its
    own transaction so the scan (VALIDATE) runs without a write-blocking lock."""
    table, column = quote_ident(op.table), quote_ident(op.column)
    check = not_null_check_name(op)
    rollback_risk = "catalog-only under ACCESS EXCLUSIVE, waiting at most lock_timeout per attempt"
    inverses = [
        (
            "restore_not_null",
            f"set {op.table}.{op.column} NOT NULL using the validated check, drop the check",
            f"ALTER TABLE {table} ALTER COLUMN {column} SET NOT NULL; "
            f"ALTER TABLE {table} DROP CONSTRAINT IF EXISTS {quote_ident(check)}",
            rollback_risk,
        ),
        (
            "validate_not_null",
            f"validate check {check}: every restored row has a value",
            f"ALTER TABLE {table} VALIDATE CONSTRAINT {quote_ident(check)}",
            "one scan under SHARE UPDATE EXCLUSIVE: writes go on",
        ),
        (
            "check_not_null",
            f"add check {check} ({op.column} IS NOT NULL) NOT VALID",
            unless_constraint(
                op.table,
                check,
                f"ALTER TABLE {table} ADD CONSTRAINT {quote_ident(check)} "
                f"CHECK ({column} IS NOT NULL) NOT VALID",
            ),
            rollback_risk,
        ),
    ]
    return [
        ddl_step(
            owner,
            context,
            stage=Stage.CONTRACT,
            suffix=f"{op.column}.{suffix}",
            description=f"nothing now; on rollback: {description}",
            sql=None,
            action=StepAction.NOOP,
            risk=f"None now. On rollback: {risk}.",
            estimate="nothing now",
            rollback_sql=sql,
            rollback_description=description,
        )
        for suffix, description, sql, risk in inverses
    ]


def _re_add_sql(op: DropColumn, column: ColumnInfo | None, archive: str) -> str:
    table, name = quote_ident(op.table), quote_ident(op.column)
    if column is None:
        # Planned offline: the archive kept the exact type, so the rollback reads it from there.
        type_of = (
            f"(SELECT format_type(atttypid, atttypmod) FROM pg_attribute "  # noqa: S608
            f"WHERE attrelid = {regclass(archive)} AND attname = {quote_literal(op.column)})"
        )
        return do_block(
            f"EXECUTE format('ALTER TABLE %I ADD COLUMN IF NOT EXISTS %I %s', "
            f"{quote_literal(op.table)}, {quote_literal(op.column)}, {type_of});"
        )
    try:
        type_name = check_type_name(column.type)
    except ValueError as error:
        raise SpecError(
            [("archive", f"cannot plan re-adding {op.table}.{op.column} on rollback: {error}")]
        ) from error
    add = f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {name} {type_name}"
    if column.default is None:
        return add
    check_expression_at(column.default, "archive")
    if not column.nullable and is_constant(column.default):
        return f"{add} DEFAULT {column.default} NOT NULL"
    # A volatile default in ADD COLUMN would rewrite the table: set it apart, in the same transaction.
    return f"{add}; ALTER TABLE {table} ALTER COLUMN {name} SET DEFAULT {column.default}"
