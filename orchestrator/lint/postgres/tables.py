"""Whole tables: creating (integer keys), renaming and dropping, and the rewrites VACUUM FULL and
CLUSTER do under ACCESS EXCLUSIVE."""

from __future__ import annotations

from pglast import ast, enums

from orchestrator.lint.context import FileContext
from orchestrator.lint.postgres.nodes import (
    INTEGER_TYPES,
    column_constraints,
    relation_name,
    strings,
    type_base,
)
from orchestrator.lint.rules import Site


def create_table(node: ast.CreateStmt, site: Site, context: FileContext) -> None:
    table = relation_name(node.relation)
    columns: dict[str, str] = {}
    primary: list[str] = []
    for element in node.tableElts or ():
        if isinstance(element, ast.ColumnDef) and element.colname:
            columns[element.colname.lower()] = type_base(element.typeName)
            if any(c.contype == enums.ConstrType.CONSTR_PRIMARY for c in column_constraints(element)):
                primary.append(element.colname.lower())
        elif isinstance(element, ast.Constraint) and element.contype == enums.ConstrType.CONSTR_PRIMARY:
            primary.extend(name.lower() for name in strings(element.keys))
    context.create_table(table, columns)
    check_integer_key(site, table, primary, columns)


def check_integer_key(site: Site, table: str, primary: list[str], columns: dict[str, str]) -> None:
    # A composite key's parts usually come from other tables; a single-column key is the one a
    # sequence feeds and that runs out.
    if len(primary) == 1 and columns.get(primary[0]) in INTEGER_TYPES:
        site.report(
            "integer-primary-key",
            f"primary key {table}.{primary[0]} is {columns[primary[0]]}: at 2,147,483,647 rows "
            "(32,767 for smallint) every insert fails, and widening it later rewrites the table.",
        )


def create_table_as(node: ast.CreateTableAsStmt, context: FileContext) -> None:
    if node.into is not None:
        context.create_table(relation_name(node.into.rel), {})


def rename(node: ast.RenameStmt, site: Site, context: FileContext) -> None:
    table = relation_name(node.relation)
    if node.renameType == enums.ObjectType.OBJECT_TABLE:
        if context.is_new(table):
            context.rename_table(table, node.newname or "")
            return
        context.needs_lock(site, [table])
        site.report(
            "rename-table",
            f"renaming table {table} to {node.newname} breaks every running query that names {table}.",
        )
    elif node.renameType == enums.ObjectType.OBJECT_COLUMN and not context.is_new(table):
        context.needs_lock(site, [table])
        site.report(
            "rename-column",
            f"renaming {table}.{node.subname} to {node.newname} breaks the running application, which "
            f"still reads and writes {node.subname}.",
        )


def drop(node: ast.DropStmt, site: Site, context: FileContext) -> None:
    if node.removeType != enums.ObjectType.OBJECT_TABLE:
        return
    names = [strings(item)[-1] for item in node.objects or () if strings(item)]
    existing = [name for name in names if not context.is_new(name)]
    if not existing:
        return
    context.needs_lock(site, existing)
    site.report(
        "drop-table",
        f"dropping {', '.join(existing)} loses {'its' if len(existing) == 1 else 'their'} data for good "
        "and breaks any running code that still uses it.",
    )


# pg_locks' numbering: 5 SHARE and above conflict with the ROW EXCLUSIVE lock every write takes.
_LOCK_MODES = {5: "SHARE", 6: "SHARE ROW EXCLUSIVE", 7: "EXCLUSIVE", 8: "ACCESS EXCLUSIVE"}


def lock_table(node: ast.LockStmt, site: Site, context: FileContext) -> None:
    mode = _LOCK_MODES.get(int(node.mode or 8))
    tables = [relation_name(rel) for rel in node.relations or () if isinstance(rel, ast.RangeVar)]
    existing = [table for table in tables if not context.is_new(table)]
    if mode is None or not existing:
        return
    context.needs_lock(site, existing)
    blocked = "reads and writes" if mode == "ACCESS EXCLUSIVE" else "writes"
    site.report(
        "lock-table",
        f"LOCK TABLE {', '.join(existing)} IN {mode} MODE blocks {blocked} on it until the transaction "
        "ends, whatever the statements after it do.",
    )


def vacuum(node: ast.VacuumStmt, site: Site, context: FileContext) -> None:
    options = {
        (option.defname or "").lower() for option in node.options or () if isinstance(option, ast.DefElem)
    }
    if not node.is_vacuumcmd or "full" not in options:
        return
    tables = [relation_name(rel.relation) for rel in node.rels or () if isinstance(rel, ast.VacuumRelation)]
    if tables and all(context.is_new(table) for table in tables):
        return
    context.needs_lock(site, tables)
    where = ", ".join(tables) if tables else "every table of the database"
    site.report(
        "vacuum-full", f"VACUUM FULL rewrites {where} under ACCESS EXCLUSIVE: no reads or writes meanwhile."
    )


def cluster(node: ast.ClusterStmt, site: Site, context: FileContext) -> None:
    table = relation_name(node.relation)
    if table and context.is_new(table):
        return
    context.needs_lock(site, [table] if table else [])
    where = table or "every previously clustered table"
    site.report("cluster", f"CLUSTER rewrites {where} under ACCESS EXCLUSIVE: no reads or writes meanwhile.")
