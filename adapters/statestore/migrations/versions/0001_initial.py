"""Initial state store schema: migrations, active tables, events, step and backfill checkpoints.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "migrations",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("target", sa.String(300), nullable=False),
        sa.Column("engine", sa.String(32), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("stage", sa.String(32)),
        sa.Column("paused_from", sa.String(32)),
        sa.Column("error", sa.Text),
        sa.Column("spec", sa.JSON, nullable=False),
        sa.Column("plan", sa.JSON, nullable=False),
        sa.Column("progress", sa.JSON, nullable=False),
        sa.Column("notification_ref", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "active_tables",
        sa.Column("target", sa.String(300), primary_key=True),
        sa.Column("table_name", sa.String(128), primary_key=True),
        sa.Column("migration_id", sa.String(64), sa.ForeignKey("migrations.id"), nullable=False),
    )
    op.create_table(
        "events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("migration_id", sa.String(64), sa.ForeignKey("migrations.id"), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("stage", sa.String(32)),
        sa.Column("step_id", sa.String(300)),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("data", sa.JSON, nullable=False),
    )
    op.create_index("events_by_migration", "events", ["migration_id", "id"])
    op.create_table(
        "step_checkpoints",
        sa.Column("migration_id", sa.String(64), sa.ForeignKey("migrations.id"), primary_key=True),
        sa.Column("step_id", sa.String(300), primary_key=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "backfill_checkpoints",
        sa.Column("migration_id", sa.String(64), sa.ForeignKey("migrations.id"), primary_key=True),
        sa.Column("step_id", sa.String(300), primary_key=True),
        sa.Column("high_water", sa.JSON),
        sa.Column("rows_done", sa.Integer, nullable=False),
        sa.Column("done", sa.Integer, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    for table in ("backfill_checkpoints", "step_checkpoints", "events", "active_tables", "migrations"):
        op.drop_table(table)
