"""The copy of a shadow rewrite, driven by the backfill engine: chunks along the key into the shadow
table, then verification chunks that replay the change log and compare both tables in one snapshot.

Consistency rests on one invariant: after a replay in a REPEATABLE READ snapshot S, the destination
holds exactly what the source held at S. The replay deletes then re-inserts, from S, every key the log
holds in S (and removes exactly those entries); a key without a visible entry was not changed since
the chunk or replay that last wrote it. Unique indexes on the destination therefore never see a
transient duplicate, and verification inside the same snapshot compares like with like.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import asyncpg
import structlog

from adapters.postgres.shadow_catalog import LiveTable, read_table
from adapters.postgres.shadow_sql import Names, Sync, forward_sync, primary_key
from orchestrator.domain.errors import StepFailedError
from orchestrator.domain.plan import BackfillWork
from orchestrator.domain.shadow import shadow_index_name
from orchestrator.ports import ChunkResult, KeyColumn, VerifyResult

log = structlog.get_logger(__name__)

# Verification reads in bigger bites than the engine's default: each is one short snapshot, and its
# cost is two range scans.
VERIFY_ROWS = 200_000


@dataclass(frozen=True)
class _CopyState:
    """Where this process's copy of a table stands: the last key it copied, and whether that range
    reached the end. A checkpoint other than `upper` means a resume or a new walk."""

    upper: list[Any]
    finished: bool


class ShadowCopy:
    """Copy and verification chunks of the shadow rewrites on one target's connection pool."""

    def __init__(self, pool: Callable[[], Awaitable[asyncpg.Pool]]) -> None:
        self._pool = pool
        self._syncs: dict[str, Sync] = {}
        self._copies: dict[str, _CopyState] = {}

    async def copy_chunk(
        self, work: BackfillWork, key: Sequence[KeyColumn], after: list[Any] | None, limit: int
    ) -> ChunkResult:
        """Copy the next key range into the shadow table, in one transaction.

        The copy ends with the range that reaches the last key it sees: rows inserted after that are
        in the change log, so chasing them would only race the application. After the last chunk
        the primary key is built.
        """
        resume, lower = after is not None, list(after or [])
        state = self._copies.get(work.table)
        upper: list[Any] | None = None
        scanned, finished, status = 0, False, "INSERT 0 0"
        pool = await self._pool()
        try:
            async with pool.acquire() as conn:
                sync = await self._sync(conn, work)
                if state is None or not state.finished or state.upper != lower:
                    async with conn.transaction():
                        if state is None or state.upper != lower:  # a start, a resume, a new walk
                            await conn.execute(sync.clear_after(resume=resume), *lower)
                        bound = await conn.fetchrow(sync.next_bound(resume=resume), limit, *lower)
                        if bound is not None:
                            scanned, upper = limit, list(bound["k"])
                        else:
                            last = await conn.fetchrow(
                                sync.last_bound(resume=resume, with_dest=False), *lower
                            )
                            if last is not None and last["n"]:
                                scanned, upper, finished = int(last["n"]), list(last["k"]), True
                        if upper is not None:
                            status = await conn.execute(sync.copy(resume=resume), *lower, *upper)
                if upper is None:
                    await self._finish_copy(conn, work)
        except asyncpg.PostgresError as error:
            raise StepFailedError(
                f"backfill.{work.table}.{work.column}", f"copy {work.table} into its shadow", describe(error)
            ) from error
        if upper is None:
            self._copies.pop(work.table, None)
            return ChunkResult(high_water=None, rows_scanned=0, rows_updated=0)
        self._copies[work.table] = _CopyState(upper=upper, finished=finished)
        return ChunkResult(high_water=upper, rows_scanned=scanned, rows_updated=int(status.split()[-1]))

    async def _finish_copy(self, conn: asyncpg.Connection, work: BackfillWork) -> None:
        live = await read_table(conn, work.table)
        if live is None:
            raise StepFailedError(
                f"backfill.{work.table}.{work.column}", "copy", f"table {work.table} is gone"
            )
        await ensure_primary_key(conn, live, Names(live.schema, live.name))

    async def verify_chunk(
        self, work: BackfillWork, key: Sequence[KeyColumn], after: list[Any] | None, limit: int
    ) -> VerifyResult:
        """Replay the log, then compare the next key range of both tables, in one snapshot: counts and
        sums of row hashes, and row by row only where those differ (to name the keys)."""
        resume, lower = after is not None, list(after or [])
        rows = max(limit, VERIFY_ROWS)
        pool = await self._pool()
        try:
            async with pool.acquire() as conn:
                sync = await self._sync(conn, work)
                async with conn.transaction(isolation="repeatable_read"):
                    await replay(conn, sync)
                    bound = await conn.fetchrow(sync.next_bound(resume=resume), rows, *lower)
                    if bound is None:
                        last = await conn.fetchrow(sync.last_bound(resume=resume, with_dest=True), *lower)
                        if last is None or last["k"] is None:
                            return VerifyResult(high_water=None, rows_scanned=0, mismatches=0, sample_keys=[])
                        upper = list(last["k"])
                    else:
                        upper = list(bound["k"])
                    sums = await conn.fetchrow(sync.checksums(resume=resume), *lower, *upper)
                    assert sums is not None
                    if sums["o"] == sums["d"]:
                        return VerifyResult(
                            high_water=upper, rows_scanned=int(sums["o"][0]), mismatches=0, sample_keys=[]
                        )
                    row = await conn.fetchrow(sync.compare(resume=resume), *lower, *upper)
        except asyncpg.PostgresError as error:
            raise StepFailedError(
                f"backfill.{work.table}.{work.column}", f"verify the shadow of {work.table}", describe(error)
            ) from error
        assert row is not None
        return VerifyResult(
            high_water=upper,
            rows_scanned=row["scanned"],
            mismatches=row["mismatches"],
            sample_keys=json.loads(row["samples"]) if row["samples"] else [],
        )

    async def _sync(self, conn: asyncpg.Connection, work: BackfillWork) -> Sync:
        assert work.shadow is not None
        sync = self._syncs.get(work.table)
        if sync is None:
            live = await read_table(conn, work.table)
            if live is None:
                raise StepFailedError(
                    f"backfill.{work.table}.{work.column}", "copy", f"table {work.table} does not exist"
                )
            sync = forward_sync(live, work.shadow, Names(live.schema, live.name))
            try:
                await conn.fetchval(replace(sync, hash_records=True).probe_hash())
                sync = replace(sync, hash_records=True)
            except asyncpg.PostgresError:
                log.info("shadow_rows_hashed_as_text", table=work.table)
            self._syncs[work.table] = sync
        return sync


async def ensure_primary_key(conn: asyncpg.Connection, live: LiveTable, names: Names) -> None:
    name = shadow_index_name(live.name, live.key_constraint)
    if await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = to_regclass($1) AND contype = 'p')",
        names.shadow,
    ):
        return
    started = time.monotonic()
    async with conn.transaction():
        await conn.execute(f"DROP INDEX IF EXISTS {names.qualified(name)}")  # a build cut short
        for statement in primary_key(live, names):
            await conn.execute(statement)
    log.info("shadow_primary_key_built", index=name, seconds=round(time.monotonic() - started, 3))


async def replay(conn: asyncpg.Connection, sync: Sync) -> int:
    """Replay every logged key; the caller's transaction decides the snapshot. Returns the entries."""
    backlog = int(await conn.fetchval(f"SELECT count(*) FROM {sync.log}"))  # noqa: S608
    if backlog:
        # Without statistics on the log the planner guesses it large and scans the whole table to
        # join it; a few milliseconds of ANALYZE buy index lookups for a small log.
        await conn.execute(f"ANALYZE {sync.log}")
        for statement in sync.replay():
            await conn.execute(statement)
    return backlog


def describe(error: asyncpg.PostgresError) -> str:
    sqlstate = getattr(error, "sqlstate", None) or "?"
    return f"{error.__class__.__name__} ({sqlstate}): {error}"
