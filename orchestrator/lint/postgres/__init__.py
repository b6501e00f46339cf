"""PostgreSQL: parse one statement with pglast (PostgreSQL's own parser) and judge it.

`analyse` dispatches on the statement's node; each concern (indexes, columns, constraints, tables,
data changes, session) has its module. Statements on a table this file created are not judged as
risky: nothing reads or writes that table yet.
"""

from __future__ import annotations

import pglast
from pglast import ast, enums

from orchestrator.lint.context import FileContext
from orchestrator.lint.lexer import RawStatement
from orchestrator.lint.postgres import columns, constraints, data, indexes, session, tables
from orchestrator.lint.postgres.nodes import relation_name, type_base
from orchestrator.lint.rules import Site


class PostgresSyntaxError(Exception):
    def __init__(self, offset: int, reason: str) -> None:
        super().__init__(reason)
        self.offset = offset
        self.reason = reason


def parse(statement: RawStatement) -> ast.Node:
    """The statement's AST; PostgresSyntaxError with the offset into the statement's text."""
    try:
        parsed = pglast.parse_sql(statement.text)
    except pglast.parser.ParseError as error:
        reason, offset = str(error.args[0]), int(error.args[1]) if len(error.args) > 1 else 0
        raise PostgresSyntaxError(max(0, min(offset, len(statement.text))), reason) from error
    if len(parsed) != 1 or parsed[0].stmt is None:
        raise PostgresSyntaxError(0, "expected exactly one statement")
    node: ast.Node = parsed[0].stmt
    return node


# ALTER TABLE subcommands that copy every row into new files under ACCESS EXCLUSIVE.
_REWRITES = {
    enums.AlterTableType.AT_SetTableSpace: "SET TABLESPACE",
    enums.AlterTableType.AT_SetLogged: "SET LOGGED",
    enums.AlterTableType.AT_SetUnLogged: "SET UNLOGGED",
    enums.AlterTableType.AT_SetAccessMethod: "SET ACCESS METHOD",
}

# ALTER TABLE subcommands that only wait for SHARE UPDATE EXCLUSIVE, which ordinary reads and
# writes do not conflict with: no lock queue to bound.
_WEAK_LOCK_COMMANDS = {enums.AlterTableType.AT_ValidateConstraint}


def analyse(node: ast.Node, site: Site, context: FileContext) -> None:
    match node:
        case ast.TransactionStmt():
            session.transaction(node, context)
        case ast.VariableSetStmt():
            session.set_variable(node, context)
        case ast.CreateStmt():
            tables.create_table(node, site, context)
        case ast.CreateTableAsStmt():
            tables.create_table_as(node, context)
        case ast.IndexStmt():
            indexes.create_index(node, site, context)
        case ast.DropStmt() if node.removeType == enums.ObjectType.OBJECT_INDEX:
            indexes.drop_index(node, site, context)
        case ast.DropStmt():
            tables.drop(node, site, context)
        case ast.ReindexStmt():
            indexes.reindex(node, site, context)
        case ast.AlterTableStmt():
            alter_table(node, site, context)
        case ast.RenameStmt():
            tables.rename(node, site, context)
        case ast.VacuumStmt():
            tables.vacuum(node, site, context)
        case ast.ClusterStmt():
            tables.cluster(node, site, context)
        case ast.LockStmt():
            tables.lock_table(node, site, context)
        case ast.UpdateStmt() | ast.DeleteStmt():
            data.data_change(node, site, context)
        case _:
            pass


def alter_table(node: ast.AlterTableStmt, site: Site, context: FileContext) -> None:
    table = relation_name(node.relation)
    new = context.is_new(table)
    for cmd in node.cmds or ():
        if not isinstance(cmd, ast.AlterTableCmd):
            continue
        subtype = cmd.subtype
        if subtype == enums.AlterTableType.AT_AddConstraint and isinstance(cmd.def_, ast.Constraint):
            constraints.add_constraint(table, cmd.def_, site, context)
            continue
        if subtype == enums.AlterTableType.AT_ValidateConstraint:
            constraints.validate_constraint(table, cmd.name or "", context)
            continue
        if new:
            if subtype == enums.AlterTableType.AT_AddColumn and isinstance(cmd.def_, ast.ColumnDef):
                context.add_column(table, cmd.def_.colname or "", type_base(cmd.def_.typeName))
            continue
        if subtype not in _WEAK_LOCK_COMMANDS:
            context.needs_lock(site, [table])
        if subtype == enums.AlterTableType.AT_AddColumn and isinstance(cmd.def_, ast.ColumnDef):
            columns.add_column(table, cmd.def_, site, context)
        elif subtype == enums.AlterTableType.AT_AlterColumnType:
            columns.alter_type(table, cmd, site)
        elif subtype == enums.AlterTableType.AT_SetNotNull:
            columns.set_not_null(table, cmd.name or "", site, context)
        elif subtype == enums.AlterTableType.AT_DropColumn:
            columns.drop_column(table, cmd.name or "", site)
        elif subtype in _REWRITES:
            site.report(
                "table-rewrite",
                f"ALTER TABLE {table} {_REWRITES[subtype]} copies every row under ACCESS EXCLUSIVE: no reads or "
                "writes until it finishes.",
            )
