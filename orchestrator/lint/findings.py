"""What the linter reports: findings with a severity, and the one error that stops it (unparsable SQL)."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from orchestrator.domain.errors import OrchestratorError


class Severity(StrEnum):
    # error and warning mean the statement puts a live table under traffic at risk: blocking locks,
    # rewrites, scans under a strong lock, data loss, breaking running code. error is certain from
    # the SQL alone; warning depends on something the SQL does not show (the old column type, the
    # number of rows a WHERE matches, how a dumped schema got that way). info never risks traffic.
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


SEVERITY_ORDER = {Severity.ERROR: 0, Severity.WARNING: 1, Severity.INFO: 2}


class Finding(BaseModel):
    """One finding. Its fields are the JSON output, exactly: a pipeline may parse it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    rule: str
    severity: Severity
    statement_index: int  # 0-based, counting every statement of the file (BEGIN, COMMIT, SET too)
    line: int  # 1-based line of the statement's first token in the file as given
    message: str
    safe_alternative: str


class LintReport(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    findings: list[Finding]
    statements: int

    @property
    def has_errors(self) -> bool:
        return any(finding.severity is Severity.ERROR for finding in self.findings)


class UnparsableSqlError(OrchestratorError):
    """The input is not SQL the engine's parser accepts; `line` and `column` are 1-based."""

    def __init__(self, line: int, column: int, statement_index: int, reason: str) -> None:
        self.line = line
        self.column = column
        self.statement_index = statement_index
        self.reason = reason
        super().__init__(f"line {line}, column {column} (statement {statement_index}): {reason}")
