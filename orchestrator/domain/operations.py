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


OnDelete = Literal["no_action", "restrict", "cascade", "set_null", "set_default"]


class ForeignKeyReference(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    table: Identifier
    columns: list[Identifier] = Field(
        default_factory=lambda: ["id"], min_length=1, max_length=32, description="Referenced columns."
    )
    on_delete: OnDelete = "no_action"


class ColumnDefinition(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: Identifier
    type: TypeName
    nullable: bool = True
    default: Scalar | None = Field(
        default=None, description="A constant default: metadata-only on PostgreSQL 11+."
    )
    default_expression: str | None = Field(
        default=None,
        min_length=1,
        max_length=4000,
        description="A volatile default such as now() or gen_random_uuid(): the column is added "
        "nullable, the default set for new rows, existing rows backfilled, then constrained.",
    )
    backfill: str | None = Field(
        default=None,
        min_length=1,
        max_length=4000,
        description="An expression over the row that fills existing rows (default: default_expression).",
    )
    unique: bool = Field(default=False, description="Unique through an index built concurrently.")
    references: ForeignKeyReference | None = Field(
        default=None, description="A foreign key, added NOT VALID and validated after the backfill."
    )

    @model_validator(mode="after")
    def _consistent(self) -> ColumnDefinition:
        if self.default is not None and self.default_expression is not None:
            raise ValueError("give either 'default' (a constant) or 'default_expression', not both")
        if (
            not self.nullable
            and self.default is None
            and self.default_expression is None
            and self.backfill is None
        ):
            raise ValueError(
                "a NOT NULL column added to a live table needs values for its existing rows: give a "
                "constant 'default', a 'default_expression' or a 'backfill' expression"
            )
        return self


class AddColumn(_Operation):
    """Add a nullable column, or one with a constant default (metadata-only on PostgreSQL 11+)."""

    kind: Literal["add_column"] = "add_column"
    column: ColumnDefinition

    def describe(self) -> str:
        return f"add column {self.table}.{self.column.name} {self.column.type}"


IndexMethod = Literal["btree", "hash", "gin", "gist", "brin"]


class CreateIndex(_Operation):
    """Build an index without blocking writes (CREATE INDEX CONCURRENTLY on PostgreSQL)."""

    kind: Literal["create_index"] = "create_index"
    name: Identifier
    columns: list[Identifier] = Field(default_factory=list, max_length=32)
    expressions: list[str] = Field(
        default_factory=list,
        max_length=32,
        description="Index expressions such as lower(email), instead of (or after) plain columns.",
    )
    unique: bool = False
    method: IndexMethod = "btree"
    where: str | None = Field(
        default=None, min_length=1, max_length=4000, description="A partial index's predicate."
    )

    @model_validator(mode="after")
    def _has_keys(self) -> CreateIndex:
        if not self.columns and not self.expressions:
            raise ValueError("an index needs 'columns' or 'expressions'")
        return self

    def describe(self) -> str:
        unique = "unique " if self.unique else ""
        keys = ", ".join([*self.columns, *self.expressions])
        partial = f" where {self.where}" if self.where else ""
        return f"create {unique}index {self.name} on {self.table} ({keys}){partial}"


class DropIndex(_Operation):
    """Drop an index (CONCURRENTLY) in contract. Describe it (columns/expressions, unique, method,
    where) and a rollback after contract rebuilds it concurrently; without that the drop is
    irreversible. Preflight checks the description against the live index."""

    kind: Literal["drop_index"] = "drop_index"
    name: Identifier
    columns: list[Identifier] = Field(default_factory=list, max_length=32)
    expressions: list[str] = Field(default_factory=list, max_length=32)
    unique: bool = False
    method: IndexMethod = "btree"
    where: str | None = Field(default=None, min_length=1, max_length=4000)

    def describe(self) -> str:
        return f"drop index {self.name} on {self.table}"


class AddUnique(_Operation):
    """A UNIQUE constraint: index built concurrently, then ADD CONSTRAINT ... USING INDEX."""

    kind: Literal["add_unique"] = "add_unique"
    name: Identifier
    columns: list[Identifier] = Field(min_length=1, max_length=32)

    def describe(self) -> str:
        return f"add unique constraint {self.name} on {self.table} ({', '.join(self.columns)})"


class AddForeignKey(_Operation):
    """A foreign key: NOT VALID in expand (no scan under lock), VALIDATE after the backfill; the
    referencing columns get an index built concurrently first when none leads with them."""

    kind: Literal["add_foreign_key"] = "add_foreign_key"
    name: Identifier
    columns: list[Identifier] = Field(min_length=1, max_length=32)
    references: ForeignKeyReference
    create_index: bool = Field(
        default=True, description="Build an index on the referencing columns when none exists."
    )

    def describe(self) -> str:
        return (
            f"add foreign key {self.name} on {self.table} ({', '.join(self.columns)}) -> "
            f"{self.references.table} ({', '.join(self.references.columns)})"
        )


class AddCheck(_Operation):
    """A CHECK constraint: NOT VALID in expand, VALIDATE after the backfill."""

    kind: Literal["add_check"] = "add_check"
    name: Identifier
    expression: str = Field(min_length=1, max_length=4000)

    def describe(self) -> str:
        return f"add check {self.name} on {self.table} ({self.expression})"


class TableColumn(ColumnDefinition):
    """A column of a table created by the spec: the table has no rows yet, so NOT NULL needs no
    default and `default_expression` is simply the column's default."""

    default: Scalar | None = Field(default=None, description="A constant default.")
    default_expression: str | None = Field(
        default=None,
        min_length=1,
        max_length=4000,
        description="The column's default as an expression, volatile ones included (now(), gen_random_uuid()).",
    )
    backfill: str | None = Field(
        default=None, min_length=1, max_length=4000, description="Refused: a new table has no rows to fill."
    )
    unique: bool = Field(default=False, description="UNIQUE, declared with the table (it is empty).")
    references: ForeignKeyReference | None = Field(
        default=None, description="A foreign key declared with the table (it has no rows to check)."
    )

    @model_validator(mode="after")
    def _consistent(self) -> TableColumn:  # replaces ColumnDefinition's rule for live tables
        if self.default is not None and self.default_expression is not None:
            raise ValueError("give either 'default' (a constant) or 'default_expression', not both")
        return self


class CreateTable(_Operation):
    """A new table in expand; rollback drops it."""

    kind: Literal["create_table"] = "create_table"
    columns: list[TableColumn] = Field(min_length=1, max_length=1600)
    primary_key: list[Identifier] = Field(default_factory=list, max_length=32)

    def describe(self) -> str:
        return f"create table {self.table} ({', '.join(column.name for column in self.columns)})"


class DropTable(_Operation):
    """Contract renames the table aside; it is dropped for good after `retention_hours`, so a
    rollback before then renames it back."""

    kind: Literal["drop_table"] = "drop_table"
    retention_hours: int = Field(default=168, ge=0, le=24 * 365)

    def describe(self) -> str:
        return f"drop table {self.table} (kept aside for {self.retention_hours} h)"


class RenameTable(_Operation):
    """Rename with a compatibility path for the old name until contract."""

    kind: Literal["rename_table"] = "rename_table"
    new_name: Identifier

    def describe(self) -> str:
        return f"rename table {self.table} to {self.new_name}"


class RenameColumn(_Operation):
    """A new column kept in sync both ways by triggers from expand until contract."""

    kind: Literal["rename_column"] = "rename_column"
    column: Identifier
    new_name: Identifier

    def describe(self) -> str:
        return f"rename column {self.table}.{self.column} to {self.new_name}"


class AlterColumn(_Operation):
    """Change a column's type, nullability or default without an in-place rewrite: a new column
    kept in sync both ways by triggers (or a shadow table for full rewrites), swapped in contract."""

    kind: Literal["alter_column"] = "alter_column"
    column: Identifier
    type: TypeName | None = None
    up: str | None = Field(
        default=None,
        min_length=1,
        max_length=4000,
        description="Old value -> new value, an expression over the row (default: a cast).",
    )
    down: str | None = Field(
        default=None,
        min_length=1,
        max_length=4000,
        description="New value -> old value, for writes by the old application version (default: a cast).",
    )
    nullable: bool | None = None
    default: Scalar | None = None
    drop_default: bool = False
    strategy: Literal["auto", "sync_column", "shadow"] = Field(
        default="auto",
        description="auto: a synced column, or a shadow table when the column is in the primary key.",
    )

    @model_validator(mode="after")
    def _changes_something(self) -> AlterColumn:
        if (
            self.type is None
            and self.up is None
            and self.nullable is None
            and self.default is None
            and not self.drop_default
        ):
            raise ValueError(
                "alter_column needs at least one of 'type', 'up', 'nullable', 'default', 'drop_default'"
            )
        if self.default is not None and self.drop_default:
            raise ValueError("give either 'default' or 'drop_default: true', not both")
        return self

    def describe(self) -> str:
        changes = []
        if self.type is not None:
            changes.append(f"type {self.type}")
        if self.nullable is not None:
            changes.append("nullable" if self.nullable else "not null")
        if self.default is not None:
            changes.append(f"default {self.default!r}")
        if self.drop_default:
            changes.append("no default")
        return f"alter column {self.table}.{self.column}: {', '.join(changes)}"


LockLevel = Literal[
    "none",
    "access_share",
    "row_share",
    "row_exclusive",
    "share_update_exclusive",
    "share",
    "share_row_exclusive",
    "exclusive",
    "access_exclusive",
]


class RawSql(_Operation):
    """Statements the catalogue does not cover. A declared lock level and either a `down` or an
    explicit `irreversible: true` are required, so the plan can say what it risks and how to undo."""

    kind: Literal["raw_sql"] = "raw_sql"
    sql: str = Field(min_length=1, max_length=100_000)
    down: str | None = Field(default=None, min_length=1, max_length=100_000)
    irreversible: bool = False
    lock: LockLevel = Field(description="The strongest lock the statements take on the table.")
    stage: Literal["expand", "contract"] = "expand"
    transactional: bool = Field(
        default=True, description="False for statements that cannot run in a transaction (CONCURRENTLY)."
    )

    @model_validator(mode="after")
    def _reversible_or_said_not(self) -> RawSql:
        if self.down is None and not self.irreversible:
            raise ValueError("raw_sql needs a 'down' that undoes it, or 'irreversible: true'")
        if self.down is not None and self.irreversible:
            raise ValueError("give either 'down' or 'irreversible: true', not both")
        return self

    def describe(self) -> str:
        first = self.sql.strip().splitlines()[0] if self.sql.strip() else ""
        return f"raw sql on {self.table}: {first[:80]}"


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
    archive: bool = Field(
        default=False,
        description="Copy the primary key and the column's values into an archive table first, so a "
        "rollback after contract can restore them.",
    )

    def describe(self) -> str:
        archived = " (values archived)" if self.archive else ""
        return f"drop column {self.table}.{self.column}{archived}"


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
        description=(
            "auto: the server's online DDL when it makes the change without blocking writes and the table "
            "is small enough (OSCTL_DIRECT_MAX_ROWS/BYTES; INSTANT at any size), else gh-ost when configured "
            "and able, else pt-osc; direct: the server's online DDL."
        ),
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
    "drop_index": DropIndex,
    "add_unique": AddUnique,
    "add_foreign_key": AddForeignKey,
    "add_check": AddCheck,
    "create_table": CreateTable,
    "drop_table": DropTable,
    "rename_table": RenameTable,
    "rename_column": RenameColumn,
    "alter_column": AlterColumn,
    "raw_sql": RawSql,
}
KINDS = tuple(_KINDS)
OPERATION_MODELS: dict[str, type[BaseModel]] = dict(_KINDS)


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
    AddColumn
    | CreateIndex
    | Backfill
    | DropColumn
    | AlterTable
    | DropIndex
    | AddUnique
    | AddForeignKey
    | AddCheck
    | CreateTable
    | DropTable
    | RenameTable
    | RenameColumn
    | AlterColumn
    | RawSql,
    Field(discriminator="kind"),
]
OperationEntry = Annotated[Operation, BeforeValidator(unwrap_operation)]
