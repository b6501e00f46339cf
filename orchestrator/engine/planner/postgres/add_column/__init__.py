"""add_column on a live table, in every variant, each step beside its inverse.

- nullable, or a constant default (NOT NULL or not): one catalog-only ADD COLUMN (PostgreSQL 11+
  stores the constant instead of rewriting the table).
- a volatile default (`default_expression`) or values computed from the row (`backfill`): the column
  is added nullable with its default for new rows, existing rows are filled in the backfill stage,
  then NOT NULL is proven by a validated CHECK and set without a scan (see `fill`).
- `unique`: a unique index built concurrently, then attached as a constraint (catalog-only).
- `references`: an index on the column built concurrently, the foreign key added NOT VALID in
  expand, validated after the backfill.
"""

from __future__ import annotations

from orchestrator.domain.errors import SpecError
from orchestrator.domain.operations import AddColumn
from orchestrator.engine.planner.context import PlanContext
from orchestrator.engine.planner.postgres.add_column import column, fill
from orchestrator.engine.planner.postgres.add_column.names import ColumnNames, column_names
from orchestrator.engine.planner.postgres.constraint_steps import (
    Owner,
    attach_unique_step,
    foreign_key_step,
    index_step,
    validate_step,
)
from orchestrator.engine.planner.postgres.ddl_text import check_expression_at, reads_columns

__all__ = ["ColumnNames", "column_names", "plan"]


def plan(op: AddColumn, index: int, context: PlanContext) -> None:
    definition = op.column
    key = (op.table, definition.name)
    if key in context.added_columns:
        raise SpecError([("column.name", f"column {op.table}.{definition.name} is added twice in this spec")])
    context.added_columns.add(key)
    _check(op)

    owner = Owner(index=index, kind=op.kind, table=op.table)
    names = column_names(op)
    for name in names.relations(op):
        if name in context.index_names:
            raise SpecError([("column.name", f"an index named {name} is already created in this spec")])
        context.index_names.add(name)
    context.add(column.add_step(op, owner, context))
    if definition.unique:
        context.add(
            index_step(
                owner,
                context,
                name=names.unique,
                columns=[definition.name],
                unique=True,
                suffix=f"{definition.name}.unique_index",
            )
        )
        context.add(attach_unique_step(owner, context, name=names.unique, suffix=f"{definition.name}.unique"))
    if definition.references is not None:
        if not definition.unique:  # the unique index already leads with the column
            context.add(
                index_step(
                    owner,
                    context,
                    name=names.foreign_key_index,
                    columns=[definition.name],
                    unique=False,
                    suffix=f"{definition.name}.foreign_key_index",
                )
            )
        context.add(
            foreign_key_step(
                owner,
                context,
                name=names.foreign_key,
                columns=[definition.name],
                references=definition.references,
                suffix=f"{definition.name}.foreign_key",
            )
        )

    if column.needs_fill(definition):
        context.backfilled_columns.add(key)
        context.add(fill.backfill_step(op, owner))
    if definition.references is not None:
        context.add(
            validate_step(
                owner,
                context,
                name=names.foreign_key,
                what="foreign key",
                suffix=f"{definition.name}.validate_foreign_key",
            )
        )
    if column.needs_fill(definition) and not definition.nullable:
        for step in fill.not_null_steps(op, owner, context, names.not_null_check):
            context.add(step)


def _check(op: AddColumn) -> None:
    definition = op.column
    problems: list[tuple[str, str]] = []
    for field, expression in (
        ("column.default_expression", definition.default_expression),
        ("column.backfill", definition.backfill),
    ):
        if expression is None:
            continue
        try:
            check_expression_at(expression, field)
        except SpecError as error:
            problems.extend(error.problems)
    if definition.default_expression is not None and not problems:
        read = reads_columns(definition.default_expression)
        if read:
            problems.append(
                (
                    "column.default_expression",
                    f"a default cannot read columns ({', '.join(sorted(read))}): give the values of "
                    "existing rows as 'backfill' and let the application write them for new rows",
                )
            )
    if definition.unique and definition.default is not None:
        problems.append(
            (
                "column.unique",
                "a unique column with a constant default: every row taking the default would collide; "
                "use a 'default_expression' (e.g. gen_random_uuid()) or no default",
            )
        )
    if problems:
        raise SpecError(problems)
