"""create_index: CREATE INDEX CONCURRENTLY, outside a transaction; undone by DROP INDEX CONCURRENTLY.

Unique, partial (`where`), expression (`expressions`, after any plain columns) and any method. The
expressions and the predicate are spliced into the statement, so each must parse as exactly one
scalar expression.
"""

from __future__ import annotations

from dataclasses import dataclass

from orchestrator.domain.errors import SpecError
from orchestrator.domain.identifiers import quote_ident
from orchestrator.domain.operations import CreateIndex, IndexMethod
from orchestrator.domain.plan import Stage, StepAction
from orchestrator.engine.planner.context import PlanContext
from orchestrator.engine.planner.postgres.constraint_steps import Owner, ddl_step
from orchestrator.engine.planner.postgres.ddl_text import check_expression_at

BUILD_RISK = "No write lock: SHARE UPDATE EXCLUSIVE only. Waits for older transactions before each phase."
BUILD_ESTIMATE = "two table scans plus a sort; roughly 1-3 s per million rows on idle hardware"


@dataclass(frozen=True)
class IndexShape:
    """What an index is, as create_index takes it and drop_index describes it for its rebuild."""

    table: str
    name: str
    columns: tuple[str, ...] = ()
    expressions: tuple[str, ...] = ()
    unique: bool = False
    method: IndexMethod = "btree"
    where: str | None = None

    def keys(self) -> list[str]:
        return [quote_ident(column) for column in self.columns] + [f"({e})" for e in self.expressions]

    def create_sql(self) -> str:
        unique = "UNIQUE " if self.unique else ""
        sql = (
            f"CREATE {unique}INDEX CONCURRENTLY IF NOT EXISTS {quote_ident(self.name)} "
            f"ON {quote_ident(self.table)} USING {self.method} ({', '.join(self.keys())})"
        )
        return sql + (f" WHERE ({self.where})" if self.where else "")

    def drop_sql(self) -> str:
        return f"DROP INDEX CONCURRENTLY IF EXISTS {quote_ident(self.name)}"

    def problems(self) -> list[tuple[str, str]]:
        """What PostgreSQL would refuse, found before anything runs, at the field to fix."""
        found: list[tuple[str, str]] = []
        for position, expression in enumerate(self.expressions):
            try:
                check_expression_at(expression, f"expressions.{position}")
            except SpecError as error:
                found.extend(error.problems)
        if self.where is not None:
            try:
                check_expression_at(self.where, "where")
            except SpecError as error:
                found.extend(error.problems)
        if self.unique and self.method != "btree":
            found.append(("method", "only btree indexes can be unique in PostgreSQL"))
        if self.method == "hash" and len(self.columns) + len(self.expressions) > 1:
            found.append(("method", "a hash index has exactly one key: use btree for several"))
        return found

    def build_risk(self) -> str:
        risk = BUILD_RISK
        if self.unique:
            risk += " Fails if duplicates exist; the INVALID index is dropped before any retry."
        return risk


def shape_of(op: CreateIndex) -> IndexShape:
    return IndexShape(
        table=op.table,
        name=op.name,
        columns=tuple(op.columns),
        expressions=tuple(op.expressions),
        unique=op.unique,
        method=op.method,
        where=op.where,
    )


def plan(op: CreateIndex, index: int, context: PlanContext) -> None:
    if op.name in context.index_names:
        raise SpecError([("name", f"index {op.name} is created twice in this spec")])
    context.index_names.add(op.name)
    shape = shape_of(op)
    problems = shape.problems()
    if problems:
        raise SpecError(problems)
    context.add(
        ddl_step(
            Owner(index=index, kind=op.kind, table=op.table),
            context,
            stage=Stage.EXPAND,
            suffix=op.name,
            description=op.describe(),
            sql=shape.create_sql(),
            risk=shape.build_risk(),
            estimate=BUILD_ESTIMATE,
            rollback_sql=shape.drop_sql(),
            rollback_description=f"drop index {op.name}",
            action=StepAction.CREATE_INDEX_CONCURRENTLY,
            index_name=op.name,
        )
    )
