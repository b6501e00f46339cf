"""Snapshots of the live schema, taken by an adapter and judged by pure preflight checks."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ColumnInfo(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    type: str
    nullable: bool


class IndexInfo(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    columns: list[str]
    valid: bool
    unique: bool


class TableInfo(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    columns: dict[str, ColumnInfo]
    indexes: dict[str, IndexInfo] = Field(default_factory=dict)
    primary_key: list[str] = Field(default_factory=list)
    # What a backfill walks: the primary key, else the narrowest valid, non-partial unique index over
    # NOT NULL columns only (any other unique index could skip rows or visit some twice).
    walk_key: list[str] = Field(default_factory=list)
    estimated_rows: int = 0
