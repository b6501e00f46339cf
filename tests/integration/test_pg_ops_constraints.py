"""create_index, drop_index, add_unique, add_foreign_key and add_check on the real PostgreSQL primary
and replica, each through the round trip of tests/support/roundtrip.py with a writer throughout; and
the schema preflight refusing what cannot run, at the field to fix."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import asyncpg
import pytest

from orchestrator.domain.errors import SpecError
from orchestrator.domain.plan import Stage
from orchestrator.domain.states import RunStatus
from tests.support.pg import build_service, connect, fresh_database, settle
from tests.support.roundtrip import (
    OLD,
    MirroredPgWriter,
    RoundTrip,
    assert_replica_matches,
    base_schema,
    catalog,
    mirror_difference,
    run_round_trip,
)

pytestmark = pytest.mark.integration


async def index_definition(conn: asyncpg.Connection, name: str) -> tuple[str, bool] | None:
    row = await conn.fetchrow(
        "SELECT pg_get_indexdef(indexrelid) AS definition, indisvalid FROM pg_index "
        "WHERE indexrelid = to_regclass($1)",
        name,
    )
    return None if row is None else (row["definition"], row["indisvalid"])


async def constraint_state(conn: asyncpg.Connection, name: str) -> tuple[str, bool] | None:
    row = await conn.fetchrow(
        "SELECT contype::text AS kind, convalidated FROM pg_constraint WHERE conrelid = 'items'::regclass "
        "AND conname = $1",
        name,
    )
    return None if row is None else (row["kind"], row["convalidated"])


@pytest.mark.parametrize(
    ("index", "definition"),
    [
        (
            {"columns": ["name", "qty"], "unique": True},
            "CREATE UNIQUE INDEX items_new_idx ON public.items USING btree (name, qty)",
        ),
        (
            {"columns": ["owner_id"], "where": "note IS NOT NULL"},
            "CREATE INDEX items_new_idx ON public.items USING btree (owner_id) WHERE (note IS NOT NULL)",
        ),
        (
            {"columns": ["owner_id"], "expressions": ["lower(name)"]},
            "CREATE INDEX items_new_idx ON public.items USING btree (owner_id, lower(name))",
        ),
        (
            {"columns": ["name"], "method": "hash"},
            "CREATE INDEX items_new_idx ON public.items USING hash (name)",
        ),
        (
            {"expressions": ["to_tsvector('simple', name)"], "method": "gin"},
            "CREATE INDEX items_new_idx ON public.items USING gin (to_tsvector('simple'::regconfig, name))",
        ),
    ],
    ids=["unique", "partial", "expression", "hash", "gin-expression"],
)
async def test_create_index(tmp_path: Path, index: dict[str, Any], definition: str) -> None:
    async def built(conn: asyncpg.Connection) -> None:
        assert await index_definition(conn, "items_new_idx") == (definition, True)

    await run_round_trip(
        RoundTrip(
            operations=[{"create_index": {"table": "items", "name": "items_new_idx", **index}}],
            after_expand=built,
            after_contract=built,
        ),
        tmp_path,
    )


async def test_drop_index(tmp_path: Path) -> None:
    async def kept(conn: asyncpg.Connection) -> None:
        assert await index_definition(conn, "items_note_idx") is not None  # dropped only in contract

    async def dropped(conn: asyncpg.Connection) -> None:
        assert await index_definition(conn, "items_note_idx") is None

    await run_round_trip(
        RoundTrip(
            operations=[
                {
                    "drop_index": {
                        "table": "items",
                        "name": "items_note_idx",
                        "expressions": ["lower(note)"],
                        "where": "note IS NOT NULL",
                    }
                }
            ],
            extra_setup="CREATE INDEX items_note_idx ON items (lower(note)) WHERE note IS NOT NULL",
            after_expand=kept,
            after_contract=dropped,
        ),
        tmp_path,
    )


async def test_add_unique(tmp_path: Path) -> None:
    async def expanded(conn: asyncpg.Connection) -> None:
        assert await constraint_state(conn, "items_name_qty_key") == ("u", True)
        definition = await index_definition(conn, "items_name_qty_key")
        assert definition == (
            "CREATE UNIQUE INDEX items_name_qty_key ON public.items USING btree (name, qty)",
            True,
        )

    await run_round_trip(
        RoundTrip(
            operations=[
                {"add_unique": {"table": "items", "name": "items_name_qty_key", "columns": ["name", "qty"]}}
            ],
            after_expand=expanded,
            after_contract=expanded,
        ),
        tmp_path,
    )


FOREIGN_KEY = {
    "add_foreign_key": {
        "table": "items",
        "name": "items_owner_fkey",
        "columns": ["owner_id"],
        "references": {"table": "owners", "on_delete": "cascade"},
    }
}


@pytest.mark.parametrize("indexed", [False, True], ids=["builds-index", "index-exists"])
async def test_add_foreign_key(tmp_path: Path, indexed: bool) -> None:
    async def expanded(conn: asyncpg.Connection) -> None:
        assert await constraint_state(conn, "items_owner_fkey") == ("f", False)  # NOT VALID until backfill
        built = await index_definition(conn, "items_owner_id_idx")
        assert (built is None) == indexed, "an index leading with owner_id exists: none is built"
        if built is not None:
            assert built[1] is True

    async def contracted(conn: asyncpg.Connection) -> None:
        assert await constraint_state(conn, "items_owner_fkey") == ("f", True)
        definition = await conn.fetchval(
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = 'items_owner_fkey'"
        )
        assert definition == "FOREIGN KEY (owner_id) REFERENCES owners(id) ON DELETE CASCADE"

    await run_round_trip(
        RoundTrip(
            operations=[FOREIGN_KEY],
            extra_setup="CREATE INDEX items_owner_created_idx ON items (owner_id, created_at)"
            if indexed
            else "",
            after_expand=expanded,
            after_contract=contracted,
        ),
        tmp_path,
    )


async def test_add_check(tmp_path: Path) -> None:
    async def expanded(conn: asyncpg.Connection) -> None:
        assert await constraint_state(conn, "items_qty_check") == ("c", False)

    async def contracted(conn: asyncpg.Connection) -> None:
        assert await constraint_state(conn, "items_qty_check") == ("c", True)

    await run_round_trip(
        RoundTrip(
            operations=[
                {"add_check": {"table": "items", "name": "items_qty_check", "expression": "qty >= 0"}}
            ],
            after_expand=expanded,
            after_contract=contracted,
        ),
        tmp_path,
    )


PREFLIGHT_SETUP = """
    CREATE INDEX items_note_idx ON items (note) WHERE note IS NOT NULL;
    ALTER TABLE items ADD CONSTRAINT items_name_key UNIQUE (name);
    ALTER TABLE items ADD CONSTRAINT items_qty_check CHECK (qty >= 0);
    CREATE TABLE labels (code text, label text);
"""

REFUSED: list[tuple[dict[str, Any], str, str]] = [
    (
        {"drop_index": {"table": "items", "name": "items_note_idx", "columns": ["note"]}},
        "operations.0.drop_index.columns",
        "where note IS NOT NULL",
    ),
    (
        {"drop_index": {"table": "items", "name": "items_gone_idx"}},
        "operations.0.drop_index.name",
        "no index",
    ),
    (
        {"drop_index": {"table": "items", "name": "items_name_key", "columns": ["name"], "unique": True}},
        "operations.0.drop_index.name",
        "enforces constraint items_name_key",
    ),
    (
        {"add_unique": {"table": "items", "name": "items_note_idx", "columns": ["note"]}},
        "operations.0.add_unique.name",
        "already exists",
    ),
    (
        {"add_unique": {"table": "items", "name": "items_x_key", "columns": ["nope"]}},
        "operations.0.add_unique.columns.0",
        "does not exist",
    ),
    (
        {"add_check": {"table": "items", "name": "items_qty_check", "expression": "qty < 1000"}},
        "operations.0.add_check.name",
        "already has a constraint",
    ),
    (
        {"add_check": {"table": "items", "name": "items_x_check", "expression": "weight > 0"}},
        "operations.0.add_check.expression",
        "weight",
    ),
    (
        {
            "add_foreign_key": {
                "table": "items",
                "name": "items_label_fkey",
                "columns": ["note"],
                "references": {"table": "labels", "columns": ["code"]},
            }
        },
        "operations.0.add_foreign_key.references.columns",
        "neither its primary key nor unique",
    ),
    (
        {
            "add_foreign_key": {
                "table": "items",
                "name": "items_x_fkey",
                "columns": ["owner_id"],
                "references": {"table": "nowhere"},
            }
        },
        "operations.0.add_foreign_key.references.table",
        "does not exist",
    ),
    (
        {"create_index": {"table": "items", "name": "items_x_idx", "expressions": ["lower(nickname)"]}},
        "operations.0.create_index.expressions.0",
        "nickname",
    ),
    (
        {
            "add_column": {
                "table": "items",
                "column": {"name": "label", "type": "text", "backfill": "upper(nick)"},
            }
        },
        "operations.0.add_column.column.backfill",
        "nick",
    ),
]


async def test_preflight_refuses_at_the_field_to_fix(tmp_path: Path) -> None:
    async with fresh_database() as pair:
        async with connect(pair.primary) as conn:
            await conn.execute(base_schema(50))
            await conn.execute(PREFLIGHT_SETUP)
        service = build_service(pair, tmp_path)
        await service.start()
        try:
            for operation, path, fragment in REFUSED:
                with pytest.raises(SpecError) as caught:
                    await service.create({"name": "refused", "target": "app", "operations": [operation]})
                paths = {problem_path: message for problem_path, message in caught.value.problems}
                assert path in paths, (operation, caught.value.problems)
                assert fragment in paths[path], (operation, paths[path])
            # And what is right passes: the described index as it is, a free name, a unique target.
            accepted = [
                {
                    "drop_index": {
                        "table": "items",
                        "name": "items_note_idx",
                        "columns": ["note"],
                        "where": "note IS NOT NULL",
                    }
                },
                {"add_unique": {"table": "items", "name": "items_note_key", "columns": ["note"]}},
                {"add_check": {"table": "items", "name": "items_qty_max", "expression": "qty < 100000"}},
                FOREIGN_KEY,
            ]
            run = await service.create({"name": "accepted", "target": "app", "operations": accepted})
            assert run.plan.steps()
        finally:
            await service.stop()


async def test_rollback_after_the_backfill_stage(tmp_path: Path) -> None:
    """Validated constraints and built indexes are all undone from the last stage before contract."""
    spec = RoundTrip(
        operations=[
            {"add_unique": {"table": "items", "name": "items_name_qty_key", "columns": ["name", "qty"]}},
            FOREIGN_KEY,
            {"add_check": {"table": "items", "name": "items_qty_check", "expression": "qty >= 0"}},
            {"create_index": {"table": "items", "name": "items_lower_idx", "expressions": ["lower(name)"]}},
        ]
    ).spec("constraints-rollback")
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
            await service.approve_deploy(run.id)
            await service.start_stage(run.id, Stage.BACKFILL)
            await settle(service, run.id, RunStatus.AWAITING_CONTRACT)
            async with connect(pair.primary) as conn:
                assert await constraint_state(conn, "items_owner_fkey") == ("f", True)
                assert await constraint_state(conn, "items_qty_check") == ("c", True)
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
