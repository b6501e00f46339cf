"""ADD CONSTRAINT: validation scans under a blocking lock, and indexes built by UNIQUE / PRIMARY KEY.

The safe forms are recognised and remembered: a `CHECK (col IS NOT NULL) NOT VALID` validated later
in the file lets SET NOT NULL skip its scan (PostgreSQL 12+), so that SET NOT NULL is not flagged.
"""

from __future__ import annotations

from pglast import ast, enums

from orchestrator.lint.context import FileContext, table_key
from orchestrator.lint.postgres.nodes import column_name, relation_name, strings
from orchestrator.lint.postgres.tables import check_integer_key
from orchestrator.lint.rules import Site


def add_constraint(table: str, constraint: ast.Constraint, site: Site, context: FileContext) -> None:
    kind = constraint.contype
    name = constraint.conname or ""
    not_null_column = _not_null_check_column(constraint)
    if kind == enums.ConstrType.CONSTR_CHECK and not_null_column is not None:
        if constraint.skip_validation:
            context.pending_not_null_checks[(table_key(table), name.lower())] = not_null_column
        else:
            context.validated_not_null.add((table_key(table), not_null_column.lower()))

    if context.is_new(table):
        if kind == enums.ConstrType.CONSTR_PRIMARY:
            check_integer_key(
                site,
                table,
                [key.lower() for key in strings(constraint.keys)],
                context.created_tables[table_key(table)],
            )
        return

    if kind in (enums.ConstrType.CONSTR_FOREIGN, enums.ConstrType.CONSTR_CHECK):
        lock = (
            "SHARE ROW EXCLUSIVE on both tables"
            if kind == enums.ConstrType.CONSTR_FOREIGN
            else "ACCESS EXCLUSIVE"
        )
        label = "FOREIGN KEY" if kind == enums.ConstrType.CONSTR_FOREIGN else "CHECK"
        context.needs_lock(site, [table])
        if not constraint.skip_validation:
            referenced = f" to {relation_name(constraint.pktable)}" if constraint.pktable else ""
            site.report(
                "constraint-without-not-valid",
                f"{label}{_named(name)} on {table}{referenced} checks every existing row while holding "
                f"{lock}: writes wait for the whole scan.",
            )
    elif kind in (
        enums.ConstrType.CONSTR_UNIQUE,
        enums.ConstrType.CONSTR_PRIMARY,
        enums.ConstrType.CONSTR_EXCLUSION,
    ):
        context.needs_lock(site, [table])
        if not constraint.indexname:
            label = {
                enums.ConstrType.CONSTR_UNIQUE: "UNIQUE",
                enums.ConstrType.CONSTR_PRIMARY: "PRIMARY KEY",
                enums.ConstrType.CONSTR_EXCLUSION: "EXCLUDE",
            }[kind]
            site.report(
                "unique-constraint-without-index",
                f"{label}{_named(name)} on {table} builds its index under ACCESS EXCLUSIVE: reads and "
                "writes wait for the whole build.",
            )


def _named(name: str) -> str:
    return f" {name}" if name else ""


def validate_constraint(table: str, name: str, context: FileContext) -> None:
    column = context.pending_not_null_checks.pop((table_key(table), name.lower()), None)
    if column is not None:
        context.validated_not_null.add((table_key(table), column.lower()))


def _not_null_check_column(constraint: ast.Constraint) -> str | None:
    test = constraint.raw_expr
    if (
        constraint.contype == enums.ConstrType.CONSTR_CHECK
        and isinstance(test, ast.NullTest)
        and test.nulltesttype == enums.NullTestType.IS_NOT_NULL
    ):
        return column_name(test.arg)
    return None
