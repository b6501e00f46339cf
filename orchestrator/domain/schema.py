"""Snapshots of the live schema, taken by an adapter and judged by pure preflight checks."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ColumnInfo(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    type: str
    nullable: bool
    # The default as the catalog prints it (pg_get_expr), e.g. `0` or `now()`; None without one.
    default: str | None = None
    # GENERATED ... AS IDENTITY, and GENERATED ALWAYS AS (...) STORED: values the server makes, which a
    # copy of the column kept in sync by triggers cannot reproduce.
    identity: bool = False
    generated: bool = False


class IndexInfo(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    columns: list[str]
    valid: bool
    unique: bool
    # PostgreSQL: every key in order as the catalog prints it, a column name or an expression
    # (`columns` leaves expressions out); the access method; a partial index's predicate; and the
    # constraint (primary key, unique, exclusion) the index enforces, which DROP INDEX cannot drop.
    keys: list[str] = Field(default_factory=list)
    method: str = "btree"
    predicate: str | None = None
    constraint: str | None = None
    # The whole statement as pg_get_indexdef prints it (operator classes, ordering, INCLUDE, WHERE):
    # what an index rebuilt on another column starts from.
    definition: str = ""


class ConstraintInfo(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    kind: str  # pg_constraint.contype: c check, f foreign key, u unique, p primary key, x exclusion
    validated: bool = True
    columns: list[str] = Field(default_factory=list)  # the table's columns it constrains


class TableInfo(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    columns: dict[str, ColumnInfo]
    indexes: dict[str, IndexInfo] = Field(default_factory=dict)
    constraints: dict[str, ConstraintInfo] = Field(default_factory=dict)
    primary_key: list[str] = Field(default_factory=list)
    # PostgreSQL: per column, what else depends on it (views, checks, foreign keys from or to it,
    # generated columns, owned sequences, triggers, policies) as pg_describe_object names them; its
    # indexes, the constraints they back and its own default are described above instead.
    column_dependents: dict[str, list[str]] = Field(default_factory=dict)
    # PostgreSQL: what outside the table depends on the whole of it: views (and materialized views)
    # that read it, and other tables' foreign keys that reference it (`table.constraint`).
    dependent_views: list[str] = Field(default_factory=list)
    referenced_by: list[str] = Field(default_factory=list)
    # What a backfill walks: the primary key, else the narrowest valid, non-partial unique index over
    # NOT NULL columns only (any other unique index could skip rows or visit some twice).
    walk_key: list[str] = Field(default_factory=list)
    estimated_rows: int = 0
    estimated_bytes: int = 0  # data and indexes, as the catalog estimates them
    # The server the snapshot was read from (its VERSION()), where what it runs online depends on it.
    server_version: str | None = None
