"""Statements other than ALTER: tables created, dropped, renamed or locked, and data changes.

A data change is taken as one batch when it has a LIMIT or its WHERE pins a key (`id = ...`,
`id IN (...)`, `id BETWEEN`, both ends of a range on `id` or `*_id`); without WHERE it touches every
row (error), with any other WHERE it may (warning).
"""

from __future__ import annotations

import re

from sqlglot import exp

from orchestrator.lint.context import FileContext
from orchestrator.lint.findings import Severity
from orchestrator.lint.mysql.alter import CREATE_INDEX, alter_fallback, create_index
from orchestrator.lint.mysql.common import INTEGER_TYPES, LOCK_MESSAGE, name_of, report_rename_table, table_of
from orchestrator.lint.mysql.online_ddl import AlterClauses, judge
from orchestrator.lint.mysql.versions import Change, ServerVersion
from orchestrator.lint.rules import Site

_RENAME_TABLE = re.compile(r"(\S+)\s+TO\s+(\S+)", re.IGNORECASE)


def create_table(node: exp.Create, site: Site, context: FileContext) -> None:
    schema = node.this
    table = table_of(schema)
    columns: dict[str, str] = {}
    primary: list[str] = []
    kinds: dict[str, exp.DType | None] = {}
    if isinstance(schema, exp.Schema):
        for element in schema.expressions:
            if isinstance(element, exp.ColumnDef):
                column = element.name.lower()
                data_type = element.args.get("kind")
                columns[column] = data_type.sql("mysql") if isinstance(data_type, exp.DataType) else ""
                kinds[column] = data_type.this if isinstance(data_type, exp.DataType) else None
                if any(isinstance(c.kind, exp.PrimaryKeyColumnConstraint) for c in element.constraints):
                    primary.append(column)
            elif isinstance(element, exp.PrimaryKey):
                primary.extend(name_of(part).lower() for part in element.expressions)
    context.create_table(table, columns)
    if len(primary) == 1 and kinds.get(primary[0]) in INTEGER_TYPES:
        site.report(
            "integer-primary-key",
            f"primary key {table}.{primary[0]} is {columns[primary[0]]}: at its maximum (2,147,483,647 "
            "signed, 4,294,967,295 unsigned) every insert fails, and widening it later copies the table.",
        )


def drop(node: exp.Drop, site: Site, context: FileContext) -> None:
    kind = str(node.args.get("kind") or "").upper()
    if kind == "TABLE":
        tables = [table.name for table in node.args.get("tables") or []]
        existing = [table for table in tables if not context.is_new(table)]
        if existing:
            context.needs_lock(site, existing, LOCK_MESSAGE)
            site.report(
                "drop-table",
                f"dropping {', '.join(existing)} loses the data for good and breaks any running code that "
                "still uses it.",
            )
    elif kind == "INDEX":
        table = table_of(node.args.get("cluster"))
        if table and not context.is_new(table):
            context.needs_lock(site, [table], LOCK_MESSAGE)


def _is_key(node: exp.Expr | None) -> bool:
    name = node.name.lower() if isinstance(node, exp.Column) else ""
    return name == "id" or name.endswith("_id")


def _is_constant(node: exp.Expr | None) -> bool:
    return isinstance(node, exp.Literal | exp.Placeholder | exp.Parameter)


def _targets_few_rows(where: exp.Expr) -> bool:
    terms = list(where.flatten()) if isinstance(where, exp.And) else [where]
    lower = upper = False
    for term in terms:
        if isinstance(term, exp.EQ) and _is_key(term.this) and _is_constant(term.expression):
            return True
        if isinstance(term, exp.In | exp.Between) and _is_key(term.this):
            return True
        if isinstance(term, exp.GT | exp.GTE) and _is_key(term.this) and _is_constant(term.expression):
            lower = True
        if isinstance(term, exp.LT | exp.LTE) and _is_key(term.this) and _is_constant(term.expression):
            upper = True
    return lower and upper


def data_change(node: exp.Update | exp.Delete, site: Site, context: FileContext) -> None:
    table = table_of(node.this) if isinstance(node, exp.Update) else table_of(node)
    if not table or context.is_new(table):
        return
    verb = "UPDATE" if isinstance(node, exp.Update) else "DELETE"
    where = node.args.get("where")
    if node.args.get("limit") is not None:
        return  # one batch of a batched change
    if where is None:
        site.report(
            "unbatched-data-change",
            f"{verb} of every row of {table} in one statement: InnoDB locks every row until it commits, "
            "concurrent writes to them wait, and replicas apply it as one long event.",
        )
    elif not _targets_few_rows(where.this):
        site.report(
            "unbatched-data-change",
            f"{verb} on {table} with a WHERE that does not pin a key may lock many rows in one "
            "transaction (InnoDB also locks the gaps it scans) and lag replicas by its duration.",
            severity=Severity.WARNING,
        )


def command(node: exp.Command, text: str, site: Site, context: FileContext, version: ServerVersion) -> None:
    verb = (str(node.this).upper().split() or [""])[0]
    if verb == "RENAME" and text.upper().split()[1:2] == ["TABLE"]:
        for old, new in _RENAME_TABLE.findall(text.split(None, 2)[2]):
            if context.is_new(old):
                context.rename_table(old, new)
            else:
                context.needs_lock(site, [old], LOCK_MESSAGE)
                report_rename_table(site, old.strip("`"), new.strip("`"))
    elif verb == "LOCK":
        _lock_tables(text, site, context)
    elif verb == "OPTIMIZE":
        tables = [name.strip("`,") for name in text.split()[2:]]
        existing = [name for name in tables if not context.is_new(name)]
        if existing:
            context.needs_lock(site, existing, LOCK_MESSAGE)
            judge(", ".join(existing), [Change.REBUILD_TABLE], AlterClauses(), version, site)
    elif verb == "CREATE" and CREATE_INDEX.match(text):
        create_index(text, site, context, version)
    elif verb == "ALTER":
        alter_fallback(text, site, context, version)


_LOCK_TABLES = re.compile(
    r"([`\w.]+)(?:\s+(?:AS\s+)?\w+)?\s+(READ(?:\s+LOCAL)?|(?:LOW_PRIORITY\s+)?WRITE)", re.I
)


def _lock_tables(text: str, site: Site, context: FileContext) -> None:
    """LOCK TABLES t WRITE (or READ): other sessions cannot write t until UNLOCK TABLES."""
    body = re.sub(r"^LOCK\s+TABLES?\s+", "", text, flags=re.IGNORECASE)
    locked = [(table.strip("`"), mode.split()[-1].upper()) for table, mode in _LOCK_TABLES.findall(body)]
    existing = [(table, mode) for table, mode in locked if not context.is_new(table)]
    if not existing:
        return
    site.report(
        "lock-table",
        f"LOCK TABLES {', '.join(f'{table} {mode}' for table, mode in existing)} keeps other sessions from "
        "writing (WRITE: also reading) until UNLOCK TABLES.",
        safe_alternative="Drop the explicit lock; let each statement take its own metadata lock under "
        "lock_wait_timeout, in short batches.",
    )
