"""The steps a synced column is made of, each beside its inverse: shared by rename_column and
alter_column, which differ in which stage each step runs in and in how contract swaps the columns."""

from __future__ import annotations

from orchestrator.domain.identifiers import quote_ident
from orchestrator.domain.plan import BackfillWork, Stage, Step, StepAction
from orchestrator.engine.planner.context import PlanContext
from orchestrator.engine.planner.postgres.column_facts import IndexRebuild
from orchestrator.engine.planner.postgres.constraint_steps import (
    CATALOG_ONLY_ESTIMATE,
    Owner,
    ddl_step,
    drop_constraint_sql,
)
from orchestrator.engine.planner.postgres.ddl_text import derived_name, unless_constraint
from orchestrator.engine.planner.postgres.sync_triggers import SyncPair, install_sql, remove_sql

COPY_BATCH_ROWS = 1000
SYNC_RISK = (
    "ACCESS EXCLUSIVE lock for catalog-only changes (the new column has no value to write yet); waits "
    "at most lock_timeout per attempt. From then on every INSERT and UPDATE of the table runs the "
    "sync trigger: a few comparisons per row."
)


def not_null_check_name(table: str, column: str) -> str:
    return derived_name("_osc", table, column, suffix="not_null")


def install_step(
    owner: Owner, context: PlanContext, pair: SyncPair, *, stage: Stage, add_column: list[str], note: str
) -> Step:
    """The new column and the trigger, in one transaction; undone by dropping both."""
    table = quote_ident(pair.table)
    sql = ";\n".join([*add_column, install_sql(pair)])
    return ddl_step(
        owner,
        context,
        stage=stage,
        suffix=pair.new,
        description=f"add {pair.table}.{pair.new}, kept in step with {pair.old} both ways by trigger "
        f"{pair.name}{note}",
        sql=sql,
        risk=SYNC_RISK,
        estimate=CATALOG_ONLY_ESTIMATE,
        rollback_sql=f"{remove_sql(pair)};\nALTER TABLE {table} DROP COLUMN IF EXISTS {quote_ident(pair.new)}",
        rollback_description=f"drop trigger {pair.name}, its function and column {pair.table}.{pair.new}",
    )


def copy_step(
    owner: Owner, context: PlanContext, *, stage: Stage, column: str, expression: str, rows: int
) -> Step:
    """The rows written before the trigger existed, copied in chunks along the primary key. Nothing
    to undo: dropping the new column (the install step's inverse) discards what was copied."""
    estimate = "proportional to the table's rows; progress and ETA are reported while it runs"
    if rows:
        estimate = f"~{rows} rows; " + estimate
    return Step(
        id=owner.step_id(stage, f"{column}.copy"),
        stage=stage,
        operation_index=owner.index,
        action=StepAction.BACKFILL,
        description=f"copy {owner.table}.{column} = {expression} for the rows written before the trigger",
        table=owner.table,
        backfill=BackfillWork(
            table=owner.table,
            column=column,
            expression=expression,
            batch_size=COPY_BATCH_ROWS,
            pause_ms=0,
        ),
        risk=(
            f"Row locks on up to {COPY_BATCH_ROWS} rows per short transaction (the chunk adapts to "
            "its time target); rows already equal are skipped, so a replayed chunk writes nothing."
        ),
        estimate=estimate,
    )


def not_null_steps(
    owner: Owner, context: PlanContext, *, stage: Stage, column: str, label: str | None = None
) -> list[Step]:
    """CHECK (column IS NOT NULL) NOT VALID, then VALIDATE: contract's SET NOT NULL then trusts the
    validated check instead of scanning the table under ACCESS EXCLUSIVE (PostgreSQL 12+). The
    check is named after `label` (the column's lasting name) when given."""
    name = not_null_check_name(owner.table, label or column)
    table = quote_ident(owner.table)
    add = (
        f"ALTER TABLE {table} ADD CONSTRAINT {quote_ident(name)} "
        f"CHECK ({quote_ident(column)} IS NOT NULL) NOT VALID"
    )
    return [
        ddl_step(
            owner,
            context,
            stage=stage,
            suffix=f"{column}.not_null",
            description=f"add check {name} ({column} IS NOT NULL) NOT VALID",
            sql=unless_constraint(owner.table, name, add),
            risk="ACCESS EXCLUSIVE lock for a catalog-only change (NOT VALID: no scan); new writes "
            "are checked from now on, and the trigger fills the column on every write.",
            estimate=CATALOG_ONLY_ESTIMATE,
            rollback_sql=drop_constraint_sql(owner.table, name),
            rollback_description=f"drop check {name}",
        ),
        ddl_step(
            owner,
            context,
            stage=stage,
            suffix=f"{column}.validate",
            description=f"validate check {name} on {owner.table}",
            sql=f"ALTER TABLE {table} VALIDATE CONSTRAINT {quote_ident(name)}",
            risk="SHARE UPDATE EXCLUSIVE while every row is checked: reads and writes go on. Fails, "
            "naming the constraint, if a row still holds NULL.",
            estimate="one table scan; roughly 0.5-2 s per million rows on idle hardware",
        ),
    ]


def rebuild_steps(
    owner: Owner, context: PlanContext, *, stage: Stage, rebuilds: tuple[IndexRebuild, ...]
) -> list[Step]:
    """Each index over the old column, built again over the new one without blocking writes."""
    return [
        ddl_step(
            owner,
            context,
            stage=stage,
            suffix=f"index.{rebuild.name}",
            description=f"build {rebuild.copy}, a copy of index {rebuild.name} over the new column, "
            "concurrently",
            sql=rebuild.sql,
            risk="No write lock: SHARE UPDATE EXCLUSIVE only. Waits for older transactions before "
            "each phase; an INVALID leftover is dropped before a retry.",
            estimate="two table scans plus a sort; roughly 1-3 s per million rows on idle hardware",
            rollback_sql=f"DROP INDEX CONCURRENTLY IF EXISTS {quote_ident(rebuild.copy)}",
            rollback_description=f"drop index {rebuild.copy}",
            action=StepAction.CREATE_INDEX_CONCURRENTLY,
            index_name=rebuild.copy,
        )
        for rebuild in rebuilds
    ]


def take_over_sql(table: str, rebuilds: tuple[IndexRebuild, ...], *, guarded: bool = False) -> list[str]:
    """Contract, once the old column (and with it its indexes) is gone: the copies take the old
    names, and a copy of a UNIQUE constraint's index becomes that constraint again. `guarded`: the
    statements run only when the swap has not happened yet, so no existence check is needed."""
    statements = []
    for rebuild in rebuilds:
        if rebuild.constraint:
            attach = (
                f"ALTER TABLE {quote_ident(table)} ADD CONSTRAINT {quote_ident(rebuild.constraint)} "
                f"UNIQUE USING INDEX {quote_ident(rebuild.copy)}"
            )
            statements.append(attach if guarded else unless_constraint(table, rebuild.constraint, attach))
        else:
            statements.append(
                f"ALTER INDEX IF EXISTS {quote_ident(rebuild.copy)} RENAME TO {quote_ident(rebuild.name)}"
            )
    return statements
