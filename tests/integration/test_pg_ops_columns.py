"""add_column in every variant and drop_column with its archive, on the real PostgreSQL primary and
replica, each through the whole round trip of tests/support/roundtrip.py with a writer throughout;
plus rollbacks from the later stages (after backfill, after a contract that failed part-way)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import asyncpg
import pytest

from orchestrator.domain.plan import Stage
from orchestrator.domain.states import RunStatus
from orchestrator.engine.runner import RetryPolicy
from tests.support.pg import build_service, connect, fresh_database, settle
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


def add(column: dict[str, Any]) -> dict[str, Any]:
    return {"add_column": {"table": "items", "column": column}}


async def column_state(conn: asyncpg.Connection, column: str) -> tuple[str, str | None]:
    row = await conn.fetchrow(
        "SELECT is_nullable, column_default FROM information_schema.columns "
        "WHERE table_name = 'items' AND column_name = $1",
        column,
    )
    assert row is not None, f"items.{column} does not exist"
    return row["is_nullable"], row["column_default"]


async def constraints(conn: asyncpg.Connection) -> dict[str, bool]:
    rows = await conn.fetch(
        "SELECT conname, convalidated FROM pg_constraint WHERE conrelid = 'items'::regclass"
    )
    return {row["conname"]: row["convalidated"] for row in rows}


async def count(conn: asyncpg.Connection, where: str) -> int:
    return int(await conn.fetchval(f"SELECT count(*) FROM items WHERE {where}"))


# --- add_column ----------------------------------------------------------------------------------


async def test_nullable(tmp_path: Path) -> None:
    async def expanded(conn: asyncpg.Connection) -> None:
        assert await column_state(conn, "band") == ("YES", None)

    await run_round_trip(
        RoundTrip(
            operations=[add({"name": "band", "type": "text"})],
            new_version=Version(insert_extra={"band": lambda values: values["name"].upper()}),
            after_expand=expanded,
            after_contract=expanded,
        ),
        tmp_path,
    )


@pytest.mark.parametrize("nullable", [True, False], ids=["nullable", "not-null"])
async def test_constant_default(tmp_path: Path, nullable: bool) -> None:
    async def expanded(conn: asyncpg.Connection) -> None:
        # Catalog-only: every existing row reads the default at once, without a backfill.
        assert await column_state(conn, "score") == ("YES" if nullable else "NO", "7")
        assert await count(conn, "score IS DISTINCT FROM 7") == 0

    await run_round_trip(
        RoundTrip(
            operations=[add({"name": "score", "type": "integer", "default": 7, "nullable": nullable})],
            after_expand=expanded,
            after_contract=expanded,
        ),
        tmp_path,
    )


async def test_volatile_default(tmp_path: Path) -> None:
    async def expanded(conn: asyncpg.Connection) -> None:
        assert await column_state(conn, "seen_at") == ("YES", "now()")
        assert await count(conn, "seen_at IS NULL") > 0  # existing rows wait for the backfill

    async def contracted(conn: asyncpg.Connection) -> None:
        assert await count(conn, "seen_at IS NULL") == 0

    await run_round_trip(
        RoundTrip(
            operations=[add({"name": "seen_at", "type": "timestamptz", "default_expression": "now()"})],
            after_expand=expanded,
            after_contract=contracted,
        ),
        tmp_path,
    )


UUID_KEY = add(
    {
        "name": "code",
        "type": "uuid",
        "nullable": False,
        "default_expression": "gen_random_uuid()",
        "unique": True,
    }
)


async def test_not_null_unique_volatile_default(tmp_path: Path) -> None:
    async def expanded(conn: asyncpg.Connection) -> None:
        assert await column_state(conn, "code") == ("YES", "gen_random_uuid()")
        assert await constraints(conn) == {"items_pkey": True, "items_code_key": True}

    async def contracted(conn: asyncpg.Connection) -> None:
        assert await column_state(conn, "code") == ("NO", "gen_random_uuid()")
        # The temporary CHECK that proved NOT NULL is gone; the unique constraint stays.
        assert await constraints(conn) == {"items_pkey": True, "items_code_key": True}
        # One statement, one snapshot: the writer keeps inserting between two separate counts.
        rows, codes = await conn.fetchrow("SELECT count(*), count(DISTINCT code) FROM items")
        assert rows == codes

    await run_round_trip(
        RoundTrip(operations=[UUID_KEY], after_expand=expanded, after_contract=contracted), tmp_path
    )


async def test_not_null_from_a_backfill(tmp_path: Path) -> None:
    async def expanded(conn: asyncpg.Connection) -> None:
        # The old application version does not write it: nullable until the backfill proved it.
        assert await column_state(conn, "band") == ("YES", None)

    async def contracted(conn: asyncpg.Connection) -> None:
        assert await column_state(conn, "band") == ("NO", None)
        assert await count(conn, "band IS DISTINCT FROM upper(name)") == 0
        assert await constraints(conn) == {"items_pkey": True}

    await run_round_trip(
        RoundTrip(
            operations=[add({"name": "band", "type": "text", "nullable": False, "backfill": "upper(name)"})],
            new_version=Version(insert_extra={"band": lambda values: values["name"].upper()}),
            after_expand=expanded,
            after_contract=contracted,
        ),
        tmp_path,
    )


async def test_foreign_key(tmp_path: Path) -> None:
    async def expanded(conn: asyncpg.Connection) -> None:
        assert await constraints(conn) == {"items_pkey": True, "items_buyer_id_fkey": False}
        valid = await conn.fetchval(
            "SELECT indisvalid FROM pg_index WHERE indexrelid = 'items_buyer_id_idx'::regclass"
        )
        assert valid is True

    async def contracted(conn: asyncpg.Connection) -> None:
        assert await constraints(conn) == {"items_pkey": True, "items_buyer_id_fkey": True}
        assert await count(conn, "buyer_id IS DISTINCT FROM owner_id") == 0

    await run_round_trip(
        RoundTrip(
            operations=[
                add(
                    {
                        "name": "buyer_id",
                        "type": "bigint",
                        "backfill": "owner_id",
                        "references": {"table": "owners", "on_delete": "set_null"},
                    }
                )
            ],
            new_version=Version(insert_extra={"buyer_id": lambda values: values["owner_id"]}),
            after_expand=expanded,
            after_contract=contracted,
        ),
        tmp_path,
    )


async def test_rollback_after_the_backfill_stage(tmp_path: Path) -> None:
    """Every step of the NOT NULL, unique and foreign-key variants is undone from their last stage,
    while the writer keeps going."""
    spec = RoundTrip(
        operations=[
            add({**UUID_KEY["add_column"]["column"], "references": None}),
            add(
                {
                    "name": "buyer_id",
                    "type": "bigint",
                    "backfill": "owner_id",
                    "references": {"table": "owners"},
                }
            ),
        ]
    ).spec("rollback-after-backfill")
    new = Version(insert_extra={"buyer_id": lambda values: values["owner_id"]})
    async with fresh_database() as pair:
        async with connect(pair.primary) as conn:
            await conn.execute(base_schema(2_000))
            original = await catalog(conn)
        writer = MirroredPgWriter(pair.primary)
        await writer.start()
        service = build_service(pair, tmp_path)
        await service.start()
        try:
            run = await service.create(spec)
            await service.start_stage(run.id, Stage.EXPAND)
            await settle(service, run.id, RunStatus.AWAITING_DEPLOY)
            writer.switch(new)
            await service.approve_deploy(run.id)
            await service.start_stage(run.id, Stage.BACKFILL)
            await settle(service, run.id, RunStatus.AWAITING_CONTRACT)
            async with connect(pair.primary) as conn:
                assert (await column_state(conn, "code"))[0] == "NO"
                assert await constraints(conn) == {
                    "items_pkey": True,
                    "items_code_key": True,
                    "items_buyer_id_fkey": True,
                }
            # The pipeline rolls the application back first: the old version omits both columns,
            # which the default (code) and NULL (buyer_id) cover.
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


# --- drop_column ---------------------------------------------------------------------------------

ARCHIVE = "_osc_archive_items_note"


async def test_drop_column_archived(tmp_path: Path) -> None:
    async def contracted(conn: asyncpg.Connection) -> None:
        assert (
            await conn.fetchval(
                "SELECT count(*) FROM pg_attribute WHERE attrelid = 'items'::regclass AND attname = 'note'"
            )
            == 0
        )
        archived = await conn.fetchval(f"SELECT count(*) FROM {ARCHIVE}")
        assert archived > 0
        # The new application version never touched note: the archive holds what the mirror holds.
        differing = await conn.fetchval(
            f"SELECT count(*) FROM {ARCHIVE} AS a JOIN items_mirror AS m USING (id) WHERE a.note IS DISTINCT FROM m.note"
        )
        assert differing == 0

    await run_round_trip(
        RoundTrip(
            operations=[{"drop_column": {"table": "items", "column": "note", "archive": True}}],
            new_version=Version(columns={"note": None}),
            after_contract=contracted,
        ),
        tmp_path,
    )


EXTRA_TABLES = """
    CREATE TABLE extras (
        id bigint PRIMARY KEY,
        flag text NOT NULL,
        stamp timestamptz NOT NULL DEFAULT now(),
        level integer NOT NULL DEFAULT 3
    );
    INSERT INTO extras SELECT g, 'f' || g, now() - g * interval '1 minute', g % 5 FROM generate_series(1, 300) AS g;
    CREATE TABLE stuck (id bigint PRIMARY KEY, label text);
    INSERT INTO stuck SELECT g, 'l' || g FROM generate_series(1, 10) AS g;
    CREATE INDEX items_qty_idx ON items (qty) WHERE qty > 10;
"""


def sorted_columns(shape: dict[str, Any]) -> dict[str, Any]:
    """A re-added column comes last in the column order, which nothing can restore: compare sets."""
    return {**shape, "columns": sorted(shape["columns"])}


async def checksum(conn: asyncpg.Connection, table: str, columns: str) -> str:
    return str(
        await conn.fetchval(
            f"SELECT md5(string_agg(concat_ws('|', {columns}), ',' ORDER BY id)) FROM {table}"
        )
    )


async def test_rollback_after_a_failed_contract_restores_dropped_columns(tmp_path: Path) -> None:
    """A contract that fails part-way is rolled back: archived columns come back with their values,
    type, default and NOT NULL (including a NOT NULL one with no constant default), a described
    index is rebuilt, and no archive is left behind."""
    spec = RoundTrip(
        operations=[
            {
                "drop_index": {
                    "table": "items",
                    "name": "items_qty_idx",
                    "columns": ["qty"],
                    "where": "qty > 10",
                }
            },
            {"drop_column": {"table": "items", "column": "note", "archive": True}},
            {"drop_column": {"table": "extras", "column": "flag", "archive": True}},
            {"drop_column": {"table": "extras", "column": "stamp", "archive": True}},
            {"drop_column": {"table": "extras", "column": "level", "archive": True}},
            {"drop_column": {"table": "stuck", "column": "label", "archive": True}},
        ],
        settings={"lock_timeout_ms": 100, "ddl_attempts": 2},
    ).spec("rollback-after-contract")
    async with fresh_database() as pair:
        async with connect(pair.primary) as conn:
            await conn.execute(base_schema(2_000))
            await conn.execute(EXTRA_TABLES)
            original = await catalog(conn)
            extras_sum = await checksum(conn, "extras", "id, flag, stamp, level")
        writer = MirroredPgWriter(pair.primary)
        await writer.start()
        service = build_service(pair, tmp_path, retry=RetryPolicy(base_seconds=0.05, max_seconds=0.1))
        await service.start()
        try:
            run = await service.create(spec)
            await service.start_stage(run.id, Stage.EXPAND)
            await settle(service, run.id, RunStatus.AWAITING_DEPLOY)
            writer.switch(Version(columns={"note": None}))
            await service.approve_deploy(run.id)
            await service.start_stage(run.id, Stage.BACKFILL)
            await settle(service, run.id, RunStatus.AWAITING_CONTRACT)
            # A forgotten transaction holds `stuck`: the last drop cannot get its lock.
            async with connect(pair.primary) as blocker, blocker.transaction():
                await blocker.execute("SELECT count(*) FROM stuck")
                await service.start_stage(run.id, Stage.CONTRACT)
                failed = await settle(service, run.id, RunStatus.FAILED)
            assert "stuck" in str(failed.error) or "label" in str(failed.error), failed.error
            async with connect(pair.primary) as conn:
                dropped = await conn.fetchval(
                    "SELECT count(*) FROM pg_attribute WHERE attrelid IN ('items'::regclass, 'extras'::regclass) "
                    "AND attname IN ('note', 'flag', 'stamp', 'level') AND NOT attisdropped"
                )
                assert dropped == 0, "the contract should have dropped the columns before it failed"
            await service.rollback(run.id)
            await settle(service, run.id, RunStatus.ROLLED_BACK)
            writer.switch(OLD)
            async with connect(pair.primary) as conn:
                restored = await catalog(conn)
                assert sorted_columns(restored) == sorted_columns(original)
                assert await checksum(conn, "extras", "id, flag, stamp, level") == extras_sum
        finally:
            stats = await writer.stop()
            await service.stop()
        assert stats.errors == [], stats.errors[:5]
        async with connect(pair.primary) as conn:
            table_sum, mirror_sum = await mirror_difference(conn, OLD)
        assert table_sum == mirror_sum, "the restored note differs from what the application wrote"
        await assert_replica_matches(pair, "items")
