"""The ADD COLUMN step itself: catalog-only in every variant, undone by dropping the column."""

from __future__ import annotations

from orchestrator.domain.identifiers import quote_ident, quote_literal
from orchestrator.domain.operations import AddColumn, ColumnDefinition
from orchestrator.domain.plan import Stage, Step
from orchestrator.engine.planner.context import PlanContext
from orchestrator.engine.planner.postgres.constraint_steps import (
    CATALOG_ONLY_ESTIMATE,
    CATALOG_ONLY_RISK,
    Owner,
    ddl_step,
)


def needs_fill(definition: ColumnDefinition) -> bool:
    """Existing rows need values the catalog cannot hold for them: computed per row, or volatile."""
    return definition.backfill is not None or definition.default_expression is not None


def default_sql(definition: ColumnDefinition) -> str | None:
    if definition.default is not None:
        return quote_literal(definition.default)
    if definition.default_expression is not None:
        return f"({definition.default_expression})"
    return None


def add_step(op: AddColumn, owner: Owner, context: PlanContext) -> Step:
    definition = op.column
    table, name = quote_ident(op.table), quote_ident(definition.name)
    # IF NOT EXISTS makes a replay after a crash between commit and checkpoint a no-op.
    add = f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {name} {definition.type}"
    default = default_sql(definition)
    if not needs_fill(definition):
        # A constant default is stored in the catalog for the existing rows (PostgreSQL 11+), so even
        # NOT NULL holds at once without a rewrite or a scan.
        sql = add + (f" DEFAULT {default}" if default else "") + ("" if definition.nullable else " NOT NULL")
        risk = CATALOG_ONLY_RISK
    else:
        # Added nullable and without a default (a volatile default in ADD COLUMN would rewrite the
        # table under its ACCESS EXCLUSIVE lock), then the default set in the same transaction: no row
        # is ever inserted between the two without it, so every row committed after this step has
        # its value and every row from before is NULL, which is exactly what the backfill fills.
        sql = (
            add
            if default is None
            else f"{add}; ALTER TABLE {table} ALTER COLUMN {name} SET DEFAULT {default}"
        )
        risk = (
            CATALOG_ONLY_RISK
            + " The column is added nullable"
            + (" with its default for new rows" if default else "")
            + "; existing rows are filled in the backfill stage"
            + ("" if definition.nullable else ", then NOT NULL is enforced")
            + "."
        )
    return ddl_step(
        owner,
        context,
        stage=Stage.EXPAND,
        suffix=definition.name,
        description=op.describe(),
        sql=sql,
        risk=risk,
        estimate=CATALOG_ONLY_ESTIMATE,
        rollback_sql=f"ALTER TABLE {table} DROP COLUMN IF EXISTS {name}",
        rollback_description=f"drop column {op.table}.{definition.name}",
    )
