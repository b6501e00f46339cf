"""What a file holds, and the SQL it stands for: plain SQL (Django's `sqlmigrate` output, hand-written
migrations, BEGIN/COMMIT-wrapped files), Ecto's logged migration SQL, or a diff of a schema dump
(Rails `db/structure.sql`).

Every reader keeps the file's lines where they are, so a statement's line is its line in the file
as given.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

from orchestrator.lint.inputs.ecto import ecto_log_to_sql, looks_like_ecto_log
from orchestrator.lint.inputs.schema_diff import diff_to_sql, looks_like_diff


class InputKind(StrEnum):
    SQL = "sql"
    ECTO_LOG = "ecto-log"
    SCHEMA_DIFF = "schema-diff"


@dataclass(frozen=True)
class SqlInput:
    kind: InputKind
    text: str

    @property
    def from_dump(self) -> bool:
        """A dump shows the end state: whether an index was built concurrently, or a constraint
        validated separately, is not in it."""
        return self.kind is InputKind.SCHEMA_DIFF


def detect(text: str) -> InputKind:
    if looks_like_diff(text):
        return InputKind.SCHEMA_DIFF
    if looks_like_ecto_log(text):
        return InputKind.ECTO_LOG
    return InputKind.SQL


def read_input(text: str, engine: Literal["postgres", "mysql"]) -> SqlInput:
    kind = detect(text)
    if kind is InputKind.SCHEMA_DIFF:
        return SqlInput(kind, diff_to_sql(text, engine))
    if kind is InputKind.ECTO_LOG:
        return SqlInput(kind, ecto_log_to_sql(text))
    return SqlInput(kind, text)
