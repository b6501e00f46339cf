"""rename_column and alter_column (the synced-column path) on the real PostgreSQL primary and replica,
each through the whole round trip of tests/support/roundtrip.py with a writer throughout: the old
application version writes the old names until the gate, the new one the new names after it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import asyncpg
import pytest

from orchestrator.domain.errors import SpecError
from orchestrator.domain.plan import Stage
from orchestrator.domain.states import RunStatus
from orchestrator.engine.runner import RetryPolicy
from tests.support.pg import build_service, connect, eventually, fresh_database, settle
from tests.support.roundtrip import (
    OLD,
    MirroredPgWriter,
    RoundTrip,
    Version,
    assert_replica_matches,
    base_schema,
    catalog,
    mirror_difference,
    run_round_trip,
)

pytestmark = pytest.mark.integration

SYNC_OBJECTS = "SELECT count(*) FROM pg_trigger WHERE tgname LIKE '\\_osc%' AND NOT tgisinternal"


def rename(column: str, new_name: str) -> dict[str, Any]:
    return {"rename_column": {"table": "items", "column": column, "new_name": new_name}}


def alter(column: str, **changes: Any) -> dict[str, Any]:
    return {"alter_column": {"table": "items", "column": column, **changes}}


async def columns(conn: asyncpg.Connection) -> dict[str, tuple[str, str, str | None]]:
    rows = await conn.fetch(
        "SELECT column_name, format_type(atttypid, atttypmod) AS type, is_nullable, column_default "
        "FROM information_schema.columns c JOIN pg_attribute a "
        "ON a.attrelid = 'items'::regclass AND a.attname = c.column_name "
        "WHERE table_name = 'items'"
    )
    return {row["column_name"]: (row["type"], row["is_nullable"], row["column_default"]) for row in rows}


async def differing(conn: asyncpg.Connection, left: str, right: str) -> int:
    return int(await conn.fetchval(f"SELECT count(*) FROM items WHERE {left} IS DISTINCT FROM {right}"))


async def no_sync_left(conn: asyncpg.Connection) -> None:
    assert await conn.fetchval(SYNC_OBJECTS) == 0, "a sync trigger survived contract"
    assert await conn.fetchval("SELECT count(*) FROM pg_proc WHERE proname LIKE '\\_osc%'") == 0


# --- rename_column -------------------------------------------------------------------------------


async def test_rename_nullable_column(tmp_path: Path) -> None:
    async def expanded(conn: asyncpg.Connection) -> None:
        assert (await columns(conn))["memo"] == ("text", "YES", None)
        # Copied in expand and kept equal since, while the old version writes `note`.
        assert await differing(conn, "memo", "note") == 0
        assert await conn.fetchval(SYNC_OBJECTS) == 1

    async def contracted(conn: asyncpg.Connection) -> None:
        found = await columns(conn)
        assert "note" not in found and found["memo"] == ("text", "YES", None)
        await no_sync_left(conn)

    await run_round_trip(
        RoundTrip(
            operations=[rename("note", "memo")],
            new_version=Version(columns={"note": "memo"}),
            after_expand=expanded,
            after_contract=contracted,
        ),
        tmp_path,
    )


async def probe(conn: asyncpg.Connection, statements: list[str], query: str) -> list[tuple[Any, ...]]:
    """Run `statements`, read `query`, and roll all of it back: what a writer would see, leaving the
    mirrored data untouched."""
    transaction = conn.transaction()
    await transaction.start()
    try:
        for statement in statements:
            await conn.execute(statement)
        return [tuple(row) for row in await conn.fetch(query)]
    finally:
        await transaction.rollback()


async def index_definitions(conn: asyncpg.Connection) -> dict[str, tuple[str, bool]]:
    rows = await conn.fetch(
        "SELECT c.relname, pg_get_indexdef(i.indexrelid) AS definition, i.indisvalid FROM pg_index i "
        "JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = 'items'::regclass"
    )
    return {row["relname"]: (row["definition"], row["indisvalid"]) for row in rows}


async def checks(conn: asyncpg.Connection) -> dict[str, tuple[str, bool]]:
    rows = await conn.fetch(
        "SELECT conname, contype::text, convalidated FROM pg_constraint WHERE conrelid = 'items'::regclass"
    )
    return {row["conname"]: (row["contype"], row["convalidated"]) for row in rows}


async def test_rename_not_null_column_with_default_and_index(tmp_path: Path) -> None:
    async def expanded(conn: asyncpg.Connection) -> None:
        assert (await columns(conn))["quantity"] == ("integer", "YES", "0")
        assert await differing(conn, "quantity", "qty") == 0
        assert (await checks(conn))["_osc_items_quantity_not_null"] == ("c", True)
        assert (await index_definitions(conn))["_osc_items_qty_idx_new"] == (
            "CREATE INDEX _osc_items_qty_idx_new ON public.items USING btree (quantity)",
            True,
        )
        # Whichever name the writer used wins; an INSERT naming neither takes the shared default.
        rows = await probe(
            conn,
            [
                "INSERT INTO items (id, name, qty) VALUES (-1, 'old', 7)",
                "INSERT INTO items (id, name, quantity) VALUES (-2, 'new', 8)",
                "INSERT INTO items (id, name) VALUES (-3, 'neither')",
                "UPDATE items SET quantity = 9 WHERE id = -1",
                "UPDATE items SET qty = 10 WHERE id = -2",
            ],
            "SELECT id, qty, quantity FROM items WHERE id < 0 ORDER BY id",
        )
        assert rows == [(-3, 0, 0), (-2, 10, 10), (-1, 9, 9)]

    async def contracted(conn: asyncpg.Connection) -> None:
        assert (await columns(conn))["quantity"] == ("integer", "NO", "0")
        assert "qty" not in await columns(conn)
        indexes = await index_definitions(conn)
        assert indexes["items_qty_idx"] == (
            "CREATE INDEX items_qty_idx ON public.items USING btree (quantity)",
            True,
        )
        assert "_osc_items_quantity_not_null" not in await checks(conn)
        await no_sync_left(conn)

    await run_round_trip(
        RoundTrip(
            operations=[rename("qty", "quantity")],
            new_version=Version(columns={"qty": "quantity"}),
            extra_setup="CREATE INDEX items_qty_idx ON items (qty)",
            after_expand=expanded,
            after_contract=contracted,
        ),
        tmp_path,
    )


async def test_rename_unique_column(tmp_path: Path) -> None:
    async def expanded(conn: asyncpg.Connection) -> None:
        # The copy of the constraint's index enforces uniqueness of the new name already.
        with pytest.raises(asyncpg.UniqueViolationError):
            await probe(
                conn, ["INSERT INTO items (name, qty) SELECT 'dup', 1 FROM generate_series(1, 2)"], "SELECT 1"
            )

    async def contracted(conn: asyncpg.Connection) -> None:
        assert (await columns(conn))["title"] == ("text", "NO", None)
        assert (await checks(conn))["items_name_key"] == ("u", True)
        indexes = await index_definitions(conn)
        assert indexes["items_name_key"][0].endswith("(title)")
        await no_sync_left(conn)

    await run_round_trip(
        RoundTrip(
            operations=[rename("name", "title")],
            new_version=Version(columns={"name": "title"}),
            extra_setup="ALTER TABLE items ADD CONSTRAINT items_name_key UNIQUE (name)",
            after_expand=expanded,
            after_contract=contracted,
        ),
        tmp_path,
    )


async def test_rename_column_with_a_volatile_default(tmp_path: Path) -> None:
    """now() is evaluated once per INSERT, on the old column, while both exist; the new column
    takes the default over at contract."""

    async def expanded(conn: asyncpg.Connection) -> None:
        assert (await columns(conn))["made_at"] == ("timestamp with time zone", "YES", None)
        rows = await probe(
            conn,
            ["INSERT INTO items (id, name, made_at) VALUES (-1, 'new', '2001-02-03Z')"],
            "SELECT created_at = made_at, made_at = '2001-02-03Z' FROM items WHERE id = -1",
        )
        assert rows == [(True, True)]

    async def contracted(conn: asyncpg.Connection) -> None:
        assert (await columns(conn))["made_at"] == ("timestamp with time zone", "NO", "now()")
        await no_sync_left(conn)

    await run_round_trip(
        RoundTrip(
            operations=[rename("created_at", "made_at")],
            new_version=Version(columns={"created_at": "made_at"}),
            after_expand=expanded,
            after_contract=contracted,
        ),
        tmp_path,
    )


# --- alter_column: a synced column --------------------------------------------------------------


async def test_alter_type_integer_to_bigint(tmp_path: Path) -> None:
    async def expanded(conn: asyncpg.Connection) -> None:
        assert (await columns(conn))["_osc_qty_new"] == ("bigint", "YES", None)
        # Kept in step from now on; the rows written before are copied in the backfill stage.
        rows = await probe(
            conn,
            [
                "INSERT INTO items (id, name, qty) VALUES (-1, 'x', 5)",
                "UPDATE items SET qty = 6 WHERE id = -1",
            ],
            "SELECT qty, _osc_qty_new FROM items WHERE id = -1",
        )
        assert rows == [(6, 6)]

    async def contracted(conn: asyncpg.Connection) -> None:
        assert (await columns(conn))["qty"] == ("bigint", "NO", "0")
        assert "_osc_qty_new" not in await columns(conn)
        assert not [name for name in await checks(conn) if name.startswith("_osc")]
        await no_sync_left(conn)

    await run_round_trip(
        RoundTrip(
            operations=[alter("qty", type="bigint")],
            after_expand=expanded,
            after_contract=contracted,
        ),
        tmp_path,
    )


async def test_alter_type_text_to_varchar_with_up_and_down(tmp_path: Path) -> None:
    async def contracted(conn: asyncpg.Connection) -> None:
        assert (await columns(conn))["note"] == ("character varying(200)", "YES", None)
        assert (await index_definitions(conn))["items_note_idx"] == (
            "CREATE INDEX items_note_idx ON public.items USING btree (note) WHERE (note IS NOT NULL)",
            True,
        )
        await no_sync_left(conn)

    await run_round_trip(
        RoundTrip(
            operations=[alter("note", type="varchar(200)", up="left(note, 200)", down="note")],
            extra_setup="CREATE INDEX items_note_idx ON items (note) WHERE note IS NOT NULL",
            after_contract=contracted,
        ),
        tmp_path,
    )


async def test_alter_not_null_with_up(tmp_path: Path) -> None:
    async def expanded(conn: asyncpg.Connection) -> None:
        rows = await probe(
            conn,
            ["INSERT INTO items (id, name, note) VALUES (-1, 'x', NULL)"],
            "SELECT note, _osc_note_new FROM items WHERE id = -1",
        )
        assert rows == [(None, "")]

    async def contracted(conn: asyncpg.Connection) -> None:
        assert (await columns(conn))["note"] == ("text", "NO", None)
        assert await conn.fetchval("SELECT count(*) FROM items WHERE note = ''") > 0
        await no_sync_left(conn)

    await run_round_trip(
        RoundTrip(
            operations=[alter("note", nullable=False, up="coalesce(note, '')")],
            # The new version writes no NULL notes; the old one's, and the seeded ones, become ''.
            new_version=Version(null_notes=False, expected={"note": "coalesce(note, '')"}),
            after_expand=expanded,
            after_contract=contracted,
        ),
        tmp_path,
    )


async def test_alter_with_transforming_up(tmp_path: Path) -> None:
    """qty in units becomes qty in cents at contract. Until then both versions write units into the
    live column; a direct write of the new column (cents) is mapped back through `down`, and a later
    write of another column leaves it as written rather than deriving it again through a lossy
    round trip. The new version leaves qty alone, so every row must hold 100 x the mirror's units."""

    async def expanded(conn: asyncpg.Connection) -> None:
        rows = await probe(
            conn,
            [
                "INSERT INTO items (id, name, qty) VALUES (-1, 'x', 5)",
                "UPDATE items SET _osc_qty_new = 4250 WHERE id = -1",
                "UPDATE items SET note = 'touched' WHERE id = -1",
            ],
            "SELECT qty, _osc_qty_new FROM items WHERE id = -1",
        )
        assert rows == [(42, 4250)]

    async def contracted(conn: asyncpg.Connection) -> None:
        assert (await columns(conn))["qty"] == ("integer", "NO", "(0 * 100)")
        await no_sync_left(conn)

    await run_round_trip(
        RoundTrip(
            operations=[alter("qty", up="qty * 100", down="qty / 100")],
            new_version=Version(columns={"qty": None}, expected={"qty": "qty * 100"}),
            extra_setup="ALTER TABLE items_mirror ALTER COLUMN qty SET DEFAULT 0",
            after_expand=expanded,
            after_contract=contracted,
        ),
        tmp_path,
    )


# --- alter_column: in place, catalog-only ---------------------------------------------------------


async def test_alter_set_default(tmp_path: Path) -> None:
    async def expanded(conn: asyncpg.Connection) -> None:
        assert (await columns(conn))["qty"] == ("integer", "NO", "5")

    await run_round_trip(
        RoundTrip(operations=[alter("qty", default=5)], after_expand=expanded, after_contract=expanded),
        tmp_path,
    )


async def test_alter_drop_default(tmp_path: Path) -> None:
    async def expanded(conn: asyncpg.Connection) -> None:
        # The old version may insert relying on the default until the gate: it stays until contract.
        assert (await columns(conn))["qty"] == ("integer", "NO", "0")

    async def contracted(conn: asyncpg.Connection) -> None:
        assert (await columns(conn))["qty"] == ("integer", "NO", None)

    await run_round_trip(
        RoundTrip(
            operations=[alter("qty", drop_default=True)], after_expand=expanded, after_contract=contracted
        ),
        tmp_path,
    )


async def test_alter_nullable(tmp_path: Path) -> None:
    async def expanded(conn: asyncpg.Connection) -> None:
        assert (await columns(conn))["qty"] == ("integer", "YES", "0")

    await run_round_trip(
        RoundTrip(operations=[alter("qty", nullable=True)], after_expand=expanded, after_contract=expanded),
        tmp_path,
    )


async def test_alter_not_null_in_place(tmp_path: Path) -> None:
    async def expanded(conn: asyncpg.Connection) -> None:
        # Nothing before the gate: the old version may still write NULL.
        assert (await columns(conn))["owner_id"] == ("bigint", "YES", None)
        assert not [name for name in await checks(conn) if name.startswith("_osc")]

    async def contracted(conn: asyncpg.Connection) -> None:
        assert (await columns(conn))["owner_id"] == ("bigint", "NO", None)
        assert not [name for name in await checks(conn) if name.startswith("_osc")]

    await run_round_trip(
        RoundTrip(
            operations=[alter("owner_id", nullable=False)], after_expand=expanded, after_contract=contracted
        ),
        tmp_path,
    )


# --- rollbacks from the later stages --------------------------------------------------------------


async def test_rollback_after_the_backfill_stage(tmp_path: Path) -> None:
    """A rename (with an index and NOT NULL), a type change and an in-place NOT NULL, undone from
    the backfill stage while the writer keeps going: the original catalog and data come back."""
    spec = RoundTrip(
        operations=[
            rename("qty", "quantity"),
            alter("note", type="varchar(300)"),
            alter("owner_id", nullable=False),
        ]
    ).spec("rollback-after-backfill")
    async with fresh_database() as pair:
        async with connect(pair.primary) as conn:
            await conn.execute(base_schema(2_000))
            await conn.execute("CREATE INDEX items_qty_idx ON items (qty)")
            original = await catalog(conn)
        writer = MirroredPgWriter(pair.primary)
        await writer.start()
        service = build_service(pair, tmp_path)
        await service.start()
        try:
            run = await service.create(spec)
            await service.start_stage(run.id, Stage.EXPAND)
            await settle(service, run.id, RunStatus.AWAITING_DEPLOY)
            writer.switch(Version(columns={"qty": "quantity"}))
            await service.approve_deploy(run.id)
            await service.start_stage(run.id, Stage.BACKFILL)
            await settle(service, run.id, RunStatus.AWAITING_CONTRACT)
            async with connect(pair.primary) as conn:
                assert await differing(conn, "_osc_note_new", "note") == 0
                assert {name for name in await checks(conn) if name.startswith("_osc")} == {
                    "_osc_items_quantity_not_null",
                    "_osc_items_owner_id_not_null",
                }
            # The pipeline rolls the application back first; the trigger keeps quantity in step.
            writer.switch(OLD)
            await service.rollback(run.id)
            await settle(service, run.id, RunStatus.ROLLED_BACK)
            async with connect(pair.primary) as conn:
                assert await catalog(conn) == original
        finally:
            stats = await writer.stop()
            await service.stop()
        assert stats.errors == [], stats.errors[:5]
        async with connect(pair.primary) as conn:
            table_sum, mirror_sum = await mirror_difference(conn, OLD)
        assert table_sum == mirror_sum
        await assert_replica_matches(pair, "items")


async def test_rollback_after_a_failed_contract_renames_back(tmp_path: Path) -> None:
    """The rename's contract commits, the next one in the same contract cannot get its lock (its
    inverse then finds nothing to rename back), and the rollback renames the first column back: every value the new version wrote is there under the old name,
    with its NOT NULL, default and index, and the old version writes again without an error."""
    spec = RoundTrip(
        operations=[
            rename("qty", "quantity"),
            {"rename_column": {"table": "stuck", "column": "label", "new_name": "title"}},
        ],
        settings={"lock_timeout_ms": 100, "ddl_attempts": 2},
    ).spec("rollback-after-contract")
    async with fresh_database() as pair:
        async with connect(pair.primary) as conn:
            await conn.execute(base_schema(2_000))
            await conn.execute("CREATE INDEX items_qty_idx ON items (qty)")
            await conn.execute("CREATE TABLE stuck (id bigint PRIMARY KEY, label text)")
            original = await catalog(conn)
        writer = MirroredPgWriter(pair.primary)
        await writer.start()
        service = build_service(pair, tmp_path, retry=RetryPolicy(base_seconds=0.05, max_seconds=0.1))
        await service.start()
        try:
            run = await service.create(spec)
            await service.start_stage(run.id, Stage.EXPAND)
            await settle(service, run.id, RunStatus.AWAITING_DEPLOY)
            writer.switch(Version(columns={"qty": "quantity"}))
            await service.approve_deploy(run.id)
            await service.start_stage(run.id, Stage.BACKFILL)
            await settle(service, run.id, RunStatus.AWAITING_CONTRACT)
            async with connect(pair.primary) as blocker, blocker.transaction():
                await blocker.execute("SELECT count(*) FROM stuck")
                await service.start_stage(run.id, Stage.CONTRACT)
                await settle(service, run.id, RunStatus.FAILED)
            async with connect(pair.primary) as conn:
                assert "qty" not in await columns(conn), "the rename's contract should have committed"
            # Past contract neither version can write during the rename back: the application is
            # stopped, rolled back, and started again on the old version.
            stats = await writer.stop()
            await service.rollback(run.id)
            await settle(service, run.id, RunStatus.ROLLED_BACK)
            async with connect(pair.primary) as conn:
                restored = await catalog(conn)
                # Renamed back, the column sits at the end of the table: compare regardless of order.
                assert sorted(restored["columns"]) == sorted(original["columns"])
                assert {**restored, "columns": None} == {**original, "columns": None}
                table_sum, mirror_sum = await mirror_difference(conn, OLD)
                assert table_sum == mirror_sum
            again = MirroredPgWriter(pair.primary)
            await again.start()

            async def busy() -> bool:
                return again.stats.statements > 30

            await eventually(busy, timeout=30, what="the old version writing again")
            after = await again.stop()
        finally:
            await service.stop()
        assert stats.errors == [], stats.errors[:5]
        assert after.errors == [], after.errors[:5]
        await assert_replica_matches(pair, "items")


# --- refused when submitted ------------------------------------------------------------------------


async def test_refused_when_submitted_with_the_field_and_the_reason(tmp_path: Path) -> None:
    """What the live table cannot support is refused before anything is stored: the column's
    dependents read from the catalog, and an `up` that does not compile against the table."""
    async with fresh_database() as pair:
        async with connect(pair.primary) as conn:
            await conn.execute(base_schema(100))
            await conn.execute("CREATE VIEW item_notes AS SELECT id, note FROM items")
        service = build_service(pair, tmp_path)
        await service.start()
        try:
            cases = [
                (
                    rename("note", "memo"),
                    "operations.0.rename_column.column",
                    "these over at contract: view item_notes",
                ),
                (rename("id", "key"), "operations.0.rename_column.column", "primary key"),
                (rename("qty", "name"), "operations.0.rename_column.new_name", "exists already"),
                (alter("owner_id", type="integer", up="ownr_id"), "operations.0.alter_column.up", "ownr_id"),
            ]
            for operation, path, message in cases:
                spec = RoundTrip(operations=[operation]).spec("refused")
                with pytest.raises(SpecError) as caught:
                    await service.create(spec)
                assert any(where == path and message in text for where, text in caught.value.problems), (
                    caught.value.problems
                )
            assert await service.list_runs() == []
        finally:
            await service.stop()


async def test_a_value_too_long_for_the_new_type_is_refused_not_silently_cut(tmp_path: Path) -> None:
    """An explicit cast to varchar(n) truncates; the sync uses assignment, which refuses, as ALTER
    COLUMN TYPE would. A write the new type cannot hold fails rather than losing characters."""
    async with fresh_database() as pair:
        async with connect(pair.primary) as conn:
            await conn.execute(base_schema(200))  # notes 'n1'..'n200': they fit varchar(5)
        service = build_service(pair, tmp_path)
        await service.start()
        try:
            run = await service.create(
                {"name": "note-short", "target": "app", "operations": [alter("note", type="varchar(5)")]}
            )
            await service.start_stage(run.id, Stage.EXPAND)
            await settle(service, run.id, RunStatus.AWAITING_DEPLOY)
            async with connect(pair.primary) as conn:
                await conn.execute("INSERT INTO items (name, note) VALUES ('fits', 'abcde')")
                with pytest.raises(asyncpg.StringDataRightTruncationError):
                    await conn.execute("INSERT INTO items (name, note) VALUES ('too long', 'abcdefgh')")
                with pytest.raises(asyncpg.StringDataRightTruncationError):
                    await conn.execute("UPDATE items SET note = 'abcdefgh' WHERE id = 1")
                assert await conn.fetchval("SELECT note FROM items WHERE id = 1") == "n1"
        finally:
            await service.stop()
