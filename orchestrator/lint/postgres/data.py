"""UPDATE and DELETE in a migration: one statement over many rows is one long transaction.

A statement is taken as targeted when its WHERE pins a key (`id = ...`, `id IN (...)`, `id BETWEEN
... AND ...`, or both ends of a range on `id`, `*_id` or ctid) to constants or a LIMITed subquery;
without WHERE it touches every row (error), with any other WHERE it may (warning).
"""

from __future__ import annotations

from pglast import ast, enums

from orchestrator.lint.context import FileContext
from orchestrator.lint.findings import Severity
from orchestrator.lint.postgres.nodes import column_name, is_constant, relation_name, strings
from orchestrator.lint.rules import Site


def data_change(node: ast.UpdateStmt | ast.DeleteStmt, site: Site, context: FileContext) -> None:
    table = relation_name(node.relation)
    if context.is_new(table):
        return
    verb = "UPDATE" if isinstance(node, ast.UpdateStmt) else "DELETE"
    if node.whereClause is None:
        site.report(
            "unbatched-data-change",
            f"{verb} of every row of {table} in one statement: all rows stay locked until it commits, "
            "concurrent writes to them wait, and replicas lag by its whole duration.",
        )
    elif not targets_few_rows(node.whereClause):
        site.report(
            "unbatched-data-change",
            f"{verb} on {table} with a WHERE that does not pin a key may touch many rows in one "
            "transaction: they stay locked until it commits and replicas lag by its duration.",
            severity=Severity.WARNING,
        )


def is_key(node: ast.Node | None) -> bool:
    name = (column_name(node) or "").lower()
    return name in ("id", "ctid") or name.endswith("_id")


def targets_few_rows(where: ast.Node) -> bool:
    conjuncts = (
        list(where.args or ())
        if isinstance(where, ast.BoolExpr) and where.boolop == enums.BoolExprType.AND_EXPR
        else [where]
    )
    lower = upper = False
    for term in conjuncts:
        if isinstance(term, ast.A_Expr) and is_key(term.lexpr):
            operator = strings(term.name)[-1] if term.name else ""
            # rexpr is a list for IN and BETWEEN, one node otherwise.
            right = term.rexpr if isinstance(term.rexpr, ast.Node) else None
            if term.kind in (enums.A_Expr_Kind.AEXPR_IN, enums.A_Expr_Kind.AEXPR_BETWEEN):
                return True
            if term.kind == enums.A_Expr_Kind.AEXPR_OP and operator == "=" and is_constant(right):
                return True
            if term.kind == enums.A_Expr_Kind.AEXPR_OP_ANY and is_constant(right):
                return True
            if term.kind == enums.A_Expr_Kind.AEXPR_OP and is_constant(right):
                lower = lower or operator in (">", ">=")
                upper = upper or operator in ("<", "<=")
        elif isinstance(term, ast.SubLink) and is_key(term.testexpr):
            select = term.subselect
            if isinstance(select, ast.SelectStmt) and select.limitCount is not None:
                return True
    return lower and upper
