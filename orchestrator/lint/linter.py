"""Lint one file: read what it holds, split it, parse every statement, then judge them in order.

Every statement is parsed before any is judged, so unparsable input stops the whole file with its
position (exit code 2) rather than producing findings for half of it.
"""

from __future__ import annotations

from typing import Literal

from pglast import ast
from sqlglot import exp

from orchestrator.lint import mysql, postgres
from orchestrator.lint.context import FileContext
from orchestrator.lint.findings import Finding, LintReport, Severity, UnparsableSqlError
from orchestrator.lint.inputs import SqlInput, read_input
from orchestrator.lint.lexer import RawStatement, position, split_statements
from orchestrator.lint.mysql.versions import DEFAULT_SERVER_VERSION, ServerVersion, parse_server_version
from orchestrator.lint.rules import Site
from orchestrator.lint.suppression import apply_suppressions, stray_suppressions

Engine = Literal["postgres", "mysql"]

_DUMP_NOTE = (
    " (Read from a schema dump, which shows the end state, not how the migration reached it: "
    "make sure it took the safe path.)"
)


def parse_postgres(source: str, statements: list[RawStatement]) -> list[ast.Node]:
    nodes = []
    for statement in statements:
        try:
            nodes.append(postgres.parse(statement))
        except postgres.PostgresSyntaxError as error:
            line, column = position(source, statement.start + error.offset)
            raise UnparsableSqlError(line, column, statement.index, error.reason) from error
    return nodes


def parse_mysql(statements: list[RawStatement]) -> list[exp.Expr]:
    nodes = []
    for statement in statements:
        try:
            nodes.append(mysql.parse(statement))
        except mysql.MysqlSyntaxError as error:
            line = statement.line + error.line - 1
            column = statement.column + error.column - 1 if error.line == 1 else error.column
            raise UnparsableSqlError(line, column, statement.index, error.reason) from error
    return nodes


def lint_sql(text: str, engine: Engine, *, server_version: ServerVersion | None = None) -> LintReport:
    """Findings for one file's text. Raises UnparsableSqlError (with the position) on bad input."""
    source = read_input(text, engine)
    split = split_statements(source.text, engine)
    context = FileContext()
    findings: list[Finding] = []
    if engine == "postgres":
        for statement, node in zip(
            split.statements, parse_postgres(source.text, split.statements), strict=True
        ):
            site = Site(statement.index, statement.line)
            postgres.analyse(node, site, context)
            findings.extend(apply_suppressions(site, statement.comments))
    else:
        version = server_version or parse_server_version(DEFAULT_SERVER_VERSION)
        for statement, mysql_node in zip(split.statements, parse_mysql(split.statements), strict=True):
            site = Site(statement.index, statement.line)
            mysql.analyse(mysql_node, statement.text, site, context, version)
            findings.extend(apply_suppressions(site, statement.comments))
    findings.extend(stray_suppressions(split.stray_comments, len(split.statements)))
    return LintReport(findings=_from_dump(source, findings), statements=len(split.statements))


def _from_dump(source: SqlInput, findings: list[Finding]) -> list[Finding]:
    """A dump cannot show that an index was built CONCURRENTLY or a constraint validated apart, so
    what would be certain in a migration is only likely in a dump diff: error becomes warning."""
    if not source.from_dump:
        return findings
    return [
        finding.model_copy(update={"severity": Severity.WARNING, "message": finding.message + _DUMP_NOTE})
        if finding.severity is Severity.ERROR
        else finding
        for finding in findings
    ]
