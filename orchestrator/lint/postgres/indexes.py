"""Index builds and drops: CONCURRENTLY or a lock that stops the table's writes (or reads)."""

from __future__ import annotations

from pglast import ast, enums

from orchestrator.lint.context import FileContext, table_key
from orchestrator.lint.postgres.nodes import relation_name, strings
from orchestrator.lint.rules import Site


def create_index(node: ast.IndexStmt, site: Site, context: FileContext) -> None:
    table = relation_name(node.relation)
    if node.idxname:
        context.created_indexes[node.idxname.lower()] = table_key(table)
    if node.concurrent:
        if context.in_transaction:
            site.report("concurrently-in-transaction")
        return
    if context.is_new(table):
        return
    context.needs_lock(site, [table])
    unique = "UNIQUE " if node.unique else ""
    name = f"{node.idxname} " if node.idxname else ""
    site.report(
        "create-index-non-concurrent",
        f"CREATE {unique}INDEX {name}on {table} without CONCURRENTLY holds a SHARE lock for the whole "
        "build: every INSERT, UPDATE and DELETE on the table waits.",
    )


def drop_index(node: ast.DropStmt, site: Site, context: FileContext) -> None:
    names = [strings(item)[-1] for item in node.objects or () if strings(item)]
    if node.concurrent:
        if context.in_transaction:
            site.report("concurrently-in-transaction")
        return
    tables = [context.created_indexes.get(name.lower(), "") for name in names]
    if tables and all(table and context.is_new(table) for table in tables):
        return
    context.needs_lock(site, [])
    site.report(
        "drop-index-non-concurrent",
        f"DROP INDEX {', '.join(names)} without CONCURRENTLY takes ACCESS EXCLUSIVE on its table: it waits "
        "behind every running query there and blocks all reads and writes queued behind it.",
    )


def reindex(node: ast.ReindexStmt, site: Site, context: FileContext) -> None:
    options = {(param.defname or "").lower() for param in node.params or () if isinstance(param, ast.DefElem)}
    if "concurrently" in options:
        if context.in_transaction:
            site.report("concurrently-in-transaction")
        return
    name = relation_name(node.relation)
    if node.kind == enums.ReindexObjectType.REINDEX_OBJECT_INDEX:
        table = context.created_indexes.get(name.lower(), "")
    elif node.kind == enums.ReindexObjectType.REINDEX_OBJECT_TABLE:
        table = name
    else:
        table = ""
    if table and context.is_new(table):
        return
    context.needs_lock(site, [table] if table else [])
    what = name or (node.name or "the database")
    site.report(
        "reindex-non-concurrent",
        f"REINDEX {what} without CONCURRENTLY blocks writes to the table, and reads that use the index, "
        "until every index is rebuilt.",
    )
