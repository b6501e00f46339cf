"""Table definitions shared by the store and its Alembic migrations."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)

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
    Column("waiting", JSON(none_as_null=True)),
    Column("contract_proof", JSON(none_as_null=True)),
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

# One row (id = 1): the fencing epoch of the current leader. A leader increments it when elected and
# every write it makes checks it in the same transaction, so a replica that lost leadership without
# noticing (paused, partitioned) has its writes refused.
leader = Table(
    "leader",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("epoch", BigInteger, nullable=False),
    Column("holder", String(200)),
    Column("acquired_at", DateTime(timezone=True)),
)

# The first answer to each POST, by (principal, Idempotency-Key). `status` is NULL while the request is
# being processed; a retry then gets 409 instead of running the command twice.
idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("principal", String(200), primary_key=True),
    Column("key", String(200), primary_key=True),
    Column("fingerprint", String(64), nullable=False),
    Column("status", Integer),
    Column("body", LargeBinary),
    Column("content_type", String(200)),
    Column("location", String(500)),
    Column("created_at", DateTime(timezone=True), nullable=False),
)
