"""backfill: chunked, checkpointed UPDATE; the expression is parsed to be one scalar expression."""

from __future__ import annotations

import pglast
from pglast import ast
from pglast.visitors import Visitor

from orchestrator.domain.errors import SpecError
from orchestrator.domain.operations import Backfill
from orchestrator.domain.plan import BackfillWork, Stage, Step, StepAction
from orchestrator.engine.planner.context import PlanContext, step_id


def check_expression(expression: str) -> None:
    """The expression is spliced into an UPDATE, so it must parse as exactly one scalar expression."""
    try:
        statements = pglast.parse_sql(f"SELECT ({expression})")
    except pglast.parser.ParseError as error:
        raise SpecError([("expression", f"not a valid SQL expression: {error}")]) from error
    if len(statements) != 1:
        raise SpecError([("expression", "must be a single expression, not several statements")])
    select = statements[0].stmt
    if not isinstance(select, ast.SelectStmt) or select.fromClause or len(select.targetList or ()) != 1:
        raise SpecError([("expression", "must be a single scalar expression over the row's columns")])


def referenced_columns(expression: str) -> set[str]:
    """The column names an expression reads (the last part of each column reference)."""
    names: set[str] = set()

    class Collector(Visitor):
        def visit_ColumnRef(self, _ancestors: object, node: ast.ColumnRef) -> None:
            last = node.fields[-1] if node.fields else None
            if isinstance(last, ast.String) and last.sval:
                names.add(last.sval)

    Collector()(pglast.parse_sql(f"SELECT ({expression})"))
    return names


def plan(op: Backfill, index: int, context: PlanContext) -> None:
    check_expression(op.expression)
    key = (op.table, op.column)
    if key in context.dropped_columns:
        raise SpecError([("column", f"column {op.table}.{op.column} is dropped by this spec")])
    context.backfilled_columns.add(key)
    forward_id = step_id(Stage.BACKFILL, index, op.kind, op.column)
    if key in context.added_columns:
        irreversible = None  # the column's own rollback (drop) discards what the backfill wrote
    else:
        irreversible = (
            f"the backfill overwrites existing values of {op.table}.{op.column}; "
            "they cannot be restored by reversing DDL"
        )
    context.add(
        Step(
            id=forward_id,
            stage=Stage.BACKFILL,
            operation_index=index,
            action=StepAction.BACKFILL,
            description=op.describe(),
            table=op.table,
            backfill=BackfillWork(
                table=op.table,
                column=op.column,
                expression=op.expression,
                batch_size=op.batch_size,
                pause_ms=op.pause_ms,
                chunk_target_ms=op.chunk_target_ms,
                adaptive=op.adaptive,
            ),
            risk=(
                f"Row locks on {op.batch_size} rows per short transaction; "
                "rows already correct are skipped, so a replayed chunk writes nothing."
            ),
            estimate="proportional to the table's rows; progress and ETA are reported while it runs",
            irreversible_reason=irreversible,
        )
    )
