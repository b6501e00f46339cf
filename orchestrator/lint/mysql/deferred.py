"""Statements MySQL runs later than it reads them: prepared statements and stored procedures.

MySQL has no `IF NOT EXISTS` for most DDL, so migrations make it idempotent through dynamic SQL:

    SET @stmt = (SELECT IF(<column missing>, 'ALTER TABLE t ADD COLUMN c int;', 'SELECT 1;'));
    PREPARE addColumn FROM @stmt;  EXECUTE addColumn;

or a procedure defined, called and dropped. The DDL lives in a string or a routine body, where a
linter reading statements sees nothing. Here the strings a variable may hold and the statements a
procedure body contains are remembered, and judged at the EXECUTE or CALL that runs them (with that
statement's position): every branch, because which one runs depends on the live schema.
"""

from __future__ import annotations

import re

from sqlglot import exp

from orchestrator.lint.context import FileContext
from orchestrator.lint.lexer import split_statements

_RUNNABLE = re.compile(r"^(ALTER|CREATE|DROP|RENAME|UPDATE|DELETE|OPTIMIZE|TRUNCATE|LOCK)\b", re.IGNORECASE)
_PREPARE = re.compile(r"^PREPARE\s+(\w+)\s+FROM\s+(@\w+|'(?:[^'\\]|\\.|'')*')", re.IGNORECASE | re.DOTALL)
_EXECUTE = re.compile(r"^EXECUTE\s+(\w+)", re.IGNORECASE)
_PROCEDURE = re.compile(
    r"^CREATE\s+(?:DEFINER\s*=\s*\S+\s+)?PROCEDURE\s+(?:IF\s+NOT\s+EXISTS\s+)?([`\w.]+)\s*\(", re.IGNORECASE
)
_CALL = re.compile(r"^CALL\s+([`\w.]+)", re.IGNORECASE)
# Control flow a procedure statement may start with once the body is split at its semicolons.
_CONTROL_PREFIX = re.compile(
    r"^(?:\w+\s*:\s*)?(?:IF\b.*?\bTHEN|ELSEIF\b.*?\bTHEN|ELSE|END\s+(?:IF|LOOP|WHILE|REPEAT|CASE)|END"
    r"|BEGIN|WHILE\b.*?\bDO|REPEAT|LOOP)\b\s*",
    re.IGNORECASE | re.DOTALL,
)


def _key(kind: str, name: str) -> str:
    return f"{kind}:{name.strip('`').lower()}"


def _runnable(sql: str) -> str | None:
    text = sql.strip().rstrip(";").strip()
    return text if _RUNNABLE.match(text) else None


def remember_variable(node: exp.Set, context: FileContext) -> None:
    """`SET @v = ...`: every string literal in the value that is a statement osctl judges."""
    for item in node.expressions:
        assignment = item.this if isinstance(item, exp.SetItem) else None
        if not isinstance(assignment, exp.EQ) or not isinstance(assignment.this, exp.Parameter):
            continue
        texts = [
            runnable
            for literal in assignment.expression.find_all(exp.Literal)
            if literal.is_string and (runnable := _runnable(literal.this)) is not None
        ]
        context.deferred_sql[_key("var", assignment.this.name)] = texts


def remember_command(text: str, context: FileContext) -> list[str]:
    """Remember a PREPARE or CREATE PROCEDURE; for EXECUTE or CALL, the statements that now run."""
    statement = text.strip()
    prepare = _PREPARE.match(statement)
    if prepare is not None:
        name, source = prepare.groups()
        if source.startswith("@"):
            texts = context.deferred_sql.get(_key("var", source[1:]), [])
        else:
            runnable = _runnable(source[1:-1].replace("''", "'"))
            texts = [runnable] if runnable else []
        context.deferred_sql[_key("prepared", name)] = list(texts)
        return []
    execute = _EXECUTE.match(statement)
    if execute is not None:
        return context.deferred_sql.get(_key("prepared", execute.group(1)), [])
    procedure = _PROCEDURE.match(statement)
    if procedure is not None:
        context.deferred_sql[_key("procedure", procedure.group(1))] = _body_statements(statement)
        return []
    call = _CALL.match(statement)
    if call is not None:
        return context.deferred_sql.get(_key("procedure", call.group(1)), [])
    return []


def _body_statements(definition: str) -> list[str]:
    begin = re.search(r"\bBEGIN\b", definition, re.IGNORECASE)
    if begin is None:
        return []
    found = []
    for piece in split_statements(definition[begin.end() :], "mysql").statements:
        text, previous = piece.text, None
        while text != previous:
            previous, text = text, _CONTROL_PREFIX.sub("", text, count=1).strip()
        runnable = _runnable(text)
        if runnable is not None:
            found.append(runnable)
    return found
