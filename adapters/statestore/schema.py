"""Table definitions shared by the store and its Alembic migrations."""

from __future__ import annotations

from sqlalchemy import JSON, Column, DateTime, ForeignKey, Index, Integer, MetaData, String, Table, Text

metadata = MetaData()

migrations = Table(
    "migrations",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("target", String(300), nullable=False),
    Column("engine", String(32), nullable=False),
    Column("status", String(32), nullable=False),
    Column("stage", String(32)),
    Column("paused_from", String(32)),
    Column("error", Text),
    Column("spec", JSON, nullable=False),
    Column("plan", JSON, nullable=False),
    Column("progress", JSON, nullable=False),
    Column("notification_ref", JSON, nullable=False),
    Column("tuning", JSON, nullable=False, server_default="{}"),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

# One row per table an unfinished migration touches: the primary key is the invariant
# "one active migration per target table", enforced by the store rather than by a check-then-insert.
active_tables = Table(
    "active_tables",
    metadata,
    Column("target", String(300), primary_key=True),
    Column("table_name", String(128), primary_key=True),
    Column("migration_id", String(64), ForeignKey("migrations.id"), nullable=False),
)

events = Table(
    "events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("migration_id", String(64), ForeignKey("migrations.id"), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("type", String(32), nullable=False),
    Column("stage", String(32)),
    Column("step_id", String(300)),
    Column("message", Text, nullable=False),
    Column("data", JSON, nullable=False),
    Index("events_by_migration", "migration_id", "id"),
)

step_checkpoints = Table(
    "step_checkpoints",
    metadata,
    Column("migration_id", String(64), ForeignKey("migrations.id"), primary_key=True),
    Column("step_id", String(300), primary_key=True),
    Column("state", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

backfill_checkpoints = Table(
    "backfill_checkpoints",
    metadata,
    Column("migration_id", String(64), ForeignKey("migrations.id"), primary_key=True),
    Column("step_id", String(300), primary_key=True),
    Column("high_water", JSON),
    Column("rows_done", Integer, nullable=False),
    Column("done", Integer, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)
