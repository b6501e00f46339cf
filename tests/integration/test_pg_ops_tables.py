"""Table operations and raw SQL on the real PostgreSQL primary and replica: a round trip each (expand,
roll back, expand again, gate, backfill, contract) with the mirrored writer running throughout; then
what only these operations do: a table set aside and purged on time, a rollback that puts it back,
and the preflight refusals that need a live schema."""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from adapters.postgres.target import PostgresTarget
from orchestrator.domain.errors import SpecError
from orchestrator.domain.plan import Stage
from orchestrator.domain.retention import MARKER_PREFIX, aside_name
from orchestrator.domain.states import RunStatus
from orchestrator.engine.retention import purge_dropped_tables
from tests.support.pg import build_service, connect, fresh_database, require_env, settle
from tests.support.roundtrip import RoundTrip, Version, base_schema, run_round_trip

pytestmark = pytest.mark.integration


async def osctl(*args: str) -> str:
    process = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "osctl"),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode == 0, err.decode()
    return out.decode()


async def relkind(conn: asyncpg.Connection, name: str) -> str | None:
    value = await conn.fetchval("SELECT relkind FROM pg_class WHERE oid = to_regclass($1)", name)
    return None if value is None else str(value.decode() if isinstance(value, bytes) else value)


# --- create_table ----------------------------------------------------------------------------------

INVOICES = {
    "create_table": {
        "table": "invoices",
        "columns": [
            {"name": "id", "type": "bigserial"},
            {
                "name": "owner_id",
                "type": "bigint",
                "nullable": False,
                "references": {"table": "owners", "on_delete": "cascade"},
            },
            {"name": "number", "type": "text", "nullable": False, "unique": True},
            {"name": "issued_at", "type": "timestamptz", "nullable": False, "default_expression": "now()"},
            {"name": "status", "type": "text", "nullable": False, "default": "draft"},
        ],
        "primary_key": ["id"],
    }
}


async def invoices_work(conn: asyncpg.Connection) -> None:
    row = await conn.fetchrow(
        "INSERT INTO invoices (owner_id, number) VALUES (3, 'INV-1') RETURNING id, status, issued_at"
    )
    assert row is not None and row["id"] >= 1 and row["status"] == "draft" and row["issued_at"] is not None
    with pytest.raises(asyncpg.UniqueViolationError):
        await conn.execute("INSERT INTO invoices (owner_id, number) VALUES (4, 'INV-1')")
    with pytest.raises(asyncpg.ForeignKeyViolationError):
        await conn.execute("INSERT INTO invoices (owner_id, number) VALUES (999, 'INV-2')")
    with pytest.raises(asyncpg.NotNullViolationError):
        await conn.execute("INSERT INTO invoices (number) VALUES ('INV-3')")
    kinds = await conn.fetch(
        "SELECT contype::text AS kind, convalidated FROM pg_constraint WHERE conrelid = 'invoices'::regclass"
    )
    assert sorted(row["kind"] for row in kinds) == ["f", "p", "u"] and all(
        row["convalidated"] for row in kinds
    )


async def test_create_table_round_trip(tmp_path: Path) -> None:
    # Rolled back after the first expand (rows and all), created again by the second.
    await run_round_trip(
        RoundTrip(operations=[INVOICES], after_expand=invoices_work, after_contract=invoices_work), tmp_path
    )


# --- rename_table ----------------------------------------------------------------------------------


async def test_rename_table_round_trip(tmp_path: Path) -> None:
    role = f"osc_app_{uuid.uuid4().hex[:8]}"

    async def after_expand(conn: asyncpg.Connection) -> None:
        assert await relkind(conn, "products") == "r" and await relkind(conn, "items") == "v"
        options = await conn.fetchval("SELECT reloptions FROM pg_class WHERE oid = 'items'::regclass")
        assert "security_invoker=true" in options  # the caller's rights and row-level security apply
        # The application's role writes through the view, with the table's defaults (identity, now()).
        async with conn.transaction():
            await conn.execute(f'SET LOCAL ROLE "{role}"')
            row = await conn.fetchrow(
                "INSERT INTO items (name) VALUES ('via view') RETURNING id, qty, created_at"
            )
            assert row is not None and row["qty"] == 0 and row["created_at"] is not None
            assert await conn.fetchval("SELECT name FROM products WHERE id = $1", row["id"]) == "via view"
            assert await conn.execute("UPDATE items SET qty = 7 WHERE id = $1", row["id"]) == "UPDATE 1"
            assert await conn.execute("DELETE FROM items WHERE id = $1", row["id"]) == "DELETE 1"
        assert await conn.fetchval(
            "SELECT pg_get_userbyid(relowner) FROM pg_class WHERE relname = 'items'"
        ) == (
            await conn.fetchval("SELECT pg_get_userbyid(relowner) FROM pg_class WHERE relname = 'products'")
        )

    async def after_contract(conn: asyncpg.Connection) -> None:
        assert await relkind(conn, "items") is None and await relkind(conn, "products") == "r"

    try:
        await run_round_trip(
            RoundTrip(
                operations=[{"rename_table": {"table": "items", "new_name": "products"}}],
                new_version=Version(table="products"),
                extra_setup=f'CREATE ROLE "{role}"; GRANT SELECT, INSERT, UPDATE, DELETE ON items TO "{role}"',
                after_expand=after_expand,
                after_contract=after_contract,
            ),
            tmp_path,
        )
    finally:
        # Roles belong to the cluster, not to the test's database (dropped by now).
        async with connect(require_env("PG_PRIMARY_DSN")) as admin:
            await admin.execute(f'DROP ROLE IF EXISTS "{role}"')


# --- drop_table ------------------------------------------------------------------------------------

LEGACY = """
    CREATE TABLE legacy_notes (id bigint PRIMARY KEY, owner_id bigint REFERENCES owners, body text);
    INSERT INTO legacy_notes SELECT g, 1 + g % 50, 'note ' || g FROM generate_series(1, 300) AS g;
    COMMENT ON TABLE legacy_notes IS 'notes from the old app';
"""


async def test_drop_table_round_trip(tmp_path: Path) -> None:
    aside = aside_name("legacy_notes", "round-trip-second")

    async def after_expand(conn: asyncpg.Connection) -> None:
        assert await relkind(conn, "legacy_notes") == "r"  # nothing happens before the gate

    async def after_contract(conn: asyncpg.Connection) -> None:
        assert await relkind(conn, "legacy_notes") is None
        assert await conn.fetchval(f'SELECT count(*) FROM "{aside}"') == 300
        marker = await conn.fetchval("SELECT obj_description(to_regclass($1), 'pg_class')", aside)
        assert marker.startswith(MARKER_PREFIX) and '"notes from the old app"' in marker

    await run_round_trip(
        RoundTrip(
            operations=[{"drop_table": {"table": "legacy_notes", "retention_hours": 24}}],
            extra_setup=LEGACY,
            after_expand=after_expand,
            after_contract=after_contract,
        ),
        tmp_path,
    )


def drop_spec(name: str, *operations: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "target": "app",
        "settings": {"lock_timeout_ms": 500},
        "operations": list(operations),
    }


async def drive_to_contract(service: Any, data: dict[str, Any], until: RunStatus) -> str:
    run = await service.create(data)
    await service.start_stage(run.id, Stage.EXPAND)
    await settle(service, run.id, RunStatus.AWAITING_DEPLOY)
    await service.approve_deploy(run.id)
    await service.start_stage(run.id, Stage.BACKFILL)
    await settle(service, run.id, RunStatus.AWAITING_CONTRACT)
    await service.start_stage(run.id, Stage.CONTRACT)
    await settle(service, run.id, until)
    return str(run.id)


async def test_a_failed_contract_rolls_the_table_back_from_aside(tmp_path: Path) -> None:
    """A later contract step fails: the rollback renames the table back, its comment restored."""
    failing = {
        "raw_sql": {
            "table": "items",
            "lock": "none",
            "stage": "contract",
            "sql": "SELECT 1/0",
            "down": "SELECT 1",
        }
    }
    async with fresh_database() as pair:
        async with connect(pair.primary) as conn:
            await conn.execute(base_schema(50) + LEGACY)
        service = build_service(pair, tmp_path)
        await service.start()
        try:
            run_id = await drive_to_contract(
                service,
                drop_spec("drop-then-fail", {"drop_table": {"table": "legacy_notes"}}, failing),
                RunStatus.FAILED,
            )
            async with connect(pair.primary) as conn:
                assert await relkind(conn, "legacy_notes") is None  # set aside before the failure
            await service.rollback(run_id)
            await settle(service, run_id, RunStatus.ROLLED_BACK)
        finally:
            await service.stop()
        async with connect(pair.primary) as conn:
            assert await relkind(conn, "legacy_notes") == "r"
            assert await conn.fetchval("SELECT count(*) FROM legacy_notes") == 300
            comment = await conn.fetchval("SELECT obj_description('legacy_notes'::regclass, 'pg_class')")
            assert comment == "notes from the old app"
            assert await relkind(conn, aside_name("legacy_notes", "drop-then-fail")) is None


async def test_aside_tables_are_purged_once_their_retention_has_run_out(tmp_path: Path) -> None:
    async with fresh_database() as pair:
        async with connect(pair.primary) as conn:
            await conn.execute(
                base_schema(50)
                + LEGACY
                + "CREATE TABLE short_lived (id int PRIMARY KEY); INSERT INTO short_lived VALUES (1), (2);"
                + "CREATE TABLE spare (id int); CREATE TABLE _osc_dropped_stranger (id int);"
            )
        service = build_service(pair, tmp_path)
        await service.start()
        try:
            await drive_to_contract(
                service,
                drop_spec(
                    "retention",
                    {"drop_table": {"table": "legacy_notes", "retention_hours": 1}},
                    {"drop_table": {"table": "short_lived", "retention_hours": 3}},
                    {"drop_table": {"table": "spare", "retention_hours": 3}},
                ),
                RunStatus.COMPLETED,
            )
            now = datetime.now(UTC)
            legacy, short, spare = (
                aside_name(t, "retention") for t in ("legacy_notes", "short_lived", "spare")
            )
            # Within retention: kept. The clock is passed in, nothing waits.
            reports = await service.purge_dropped_tables(now + timedelta(minutes=30))
            assert reports["app"].purged == [] and {t.name for t in reports["app"].kept} == {
                legacy,
                short,
                spare,
            }
            reports = await service.purge_dropped_tables(now + timedelta(hours=2))
            assert [t.name for t in reports["app"].purged] == [legacy]
            assert sorted(t.original for t in reports["app"].kept) == ["short_lived", "spare"]
        finally:
            await service.stop()
        async with connect(pair.primary) as conn:
            assert await relkind(conn, legacy) is None
            assert await relkind(conn, short) == "r"
            assert await relkind(conn, "_osc_dropped_stranger") == "r"  # no marker: never ours to drop
        # What a DBA sees: the CLI lists what is kept aside and until when.
        listed = await osctl("purge-dropped", "--target-dsn", pair.primary, "--dry-run", "--format", "json")
        records = {record["original"]: record for record in map(json.loads, listed.splitlines())}
        assert set(records) == {"short_lived", "spare"} and records["spare"]["result"] == "kept"
        # Needed again after the migration completed (no rollback then): renamed back by hand.
        restored = await osctl("restore-dropped", "short_lived", "--target-dsn", pair.primary)
        assert restored.strip() == f"{short} renamed back to short_lived"
        # Restart-safe: a new process finds the rest from the database alone.
        target = PostgresTarget(pair.primary)
        try:
            report = await purge_dropped_tables(target, datetime.now(UTC) + timedelta(hours=4))
        finally:
            await target.close()
        assert [t.name for t in report.purged] == [spare]
        async with connect(pair.primary) as conn:
            assert await conn.fetchval("SELECT count(*) FROM short_lived") == 2
            assert await conn.fetchval("SELECT obj_description('short_lived'::regclass, 'pg_class')") is None


async def test_drop_table_preflight_refuses_dependants(tmp_path: Path) -> None:
    async with fresh_database() as pair:
        async with connect(pair.primary) as conn:
            await conn.execute(
                base_schema(10)
                + LEGACY
                + "CREATE VIEW notes_report AS SELECT owner_id, count(*) FROM legacy_notes GROUP BY 1;"
                + "CREATE TABLE replies (id int PRIMARY KEY, note_id bigint REFERENCES legacy_notes);"
            )
        service = build_service(pair, tmp_path)
        await service.start()
        try:
            with pytest.raises(SpecError) as caught:
                await service.create(drop_spec("drop-used", {"drop_table": {"table": "legacy_notes"}}))
        finally:
            await service.stop()
    messages = dict(caught.value.problems)
    assert set(messages) == {"operations.0.drop_table.table"}
    text = " ".join(message for field, message in caught.value.problems)
    assert "notes_report" in text and "replies.replies_note_id_fkey" in text


# --- raw_sql ---------------------------------------------------------------------------------------


async def test_raw_sql_transactional_round_trip(tmp_path: Path) -> None:
    expand = {
        "raw_sql": {
            "table": "items",
            "lock": "access_exclusive",
            "sql": "ALTER TABLE items ADD COLUMN tag text; CREATE TABLE item_tags (tag text PRIMARY KEY);",
            "down": "DROP TABLE IF EXISTS item_tags; ALTER TABLE items DROP COLUMN IF EXISTS tag;",
        }
    }
    contract = {
        "raw_sql": {
            "table": "items",
            "lock": "share_update_exclusive",
            "stage": "contract",
            "irreversible": True,
            "sql": "COMMENT ON TABLE items IS 'tagged'",
        }
    }

    async def after_expand(conn: asyncpg.Connection) -> None:
        assert await relkind(conn, "item_tags") == "r"
        assert (
            await conn.fetchval(
                "SELECT count(*) FROM pg_attribute WHERE attrelid = 'items'::regclass AND attname = 'tag'"
            )
            == 1
        )

    async def after_contract(conn: asyncpg.Connection) -> None:
        await after_expand(conn)
        assert await conn.fetchval("SELECT obj_description('items'::regclass, 'pg_class')") == "tagged"

    await run_round_trip(
        RoundTrip(operations=[expand, contract], after_expand=after_expand, after_contract=after_contract),
        tmp_path,
    )


async def test_raw_sql_outside_a_transaction_round_trip(tmp_path: Path) -> None:
    """Two CONCURRENTLY builds, a step each; the down drops both, its statements one at a time."""
    operation = {
        "raw_sql": {
            "table": "items",
            "lock": "share_update_exclusive",
            "transactional": False,
            "sql": "CREATE INDEX CONCURRENTLY IF NOT EXISTS items_note_idx ON items (note);\n"
            "CREATE INDEX CONCURRENTLY IF NOT EXISTS items_qty_idx ON items (qty);",
            "down": "DROP INDEX CONCURRENTLY IF EXISTS items_note_idx; DROP INDEX CONCURRENTLY IF EXISTS items_qty_idx;",
        }
    }

    async def indexes_valid(conn: asyncpg.Connection) -> None:
        rows = await conn.fetch(
            "SELECT c.relname, i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "WHERE c.relname IN ('items_note_idx', 'items_qty_idx') ORDER BY 1"
        )
        assert [tuple(row) for row in rows] == [("items_note_idx", True), ("items_qty_idx", True)]

    await run_round_trip(
        RoundTrip(operations=[operation], after_expand=indexes_valid, after_contract=indexes_valid), tmp_path
    )
