"""Findings as a person reads them (text) or a pipeline parses them (JSON, exactly the issue's shape)."""

from __future__ import annotations

import json
from collections import Counter

from orchestrator.lint.findings import SEVERITY_ORDER, LintReport, Severity, UnparsableSqlError


def ordered(report: LintReport) -> LintReport:
    findings = sorted(report.findings, key=lambda f: (f.statement_index, SEVERITY_ORDER[f.severity], f.line))
    return LintReport(findings=findings, statements=report.statements)


def render_json(report: LintReport) -> str:
    """`{"findings": [{rule, severity, statement_index, line, message, safe_alternative}]}`"""
    return json.dumps({"findings": [finding.model_dump(mode="json") for finding in ordered(report).findings]})


def render_json_error(error: UnparsableSqlError) -> str:
    problem = {"line": error.line, "column": error.column, "statement_index": error.statement_index}
    return json.dumps({"findings": [], "error": {**problem, "message": error.reason}})


def render_text(path: str, report: LintReport) -> str:
    lines = []
    for finding in ordered(report).findings:
        lines.append(
            f"{path}:{finding.line}: {finding.severity.value} {finding.rule} "
            f"(statement {finding.statement_index}): {finding.message}"
        )
        lines.append(f"    safe alternative: {finding.safe_alternative}")
    counts = Counter(finding.severity for finding in report.findings)
    lines.append(
        f"{path}: {report.statements} statements; {counts[Severity.ERROR]} error, "
        f"{counts[Severity.WARNING]} warning, {counts[Severity.INFO]} info"
    )
    return "\n".join(lines)


def render_text_error(path: str, error: UnparsableSqlError) -> str:
    return (
        f"{path}:{error.line}:{error.column}: cannot parse statement {error.statement_index}: {error.reason}"
    )
