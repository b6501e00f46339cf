"""create_index: ALGORITHM=INPLACE, LOCK=NONE (writes go on while it builds); undone by DROP INDEX."""

from __future__ import annotations

from orchestrator.domain.errors import SpecError
from orchestrator.domain.operations import CreateIndex
from orchestrator.domain.plan import Stage, Step, StepAction
from orchestrator.engine.planner.context import PlanContext, step_id
from orchestrator.engine.planner.mysql.sql import quote_name

INPLACE = "ALGORITHM=INPLACE, LOCK=NONE"


def plan(op: CreateIndex, index: int, context: PlanContext) -> None:
    if op.name in context.index_names:
        raise SpecError([("name", f"index {op.name} is created twice in this spec")])
    context.index_names.add(op.name)
    if op.method != "btree":
        raise SpecError([("method", f"InnoDB builds btree indexes only, not {op.method}")])

    table, name = quote_name(op.table), quote_name(op.name)
    unique = "UNIQUE " if op.unique else ""
    columns = ", ".join(quote_name(column) for column in op.columns)
    forward_id = step_id(Stage.EXPAND, index, op.kind, op.name)
    risk = (
        "Reads and writes go on while InnoDB builds it (LOCK=NONE); a brief exclusive metadata lock at "
        "the start and the end, each waited for at most lock_timeout per attempt. Replicas build it "
        "after the primary has: expect replica lag for as long as the build takes."
    )
    if op.unique:
        risk += " Fails if duplicates exist or are written during the build; nothing is left behind."
    context.add(
        Step(
            id=forward_id,
            stage=Stage.EXPAND,
            operation_index=index,
            action=StepAction.DDL,
            description=op.describe(),
            sql=f"ALTER TABLE {table} ADD {unique}INDEX {name} ({columns}), {INPLACE}",
            transactional=False,
            table=op.table,
            index_name=op.name,
            lock_timeout_ms=context.lock_timeout_ms,
            risk=risk,
            estimate="one scan and sort of the table; roughly 1-5 s per million rows on idle hardware",
            rollback=Step(
                id=f"rollback.{forward_id}",
                stage=Stage.ROLLBACK,
                operation_index=index,
                action=StepAction.DDL,
                description=f"drop index {op.name}",
                sql=f"ALTER TABLE {table} DROP INDEX {name}, {INPLACE}",
                transactional=False,
                table=op.table,
                index_name=op.name,
                lock_timeout_ms=context.lock_timeout_ms,
            ),
        )
    )
