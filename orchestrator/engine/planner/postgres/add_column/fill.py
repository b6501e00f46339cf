"""Filling existing rows of a new column, then NOT NULL without a scan under a write-blocking lock.

NOT NULL is proven by CHECK (column IS NOT NULL): added NOT VALID (catalog-only), validated under
SHARE UPDATE EXCLUSIVE (writes go on), after which SET NOT NULL (PostgreSQL 12+) uses the validated
check instead of scanning, and the check is dropped. The CHECK comes after the backfill, in the
backfill stage: the old application version, gone after the gate, never writes the column, and a
NOT VALID check would also reject its UPDATE of any row the backfill had not reached yet.
"""

from __future__ import annotations

from orchestrator.domain.identifiers import quote_ident
from orchestrator.domain.operations import AddColumn, Backfill
from orchestrator.domain.plan import BackfillWork, Stage, Step, StepAction
from orchestrator.engine.planner.context import PlanContext
from orchestrator.engine.planner.postgres.constraint_steps import (
    CATALOG_ONLY_ESTIMATE,
    CATALOG_ONLY_RISK,
    Owner,
    check_step,
    ddl_step,
    validate_step,
)


def _backfill_default(field: str) -> int:
    value = Backfill.model_fields[field].default
    assert isinstance(value, int)
    return value


def fill_expression(op: AddColumn) -> str:
    """Only NULLs are filled: a row the new application version (or the default) already gave a
    value keeps it, which also makes a replayed chunk, and the verification pass, see nothing to do.
    The cast lets the expression's type differ from the column's as an assignment would."""
    definition = op.column
    source = definition.backfill or definition.default_expression
    assert source is not None
    return f"coalesce({quote_ident(definition.name)}, ({source})::{definition.type})"


def backfill_step(op: AddColumn, owner: Owner) -> Step:
    definition = op.column
    source = definition.backfill or definition.default_expression
    batch_size = _backfill_default("batch_size")
    return Step(
        id=owner.step_id(Stage.BACKFILL, f"{definition.name}.fill"),
        stage=Stage.BACKFILL,
        operation_index=owner.index,
        action=StepAction.BACKFILL,
        description=f"fill {op.table}.{definition.name} of existing rows with {source}",
        table=op.table,
        backfill=BackfillWork(
            table=op.table,
            column=definition.name,
            expression=fill_expression(op),
            batch_size=batch_size,
            pause_ms=_backfill_default("pause_ms"),
            chunk_target_ms=_backfill_default("chunk_target_ms"),
        ),
        risk=(
            f"Row locks on about {batch_size} rows per short transaction (the size adapts to a time "
            "target); rows that already have a value are skipped."
        ),
        estimate="proportional to the table's rows; progress and ETA are reported while it runs",
        # The column's own rollback (drop) discards whatever the fill wrote.
    )


def not_null_steps(op: AddColumn, owner: Owner, context: PlanContext, check_name: str) -> list[Step]:
    column = op.column.name
    table, name = quote_ident(op.table), quote_ident(column)
    set_not_null = ddl_step(
        owner,
        context,
        stage=Stage.BACKFILL,
        suffix=f"{column}.set_not_null",
        description=f"set {op.table}.{column} NOT NULL using the validated check, drop the check",
        # Two statements, not two subcommands of one ALTER TABLE: that would drop the check before
        # SET NOT NULL looks for it, and scan the table under ACCESS EXCLUSIVE.
        sql=f"ALTER TABLE {table} ALTER COLUMN {name} SET NOT NULL; "
        f"ALTER TABLE {table} DROP CONSTRAINT IF EXISTS {quote_ident(check_name)}",
        risk=CATALOG_ONLY_RISK + " The validated check proves there is no NULL, so nothing is scanned.",
        estimate=CATALOG_ONLY_ESTIMATE,
        rollback_sql=f"ALTER TABLE {table} ALTER COLUMN {name} DROP NOT NULL",
        rollback_description=f"make {op.table}.{column} nullable again",
    )
    return [
        check_step(
            owner,
            context,
            name=check_name,
            expression=f"{name} IS NOT NULL",
            suffix=f"{column}.not_null_check",
            stage=Stage.BACKFILL,
        ),
        validate_step(owner, context, name=check_name, suffix=f"{column}.validate_not_null", what="check"),
        set_not_null,
    ]
