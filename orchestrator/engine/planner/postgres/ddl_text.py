"""SQL text the column and constraint planners share: derived names, guarded DDL, checked expressions.

Every step may run twice (a crash between its commit and its checkpoint), so DDL without an
IF [NOT] EXISTS form is wrapped in a DO block that looks the object up first.
"""

from __future__ import annotations

import hashlib

import pglast
from pglast import ast

from orchestrator.domain.errors import SpecError
from orchestrator.domain.identifiers import quote_ident, quote_literal
from orchestrator.engine.planner.postgres.backfill import check_expression, referenced_columns

MAX_NAME_BYTES = 63


def derived_name(*parts: str, suffix: str) -> str:
    """`<parts>_<suffix>` as PostgreSQL would name it, cut to 63 bytes with a short hash when longer,
    so two long names that share a prefix still differ."""
    name = "_".join([*parts, suffix])
    if len(name) <= MAX_NAME_BYTES:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    # A short suffix (`key`, `fkey`) stays readable at the end; a long one is cut like the rest.
    tail = f"_{digest}_{suffix}" if len(suffix) <= 20 else f"_{digest}"
    return name[: MAX_NAME_BYTES - len(tail)].rstrip("_") + tail


def regclass(name: str) -> str:
    return f"to_regclass({quote_literal(quote_ident(name))})"


def do_block(body: str) -> str:
    """A DO block around `body`. The dollar-quote tag is chosen so no identifier or expression inside
    (identifiers may hold '$') can end the block early."""
    tag, number = "$osc$", 0
    while tag in body:
        number += 1
        tag = f"$osc{number}$"
    return f"DO {tag} BEGIN {body} END {tag}"


def unless_constraint(table: str, name: str, statement: str) -> str:
    """`statement` (which adds constraint `name` to `table`) unless the constraint is there already."""
    return do_block(
        f"IF NOT EXISTS (SELECT FROM pg_constraint WHERE conrelid = {regclass(table)} "
        f"AND conname = {quote_literal(name)}) THEN {statement}; END IF;"
    )


def check_expression_at(expression: str, field: str) -> None:
    """`check_expression` with the problem reported at `field` rather than at `expression`."""
    try:
        check_expression(expression)
    except SpecError as error:
        raise SpecError([(field, message) for _, message in error.problems]) from error


def reads_columns(expression: str) -> set[str]:
    """The columns an already checked expression reads."""
    return referenced_columns(expression)


def is_constant(expression: str) -> bool:
    """Whether a default as the catalog prints it (`0`, `'new'::text`, `'{}'::text[]`) is a constant,
    so re-adding a column with it is catalog-only; `now()` or `nextval(...)` are not."""
    try:
        [statement] = pglast.parse_sql(f"SELECT ({expression})")
    except (pglast.parser.ParseError, ValueError):
        return False
    select = statement.stmt
    if not isinstance(select, ast.SelectStmt) or not select.targetList:
        return False
    return _constant(select.targetList[0].val)


def _constant(node: object) -> bool:
    if isinstance(node, ast.A_Const):
        return True
    if isinstance(node, ast.TypeCast):
        return _constant(node.arg)
    if isinstance(node, ast.A_Expr) and node.kind == 0 and node.lexpr is None:  # unary minus
        return _constant(node.rexpr)
    return False
