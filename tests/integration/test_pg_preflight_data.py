"""Data preflight on the real PostgreSQL primary: each check refuses a table seeded with bad data,
naming counts and sample keys at the operation's field, and passes once the data is fixed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import asyncpg
import pytest

from adapters.postgres.target import PostgresTarget
from orchestrator.domain.errors import SpecError
from orchestrator.domain.spec import parse_spec
from orchestrator.engine.preflight import (
    LiveSchema,
    preflight_problems,
    preflight_warnings,
    read_live_schema,
)
from orchestrator.engine.preflight_data import data_notes
from tests.support.pg import PgPair, build_service, connect, fresh_database

pytestmark = pytest.mark.integration

SEED = """
    CREATE TABLE orgs (id bigint PRIMARY KEY);
    INSERT INTO orgs SELECT g FROM generate_series(1, 5) AS g;
    CREATE TABLE users (
        id bigint PRIMARY KEY,
        email text,
        age_text text,
        org_id bigint,
        score integer NOT NULL
    );
    INSERT INTO users SELECT g, 'user' || g || '@example.com', (g % 90)::text, 1 + g % 5, g % 100
    FROM generate_series(1, 300) AS g;
    ANALYZE users;
"""


def spec(*operations: dict[str, Any], **settings: Any) -> dict[str, Any]:
    return {"name": "preflight", "target": "app", "settings": settings, "operations": list(operations)}


async def seeded(pair: PgPair, *statements: str) -> None:
    async with connect(pair.primary) as conn:
        await conn.execute(SEED)
        for statement in statements:
            await conn.execute(statement)


async def execute(pair: PgPair, statement: str) -> None:
    async with connect(pair.primary) as conn:
        await conn.execute(statement)


async def judge(
    pair: PgPair, data: dict[str, Any]
) -> tuple[list[tuple[str, str]], list[tuple[str, str]], LiveSchema]:
    parsed = parse_spec(data)
    target = PostgresTarget(pair.primary)
    try:
        live = await read_live_schema(parsed, target)
    finally:
        await target.close()
    return preflight_problems(parsed, live, "app"), preflight_warnings(parsed, live), live


async def refused(pair: PgPair, data: dict[str, Any]) -> dict[str, str]:
    problems, _, _ = await judge(pair, data)
    assert problems, "expected the plan to be refused"
    return dict(problems)


async def accepted(pair: PgPair, data: dict[str, Any]) -> None:
    problems, _, _ = await judge(pair, data)
    assert problems == []


async def test_nulls_refuse_not_null_until_filled() -> None:
    alter = {"alter_column": {"table": "users", "column": "email", "nullable": False}}
    async with fresh_database() as pair:
        await seeded(pair, "UPDATE users SET email = NULL WHERE id IN (7, 8, 42)")
        problems = await refused(pair, spec(alter))
        message = problems["operations.0.alter_column.nullable"]
        assert message.startswith("3 rows of users would be NULL in (email), e.g. id=7 (email=NULL), id=8")
        assert "fill them first" in message
        await execute(pair, "UPDATE users SET email = 'x' || id WHERE email IS NULL")
        await accepted(pair, spec(alter))


async def test_duplicates_refuse_unique_through_the_service(tmp_path: Path) -> None:
    unique = {"add_unique": {"table": "users", "name": "users_email_key", "columns": ["email"]}}
    async with fresh_database() as pair:
        await seeded(
            pair,
            "UPDATE users SET email = 'a@x' WHERE id IN (1, 2, 3)",
            "UPDATE users SET email = 'b@x' WHERE id IN (4, 5)",
            "UPDATE users SET email = NULL WHERE id IN (6, 7)",  # NULLs never collide
        )
        service = build_service(pair, tmp_path)
        await service.start()
        try:
            with pytest.raises(SpecError) as caught:
                await service.create(spec(unique))
            problems = dict(caught.value.problems)
            assert problems["operations.0.add_unique.columns"] == (
                "2 duplicate groups in users, e.g. (email)=('a@x') x3, (email)=('b@x') x2; deduplicate first"
            )
            await execute(pair, "UPDATE users SET email = 'user' || id || '@example.com' WHERE id <= 5")
            run = await service.create(spec(unique))
            assert run.id
        finally:
            await service.stop()


async def test_duplicates_under_a_unique_expression_index_respect_its_predicate() -> None:
    index = {
        "create_index": {
            "table": "users",
            "name": "users_email_lower_key",
            "expressions": ["lower(email)"],
            "unique": True,
            "where": "score > 10",
        }
    }
    async with fresh_database() as pair:
        await seeded(
            pair,
            "UPDATE users SET email = 'Dup@X', score = 50 WHERE id = 20",
            "UPDATE users SET email = 'dup@x', score = 60 WHERE id = 21",
            "UPDATE users SET email = 'other@x', score = 1 WHERE id IN (22, 23)",  # outside the index
        )
        problems = await refused(pair, spec(index))
        assert problems["operations.0.create_index.expressions"].startswith(
            "1 duplicate group in users, e.g. (lower(email))=('dup@x') x2"
        )
        await execute(pair, "UPDATE users SET score = 5 WHERE id = 21")
        await accepted(pair, spec(index))


async def test_orphans_refuse_a_foreign_key_through_the_service(tmp_path: Path) -> None:
    foreign_key = {
        "add_foreign_key": {
            "table": "users",
            "name": "users_org_fk",
            "columns": ["org_id"],
            "references": {"table": "orgs", "columns": ["id"]},
        }
    }
    async with fresh_database() as pair:
        await seeded(
            pair,
            "UPDATE users SET org_id = 99 WHERE id IN (10, 11)",
            "UPDATE users SET org_id = NULL WHERE id = 12",
        )
        service = build_service(pair, tmp_path)
        await service.start()
        try:
            with pytest.raises(SpecError) as caught:
                await service.create(spec(foreign_key))
            message = dict(caught.value.problems)["operations.0.add_foreign_key.columns"]
            assert message.startswith(
                "2 rows of users with (org_id) have no match in orgs (id), e.g. id=10 (org_id='99'), id=11"
            )
            await execute(pair, "INSERT INTO orgs VALUES (99)")
            assert (await service.create(spec(foreign_key))).id
        finally:
            await service.stop()


async def test_values_that_fail_a_type_change_are_counted_with_samples() -> None:
    to_integer = {"alter_column": {"table": "users", "column": "age_text", "type": "integer"}}
    shorter = {"alter_column": {"table": "users", "column": "age_text", "type": "varchar(2)"}}
    async with fresh_database() as pair:
        await seeded(pair, "UPDATE users SET age_text = 'n/a' WHERE id IN (5, 250)")
        problems = await refused(pair, spec(to_integer))
        message = problems["operations.0.alter_column.type"]
        assert message.startswith(
            "2 rows of users fail the conversion of (age_text) to integer, e.g. id=5 (age_text='n/a'), "
            "id=250 (age_text='n/a')"
        )
        assert 'invalid input syntax for type integer: "n/a"' in message
        # The backfill assigns: a value too long for varchar(2) fails there, where a cast would cut it.
        assert "value too long" in (await refused(pair, spec(shorter)))["operations.0.alter_column.type"]
        # An `up` expression that converts them passes as it is.
        up = {"alter_column": {**to_integer["alter_column"], "up": "nullif(age_text, 'n/a')::integer"}}
        await accepted(pair, spec(up))
        await execute(pair, "UPDATE users SET age_text = '0' WHERE age_text = 'n/a'")
        await accepted(pair, spec(to_integer))
        await accepted(pair, spec(shorter))


async def test_rows_failing_a_check_refuse_it_until_corrected(tmp_path: Path) -> None:
    check = {"add_check": {"table": "users", "name": "users_score_small", "expression": "score < 90"}}
    async with fresh_database() as pair:
        await seeded(pair)
        service = build_service(pair, tmp_path)
        await service.start()
        try:
            with pytest.raises(SpecError) as caught:
                await service.create(spec(check))
            message = dict(caught.value.problems)["operations.0.add_check.expression"]
            # score = g % 100: ten values of 90..99, three rows each among 300.
            assert message.startswith("30 rows of users fail CHECK (score < 90), e.g. id=90 (score='90')")
            await execute(pair, "UPDATE users SET score = 0 WHERE score >= 90")
            assert (await service.create(spec(check))).id
        finally:
            await service.stop()


async def test_a_not_null_column_filled_with_null_is_refused() -> None:
    column = {
        "add_column": {
            "table": "users",
            "column": {"name": "email_lower", "type": "text", "nullable": False, "backfill": "lower(email)"},
        }
    }
    async with fresh_database() as pair:
        await seeded(pair, "UPDATE users SET email = NULL WHERE id = 3")
        message = (await refused(pair, spec(column)))["operations.0.add_column.column.backfill"]
        assert message.startswith("1 row of users would be NULL in (lower(email)), e.g. id=3 (email=NULL)")
        await execute(pair, "UPDATE users SET email = 'three@x' WHERE id = 3")
        await accepted(pair, spec(column))


async def test_an_old_transaction_holding_a_lock_blocks_unless_overridden() -> None:
    check = {"add_check": {"table": "users", "name": "users_score_small", "expression": "score < 1000"}}
    strict = {"long_transaction_seconds": 0}
    async with fresh_database() as pair:
        await seeded(pair)
        holder = await asyncpg.connect(pair.primary, server_settings={"application_name": "report-job"})
        try:
            transaction = holder.transaction()
            await transaction.start()
            await holder.fetchval("SELECT count(*) FROM users")
            problems = await refused(pair, spec(check, preflight=strict))
            message = problems["operations.0.add_check.table"]
            assert f"pid {holder.get_server_pid()} (report-job) idle in transaction" in message
            assert "holds a lock on users" in message and "override" in message

            overridden, warnings, _ = await judge(
                pair, spec(check, preflight={**strict, "override": ["blocking_sessions"]})
            )
            assert overridden == []
            assert any("overridden by settings.preflight.override" in text for _, text in warnings)
            await transaction.rollback()
        finally:
            await holder.close()
        await accepted(pair, spec(check, preflight=strict))


async def test_a_snapshot_blocks_a_concurrent_index_build_only() -> None:
    index = {"create_index": {"table": "users", "name": "users_email_idx", "columns": ["email"]}}
    check = {"add_check": {"table": "users", "name": "users_score_small", "expression": "score < 1000"}}
    strict = {"long_transaction_seconds": 0}
    async with fresh_database() as pair:
        await seeded(pair)
        reader = await asyncpg.connect(pair.primary)
        try:
            transaction = reader.transaction(isolation="repeatable_read")
            await transaction.start()
            await reader.fetchval("SELECT count(*) FROM orgs")  # a snapshot, and no lock on users
            problems = await refused(pair, spec(index, preflight=strict))
            assert "concurrent index build waits" in problems["operations.0.create_index.table"]
            unblocked, warnings, _ = await judge(pair, spec(check, preflight=strict))
            assert unblocked == []
            assert [path for path, _ in warnings] == ["settings.preflight.long_transaction_seconds"]
            await transaction.rollback()
        finally:
            await reader.close()
        await accepted(pair, spec(index, preflight=strict))


async def test_sizes_and_replicas_are_reported() -> None:
    index = {"create_index": {"table": "users", "name": "users_email_idx", "columns": ["email"]}}
    async with fresh_database() as pair:
        await seeded(pair)
        _, _, live = await judge(pair, spec(index))
    assert live.data is not None
    assert live.data.sizes["users"].estimated_rows == 300
    assert live.data.sizes["users"].total_bytes > 0
    assert live.data.replicas, "the test primary streams to a replica"
    notes = data_notes(live.data)
    assert any(note.startswith("table users: ") and "about 300 rows" in note for note in notes)
    assert any(note.startswith("replica ") and "(streaming)" in note for note in notes)


async def test_warnings_and_notes_travel_with_the_created_event(tmp_path: Path) -> None:
    check = {"add_check": {"table": "users", "name": "users_score_small", "expression": "score < 1000"}}
    async with fresh_database() as pair:
        await seeded(pair)
        reader = await asyncpg.connect(pair.primary)
        service = build_service(pair, tmp_path)
        await service.start()
        try:
            transaction = reader.transaction(isolation="repeatable_read")
            await transaction.start()
            await reader.fetchval("SELECT count(*) FROM orgs")  # old, but blocks nothing add_check does
            run = await service.create(spec(check, preflight={"long_transaction_seconds": 0}))
            await transaction.rollback()
            [created] = [
                event for event in await service.list_events(run.id) if event.type.value == "created"
            ]
        finally:
            await service.stop()
            await reader.close()
    assert "1 preflight warning" in created.message
    preflight = created.data["preflight"]
    assert [w["path"] for w in preflight["warnings"]] == ["settings.preflight.long_transaction_seconds"]
    assert any(note.startswith("table users: ") for note in preflight["notes"])
