"""SQL shared by the data preflight queries: the derived table every check reads, and its errors."""

from __future__ import annotations

import asyncpg

from orchestrator.domain.data_checks import DataCheck, DataFinding
from orchestrator.domain.identifiers import quote_ident

SAMPLE_ROWS = 5


def key_names(check: DataCheck) -> tuple[str, ...]:
    """What identifies a sample row: the check's key columns, else the physical row address."""
    return check.key or ("ctid",)


def derived_rows(check: DataCheck) -> str:
    """`SELECT` of the table's rows as `__k<n>` (key), `__v<n>` (the checked expressions) and
    `__s<n>` (shown columns, as text). Checks compare and group the derived columns only, so an
    expression can never bind to a column of another table in the same query."""
    keys = [f"{quote_ident(name)} AS __k{n}" for n, name in enumerate(check.key)] or ["ctid AS __k0"]
    values = [f"({expression}) AS __v{n}" for n, expression in enumerate(check.expressions)]
    shown = [f"{quote_ident(name)}::text AS __s{n}" for n, name in enumerate(check.shown)]
    where = f" WHERE ({check.where})" if check.where else ""
    return f"SELECT {', '.join([*keys, *values, *shown])} FROM {quote_ident(check.table)}{where}"  # noqa: S608


def describe_error(error: asyncpg.PostgresError) -> str:
    sqlstate = getattr(error, "sqlstate", None) or "?"
    return f"{error.__class__.__name__} ({sqlstate}): {error}"


def finding_error(check: DataCheck, error: asyncpg.PostgresError, timeout_ms: int) -> DataFinding:
    if isinstance(error, asyncpg.QueryCanceledError):
        return DataFinding(
            check=check, count=0, incomplete=f"ran past settings.preflight.check_timeout_ms ({timeout_ms} ms)"
        )
    return DataFinding(check=check, count=0, error=describe_error(error))
