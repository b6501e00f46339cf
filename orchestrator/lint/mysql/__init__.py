"""MySQL and MariaDB: parse one statement with sqlglot and judge it against the server version.

`analyse` dispatches on the statement; ALTER TABLE and CREATE INDEX are in `alter`, other statements
in `statements`, dynamic SQL and procedures in `deferred`, the version table in `versions` and the
verdict from it in `online_ddl`. Statements on a table this file created are not judged as risky.
"""

from __future__ import annotations

import logging
import re

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, TokenError

from orchestrator.lint.context import FileContext
from orchestrator.lint.lexer import RawStatement
from orchestrator.lint.mysql import alter, deferred, statements
from orchestrator.lint.mysql.common import name_of
from orchestrator.lint.mysql.versions import ServerVersion
from orchestrator.lint.rules import Site

# sqlglot logs a warning for every statement it keeps as a Command; here that is expected and handled.
logging.getLogger("sqlglot").addFilter(
    lambda record: "Falling back to parsing as a" not in record.getMessage()
)

# Statements that alter no table definition and that sqlglot may not parse (DEALLOCATE PREPARE,
# HANDLER, XA, ...): read as opaque commands instead of failing the file.
_OPAQUE_VERBS = frozenset(
    {
        *("DEALLOCATE", "PREPARE", "EXECUTE", "CALL", "HANDLER", "SIGNAL", "RESIGNAL", "XA"),
        *("LOCK", "UNLOCK", "FLUSH", "GRANT", "REVOKE", "ANALYZE", "CHECK", "CHECKSUM", "REPAIR"),
        *("INSTALL", "UNINSTALL", "SHOW", "DESCRIBE", "DESC", "EXPLAIN", "USE", "DO", "HELP", "KILL"),
        *("RESET", "PURGE", "START", "STOP", "LOAD", "CACHE", "SAVEPOINT", "RELEASE", "ROLLBACK"),
        *("COMMIT", "BEGIN", "SET", "DECLARE"),
    }
)
_ROUTINE = re.compile(
    r"CREATE\s+(?:OR\s+REPLACE\s+)?(?:DEFINER\s*=\s*\S+\s+)?(?:PROCEDURE|FUNCTION|TRIGGER|EVENT)\b",
    re.IGNORECASE,
)


class MysqlSyntaxError(Exception):
    def __init__(self, line: int, column: int, reason: str) -> None:
        super().__init__(reason)
        self.line = line  # 1-based within the statement
        self.column = column
        self.reason = reason


def parse(statement: RawStatement) -> exp.Expr:
    try:
        parsed = [item for item in sqlglot.parse(statement.text, read="mysql") if item is not None]
    except ParseError as error:
        verb = statement.text.split(None, 1)[0].upper() if statement.text.split() else ""
        if verb in _OPAQUE_VERBS or _ROUTINE.match(statement.text):
            # Valid MySQL that sqlglot's grammar lacks, and that changes no table's shape.
            return exp.Command(this=verb, expression=exp.Literal.string(statement.text[len(verb) :].strip()))
        first = error.errors[0] if error.errors else {}
        raise MysqlSyntaxError(
            int(first.get("line") or 1), int(first.get("col") or 1), str(first.get("description") or error)
        ) from error
    except TokenError as error:
        raise MysqlSyntaxError(1, 1, str(error)) from error
    if len(parsed) != 1:
        raise MysqlSyntaxError(1, 1, "expected exactly one statement")
    return parsed[0]


def analyse(node: exp.Expr, text: str, site: Site, context: FileContext, version: ServerVersion) -> None:
    match node:
        case exp.Transaction():
            context.begin()
        case exp.Commit() | exp.Rollback():
            context.end_transaction()
        case exp.Set():
            _set(node, context)
            deferred.remember_variable(node, context)
        case exp.Create() if str(node.args.get("kind") or "").upper() == "TABLE":
            statements.create_table(node, site, context)
        case exp.Create() if str(node.args.get("kind") or "").upper() == "INDEX":
            alter.create_index(text, site, context, version)
        case exp.Alter() if str(node.args.get("kind") or "").upper() == "TABLE":
            alter.alter_table(node, site, context, version)
        case exp.Drop():
            statements.drop(node, site, context)
        case exp.Update() | exp.Delete():
            statements.data_change(node, site, context)
        case exp.Command():
            statements.command(node, text, site, context, version)
            _run_deferred(deferred.remember_command(text, context), site, context, version)
        case exp.Create() if str(node.args.get("kind") or "").upper() == "PROCEDURE":
            deferred.remember_command(text, context)
        case _:
            pass


def _run_deferred(texts: list[str], site: Site, context: FileContext, version: ServerVersion) -> None:
    """Judge what an EXECUTE or CALL runs as if it stood here; what does not parse is left alone,
    since the string may be assembled differently at run time."""
    for text in texts:
        try:
            nodes = [item for item in sqlglot.parse(text, read="mysql") if item is not None]
        except (ParseError, TokenError):
            continue
        if len(nodes) == 1:
            analyse(nodes[0], text, site, context, version)


def _set(node: exp.Set, context: FileContext) -> None:
    for item in node.expressions:
        assignment = item.this if isinstance(item, exp.SetItem) else None
        if not isinstance(assignment, exp.EQ):
            continue
        name, value = name_of(assignment.this).lower(), assignment.expression
        literal = (
            value.name.lower() if isinstance(value, exp.Literal | exp.Var | exp.Column | exp.Boolean) else ""
        )
        if isinstance(value, exp.Boolean):
            literal = "1" if value.this else "0"
        if name == "foreign_key_checks":
            context.foreign_key_checks = literal not in ("0", "off", "false")
        elif name.rsplit(".", 1)[-1] == "lock_wait_timeout":
            context.lock_timeout_set = literal not in ("", "31536000")  # the default: a year
