"""add_foreign_key: NOT VALID in expand (no scan under lock; new writes are checked from then on),
VALIDATE in the backfill stage (a scan under SHARE UPDATE EXCLUSIVE on this table and ROW SHARE on
the referenced one: writes go on).

Without an index leading with the referencing columns, every delete or key update on the referenced
table scans this one, so with `create_index` (the default) one is built concurrently first. Planned
against the target, an existing valid, non-partial index whose leading keys are these columns is
used instead; planned offline, the build is planned and its IF NOT EXISTS keeps a rerun harmless.
"""

from __future__ import annotations

from orchestrator.domain.errors import SpecError
from orchestrator.domain.operations import AddForeignKey
from orchestrator.domain.schema import TableInfo
from orchestrator.engine.planner.context import PlanContext
from orchestrator.engine.planner.postgres.constraint_steps import (
    Owner,
    foreign_key_step,
    index_step,
    validate_step,
)
from orchestrator.engine.planner.postgres.ddl_text import derived_name


def index_name(op: AddForeignKey) -> str:
    return derived_name(op.table, *op.columns, suffix="idx")


def has_leading_index(table: TableInfo | None, columns: list[str]) -> bool:
    if table is None:
        return False
    for info in table.indexes.values():
        keys = info.keys or info.columns
        if info.valid and info.predicate is None and keys[: len(columns)] == columns:
            return True
    return False


def needs_index(op: AddForeignKey, context: PlanContext) -> bool:
    if not op.create_index:
        return False
    live = context.tables.get(op.table) if context.tables is not None else None
    return not has_leading_index(live, list(op.columns))


def plan(op: AddForeignKey, index: int, context: PlanContext) -> None:
    problems = []
    if len(op.columns) != len(op.references.columns):
        problems.append(
            (
                "references.columns",
                f"{len(op.columns)} referencing column(s) but {len(op.references.columns)} referenced",
            )
        )
    if len(set(op.columns)) != len(op.columns):
        problems.append(("columns", "a column appears twice"))
    if problems:
        raise SpecError(problems)
    owner = Owner(index=index, kind=op.kind, table=op.table)
    if needs_index(op, context):
        name = index_name(op)
        if name not in context.index_names:
            context.index_names.add(name)
            context.add(
                index_step(
                    owner,
                    context,
                    name=name,
                    columns=list(op.columns),
                    unique=False,
                    suffix=f"{op.name}.index",
                )
            )
    context.add(
        foreign_key_step(
            owner, context, name=op.name, columns=list(op.columns), references=op.references, suffix=op.name
        )
    )
    context.add(validate_step(owner, context, name=op.name, suffix=f"{op.name}.validate", what="foreign key"))
