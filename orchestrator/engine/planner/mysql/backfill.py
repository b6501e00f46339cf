"""backfill: chunked, checkpointed UPDATE; the expression is parsed (sqlglot, MySQL dialect) to be one
scalar expression over the row, because the target splices it into its UPDATE and WHERE clauses."""

from __future__ import annotations

import sqlglot
from sqlglot import exp
from sqlglot.dialects.mysql import MySQL
from sqlglot.errors import ParseError, TokenError

from orchestrator.domain.errors import SpecError
from orchestrator.domain.operations import Backfill
from orchestrator.domain.plan import BackfillWork, Stage, Step, StepAction
from orchestrator.engine.planner.context import PlanContext, step_id

# Functions that act beyond computing a value: they wait, lock, read files or move sequences.
_SIDE_EFFECTS = {
    "benchmark",
    "get_lock",
    "is_free_lock",
    "is_used_lock",
    "last_insert_id",
    "lastval",
    "load_file",
    "master_gtid_wait",
    "master_pos_wait",
    "nextval",
    "release_all_locks",
    "release_lock",
    "setval",
    "sleep",
    "source_pos_wait",
}


_NO_SUBQUERIES = "subqueries are not allowed: the expression reads the row being updated only"


def _refuse(message: str) -> SpecError:
    return SpecError([("expression", message)])


def _parse(expression: str) -> exp.Expression:
    """The expression's tree, or SpecError saying why it cannot be spliced into a statement."""
    try:
        tokens = MySQL().tokenize(expression)
    except TokenError as error:
        raise _refuse(f"not a valid MySQL expression: {error}") from error
    if any(token.comments for token in tokens):
        # MySQL runs /*! ... */ as code, and `--` or `#` would hide the rest of the statement.
        raise _refuse("comments are not allowed in a backfill expression")
    try:
        statements = sqlglot.parse(f"SELECT ({expression})", read="mysql")
    except ParseError as error:
        raise _refuse(f"not a valid MySQL expression: {error.errors[0]['description']}") from error
    if len(statements) != 1 or not isinstance(statements[0], exp.Select):
        raise _refuse("must be a single expression, not several statements")
    select = statements[0]
    clauses = [name for name, value in select.args.items() if value and name != "expressions"]
    if clauses or len(select.expressions) != 1:
        raise _refuse("must be a single scalar expression over the row's columns (no FROM, no clauses)")
    [wrapped] = select.expressions
    if isinstance(wrapped, exp.Subquery):
        raise _refuse(_NO_SUBQUERIES)
    # `1) OR (1` parses once wrapped in parentheses, but not as one parenthesised whole.
    if not isinstance(wrapped, exp.Paren) or isinstance(wrapped.this, exp.Tuple | exp.Star):
        raise _refuse("must be a single scalar expression over the row's columns")
    inner: exp.Expression = wrapped.this
    return inner


def check_expression(expression: str) -> None:
    """Refuse anything but one side-effect-free scalar expression over the row's own columns."""
    tree = _parse(expression)
    for node in tree.walk():
        if isinstance(node, exp.Select | exp.Subquery):
            raise _refuse(_NO_SUBQUERIES)
        if isinstance(node, exp.PropertyEQ | exp.Parameter | exp.SessionParameter | exp.Placeholder):
            raise _refuse("variables, assignments and placeholders are not allowed in a backfill expression")
        if isinstance(node, exp.Star):
            raise _refuse("`*` is not a scalar expression")
        name = node.name if isinstance(node, exp.Anonymous) else None
        if name and name.lower() in _SIDE_EFFECTS:
            raise _refuse(f"{name}() has side effects; a backfill expression must only compute a value")


def referenced_columns(expression: str) -> set[str]:
    """The column names an expression reads; empty when it does not parse (the planner says why)."""
    try:
        tree = _parse(expression)
    except SpecError:
        return set()
    return {column.name for column in tree.find_all(exp.Column) if column.name}


def plan(op: Backfill, index: int, context: PlanContext) -> None:
    check_expression(op.expression)
    key = (op.table, op.column)
    if key in context.dropped_columns:
        raise SpecError([("column", f"column {op.table}.{op.column} is dropped by this spec")])
    context.backfilled_columns.add(key)
    if key in context.added_columns:
        irreversible = None  # the column's own rollback (drop) discards what the backfill wrote
    else:
        irreversible = (
            f"the backfill overwrites existing values of {op.table}.{op.column}; "
            "they cannot be restored by reversing DDL"
        )
    context.add(
        Step(
            id=step_id(Stage.BACKFILL, index, op.kind, op.column),
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
                "Row locks on one key range per short READ COMMITTED transaction (the first chunk "
                f"{op.batch_size} rows, later ones sized to {op.chunk_target_ms} ms); rows already equal "
                "to the expression (<=>) are skipped, so a replayed chunk writes nothing. Each chunk "
                "replicates as one row-based transaction."
            ),
            estimate="proportional to the table's rows; progress and ETA are reported while it runs",
            irreversible_reason=irreversible,
        )
    )
