"""The operations a spec can ask for: one frozen model per kind, discriminated on `kind`.

A spec writes each operation as a one-key mapping (`- add_column: {...}`); `unwrap_operation` turns
that into the tagged form, so validation errors read `operations.0.add_column.column.type`.
Adding a kind means one model here and one planner module per engine.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from orchestrator.domain.copy_tools import Strategy
from orchestrator.domain.identifiers import Identifier, TypeName

Scalar = str | int | float | bool


class _Operation(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    table: Identifier

    def describe(self) -> str:
        raise NotImplementedError


class ColumnDefinition(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: Identifier
    type: TypeName
    nullable: bool = True
    default: Scalar | None = Field(
        default=None, description="A constant. Volatile defaults (now(), random()) belong in a backfill."
    )

    @model_validator(mode="after")
    def _not_null_needs_default(self) -> ColumnDefinition:
        if not self.nullable and self.default is None:
            raise ValueError(
                "a NOT NULL column added to a live table needs a constant 'default' "
                "(or add it nullable, backfill it, then constrain it)"
            )
        return self


class AddColumn(_Operation):
    """Add a nullable column, or one with a constant default (metadata-only on PostgreSQL 11+)."""

    kind: Literal["add_column"] = "add_column"
    column: ColumnDefinition

    def describe(self) -> str:
        return f"add column {self.table}.{self.column.name} {self.column.type}"


class CreateIndex(_Operation):
    """Build an index without blocking writes (CREATE INDEX CONCURRENTLY on PostgreSQL)."""

    kind: Literal["create_index"] = "create_index"
    name: Identifier
    columns: list[Identifier] = Field(min_length=1, max_length=32)
    unique: bool = False
    method: Literal["btree", "hash", "gin", "gist", "brin"] = "btree"

    def describe(self) -> str:
        unique = "unique " if self.unique else ""
        return f"create {unique}index {self.name} on {self.table} ({', '.join(self.columns)})"


class Backfill(_Operation):
    """Set a column from a SQL expression over the same row, in short chunks along the primary key."""

    kind: Literal["backfill"] = "backfill"
    column: Identifier
    expression: str = Field(
        min_length=1,
        max_length=4000,
        description="A scalar SQL expression over the row's own columns, e.g. lower(email).",
    )
    batch_size: int = Field(default=1000, ge=1, le=100_000, description="Rows in the first chunk.")
    chunk_target_ms: int = Field(
        default=200, ge=10, le=60_000, description="Time target per chunk; the chunk size adapts to it."
    )
    adaptive: bool = Field(default=True, description="False keeps every chunk at batch_size rows.")
    pause_ms: int = Field(default=0, ge=0, le=60_000, description="Pause between chunks, to leave headroom.")

    def describe(self) -> str:
        return f"backfill {self.table}.{self.column} = {self.expression}"


class DropColumn(_Operation):
    """Drop a column once the deployed code no longer reads or writes it (contract stage)."""

    kind: Literal["drop_column"] = "drop_column"
    column: Identifier

    def describe(self) -> str:
        return f"drop column {self.table}.{self.column}"


class AlterTable(_Operation):
    """MySQL only: a raw ALTER TABLE clause list, run through an online copy tool (gh-ost or
    pt-online-schema-change) or the server's own online DDL (`strategy: direct`)."""

    kind: Literal["alter_table"] = "alter_table"
    alter: str = Field(
        min_length=1,
        max_length=10_000,
        description="The clauses after ALTER TABLE <table>, e.g. \"MODIFY note varchar(255) NOT NULL DEFAULT ''\".",
    )
    strategy: Strategy = Field(
        default="auto",
        description="auto: gh-ost when configured and able, else pt-osc; direct: the server's online DDL.",
    )
    keep_old_table: bool = Field(
        default=False,
        description="Keep the pre-change table after the cut-over as a revert window; contract drops it.",
    )
    verify: bool = Field(
        default=True, description="Compare row counts and checksums of copy and original before the swap."
    )
    max_lag_seconds: float = Field(default=1.0, gt=0, le=3600, description="Replica lag the copy pauses at.")
    chunk_time_seconds: float = Field(default=0.5, gt=0, le=60, description="pt-osc --chunk-time.")
    chunk_size: int = Field(default=1000, ge=10, le=100_000, description="gh-ost --chunk-size.")
    max_load: str = Field(
        default="Threads_running=25",
        pattern=r"^[A-Za-z_]+[=:]\d+(,[A-Za-z_]+[=:]\d+)*$",
        description="Status thresholds the copy pauses at.",
    )
    critical_load: str = Field(
        default="Threads_running=50",
        pattern=r"^[A-Za-z_]+[=:]\d+(,[A-Za-z_]+[=:]\d+)*$",
        description="Status thresholds the copy aborts at.",
    )

    def describe(self) -> str:
        return f"alter table {self.table} {self.alter.strip()}"


_KINDS: dict[str, type[_Operation]] = {
    "add_column": AddColumn,
    "create_index": CreateIndex,
    "backfill": Backfill,
    "drop_column": DropColumn,
    "alter_table": AlterTable,
}
KINDS = tuple(_KINDS)


def unwrap_operation(value: Any) -> Any:
    """`{add_column: {...}}` -> `{kind: add_column, ...}`; anything else is left for pydantic to reject."""
    if isinstance(value, BaseModel):
        return value
    if not isinstance(value, dict) or len(value) != 1:
        raise ValueError(
            "each operation is a mapping with exactly one key, the operation kind "
            f"({', '.join(KINDS)}), e.g. '- add_column: {{table: users, column: {{...}}}}'"
        )
    ((kind, params),) = value.items()
    if kind not in _KINDS:
        raise ValueError(f"unknown operation kind {kind!r}: expected one of {', '.join(KINDS)}")
    if not isinstance(params, dict):
        raise ValueError(f"the parameters of {kind} must be a mapping")
    return {**params, "kind": kind}


Operation = Annotated[
    AddColumn | CreateIndex | Backfill | DropColumn | AlterTable,
    Field(discriminator="kind"),
]
OperationEntry = Annotated[Operation, BeforeValidator(unwrap_operation)]
