"""The safety linter: raw DDL in, the patterns that put a live table at risk out, each with its reason
and the safe alternative. Pure code: text in, findings out; the CLI reads the files.
"""

from __future__ import annotations

from orchestrator.lint.findings import Finding, LintReport, Severity, UnparsableSqlError
from orchestrator.lint.linter import lint_sql
from orchestrator.lint.mysql.versions import DEFAULT_SERVER_VERSION, ServerVersion, parse_server_version
from orchestrator.lint.rules import RULES

__all__ = [
    "DEFAULT_SERVER_VERSION",
    "RULES",
    "Finding",
    "LintReport",
    "ServerVersion",
    "Severity",
    "UnparsableSqlError",
    "lint_sql",
    "parse_server_version",
]
