"""The names add_column gives the objects it creates, as PostgreSQL itself would name them, so the
preflight can check they are free before anything runs."""

from __future__ import annotations

from dataclasses import dataclass

from orchestrator.domain.operations import AddColumn
from orchestrator.engine.planner.postgres.ddl_text import derived_name


@dataclass(frozen=True)
class ColumnNames:
    unique: str  # the unique index and the constraint it becomes
    foreign_key: str
    foreign_key_index: str
    not_null_check: str  # temporary: proves NOT NULL so SET NOT NULL skips its scan, then dropped

    def relations(self, op: AddColumn) -> list[str]:
        """Indexes the operation creates (relation names must be free in the schema)."""
        found = []
        if op.column.unique:
            found.append(self.unique)
        elif op.column.references is not None:
            found.append(self.foreign_key_index)
        return found

    def constraints(self, op: AddColumn) -> list[str]:
        """Constraints the operation adds to the table (names must be free on the table)."""
        found = []
        if op.column.unique:
            found.append(self.unique)
        if op.column.references is not None:
            found.append(self.foreign_key)
        if not op.column.nullable and (op.column.default_expression or op.column.backfill):
            found.append(self.not_null_check)
        return found


def column_names(op: AddColumn) -> ColumnNames:
    table, column = op.table, op.column.name
    return ColumnNames(
        unique=derived_name(table, column, suffix="key"),
        foreign_key=derived_name(table, column, suffix="fkey"),
        foreign_key_index=derived_name(table, column, suffix="idx"),
        not_null_check=derived_name(table, column, suffix="osc_not_null"),
    )
