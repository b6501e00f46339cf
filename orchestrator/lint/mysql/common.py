"""What the MySQL analysers share: names out of sqlglot's tree, and the messages they repeat."""

from __future__ import annotations

from sqlglot import exp

from orchestrator.lint.rules import Site

INTEGER_TYPES = {
    exp.DataType.Type.INT,
    exp.DataType.Type.UINT,
    exp.DataType.Type.MEDIUMINT,
    exp.DataType.Type.UMEDIUMINT,
    exp.DataType.Type.SMALLINT,
    exp.DataType.Type.USMALLINT,
    exp.DataType.Type.TINYINT,
    exp.DataType.Type.UTINYINT,
}
LOCK_MESSAGE = (
    "No lock_wait_timeout is set before DDL (the default is a year): a metadata lock request stuck behind "
    "a long transaction blocks every later query on the table. osctl sets one itself when it runs a plan."
)


def name_of(node: exp.Expr | None) -> str:
    return node.name if node is not None else ""


def table_of(node: exp.Expr | None) -> str:
    table = node.find(exp.Table) if node is not None else None
    return table.name if table is not None else ""


def report_rename_column(site: Site, table: str, old: str, new: str) -> None:
    site.report(
        "rename-column",
        f"renaming {table}.{old} to {new} breaks the running application, which still reads and writes {old}.",
    )


def report_rename_table(site: Site, table: str, new: str) -> None:
    site.report(
        "rename-table", f"renaming table {table} to {new} breaks every running query that names {table}."
    )
