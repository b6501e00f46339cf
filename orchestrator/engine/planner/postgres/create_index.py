"""create_index: CREATE INDEX CONCURRENTLY, outside a transaction; undone by DROP INDEX CONCURRENTLY."""

from __future__ import annotations

from orchestrator.domain.errors import SpecError
from orchestrator.domain.identifiers import quote_ident
from orchestrator.domain.operations import CreateIndex
from orchestrator.domain.plan import Stage, Step, StepAction
from orchestrator.engine.planner.context import PlanContext, step_id


def plan(op: CreateIndex, index: int, context: PlanContext) -> None:
    if op.name in context.index_names:
        raise SpecError([("name", f"index {op.name} is created twice in this spec")])
    context.index_names.add(op.name)
    if op.unique and op.method != "btree":
        raise SpecError([("method", "only btree indexes can be unique in PostgreSQL")])

    unique = "UNIQUE " if op.unique else ""
    columns = ", ".join(quote_ident(column) for column in op.columns)
    forward_sql = (
        f"CREATE {unique}INDEX CONCURRENTLY IF NOT EXISTS {quote_ident(op.name)} "
        f"ON {quote_ident(op.table)} USING {op.method} ({columns})"
    )
    forward_id = step_id(Stage.EXPAND, index, op.kind, op.name)
    risk = "No write lock: SHARE UPDATE EXCLUSIVE only. Waits for older transactions before each phase."
    if op.unique:
        risk += " Fails if duplicates exist; the INVALID index is dropped before any retry."
    context.add(
        Step(
            id=forward_id,
            stage=Stage.EXPAND,
            operation_index=index,
            action=StepAction.CREATE_INDEX_CONCURRENTLY,
            description=op.describe(),
            sql=forward_sql,
            transactional=False,
            table=op.table,
            index_name=op.name,
            lock_timeout_ms=context.lock_timeout_ms,
            risk=risk,
            estimate="two table scans plus a sort; roughly 1-3 s per million rows on idle hardware",
            rollback=Step(
                id=f"rollback.{forward_id}",
                stage=Stage.ROLLBACK,
                operation_index=index,
                action=StepAction.DROP_INDEX_CONCURRENTLY,
                description=f"drop index {op.name}",
                sql=f"DROP INDEX CONCURRENTLY IF EXISTS {quote_ident(op.name)}",
                transactional=False,
                table=op.table,
                index_name=op.name,
                lock_timeout_ms=context.lock_timeout_ms,
            ),
        )
    )
