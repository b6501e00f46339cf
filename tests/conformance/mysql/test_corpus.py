"""Every case of the MySQL conformance corpus (tests/conformance/mysql/cases/) through every available
strategy: the server's own online DDL (direct), pt-online-schema-change and gh-ost (when GH_OST_BIN
names a binary), each on a fresh database of the real MariaDB primary with a writer changing the table
throughout; and what strategy auto plans for the case. See corpus.py for the case format."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from adapters.mysql.copy_state import stop_all
from tests.conformance.mysql.corpus import TOOLS, Case, load_corpus
from tests.conformance.mysql.harness import (
    MirroredDml,
    auto_choice,
    build_service,
    checksum,
    columns,
    leftovers,
    migrate,
    mirror_of,
    prepare,
    shape,
    stored_columns,
)
from tests.support.mysql import fresh_database, query, wait_for_replica

pytestmark = pytest.mark.integration

GHOST = os.environ.get("GH_OST_BIN") or None
CASES = load_corpus()


@pytest.fixture(autouse=True)
async def no_tool_outlives_its_test() -> AsyncIterator[None]:
    yield
    await stop_all(grace_seconds=5)


def _params() -> list[object]:
    params: list[object] = []
    for case in CASES:
        for tool in TOOLS:
            marks = []
            if tool == "gh_ost" and GHOST is None:
                marks.append(
                    pytest.mark.skip(
                        reason="GH_OST_BIN is not set: the gh-ost column of the corpus needs a binary"
                    )
                )
            params.append(pytest.param(case, tool, id=f"{case.name}-{tool}", marks=marks))
    return params


async def compared(dsn: str, case: Case) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """Checksums of the table and its mirror over the mirror's columns the table still has (renamed
    ones under their new names), the ones the change rightly replaces left out."""
    mirror_columns = [
        name for name in await stored_columns(dsn, mirror_of(case.table)) if name not in case.skip
    ]
    present = await columns(dsn, case.table)
    pairs = [(name, case.renamed.get(name, name)) for name in mirror_columns]
    pairs = [(old, new) for old, new in pairs if new in present]
    table_sum = await checksum(dsn, case.table, [new for _, new in pairs])
    mirror_sum = await checksum(dsn, mirror_of(case.table), [old for old, _ in pairs])
    return table_sum, mirror_sum


@pytest.mark.parametrize(("case", "tool"), _params())
async def test_case_through_tool(case: Case, tool: str, tmp_path: Path) -> None:
    expected = case.expect(tool)
    async with fresh_database() as pair:
        await prepare(pair, case)
        before = await shape(pair.primary, case.table)
        writer = MirroredDml(pair.primary, case)
        service = build_service(pair, tmp_path, GHOST if tool == "gh_ost" else None)
        await service.start()
        await writer.start()
        try:
            before_writes = writer.stats.transactions
            result = await migrate(service, case, tool)
            during_writes = writer.stats.transactions - before_writes
        finally:
            stats = await writer.stop()
            await service.stop()

        assert stats.errors == [], stats.errors[:3]
        if case.dml and expected.outcome == "migrated":
            assert during_writes > 0, "the writer committed nothing while the migration ran"
        table_sum, mirror_sum = await compared(pair.primary, case)
        assert table_sum == mirror_sum, f"rows differ from the mirror ({tool}: {result.why})"
        assert await leftovers(pair.primary, case) == []
        if expected.outcome == "refused":
            assert not result.completed, f"{tool} was expected to refuse, but completed"
            assert expected.reason is not None and expected.reason in result.why, result.why
            assert await shape(pair.primary, case.table) == before, "a refused change touched the table"
            return

        assert result.completed, f"{tool} failed: {result.why}"
        after = await columns(pair.primary, case.table)
        for name, type_ in case.columns_after.items():
            assert after.get(name) == type_, f"{name} is {after.get(name)}, expected {type_}"
        for name in case.absent_after:
            assert name not in after, f"{name} is still there"
        _, indexes = await shape(pair.primary, case.table)
        for index in case.indexes_after:
            assert any(row[0] == index for row in indexes), f"index {index} is missing"
        for sql in case.zero:
            found = await query(pair.primary, sql.replace("{t}", f"`{case.table}`"))
            assert int(found[0][0]) == 0, f"{sql} counted {found[0][0]}"
        await wait_for_replica(pair)
        assert await columns(pair.replica, case.table) == after
        replica_sum, _ = await compared(pair.replica, case)
        assert replica_sum == table_sum, "the replica's rows differ from the primary's"


@pytest.mark.parametrize("case", [pytest.param(case, id=case.name) for case in CASES])
async def test_what_auto_plans(case: Case, tmp_path: Path) -> None:
    async with fresh_database() as pair:
        await prepare(pair, case)
        service = build_service(pair, tmp_path, None)
        await service.start()
        try:
            choice, words = await auto_choice(service, case)
        finally:
            await service.stop()
    assert choice == case.auto, words
    if choice == "direct":
        assert "[auto: " in words, words
    elif choice == "copy":
        assert "not the server's own DDL: " in words, words
