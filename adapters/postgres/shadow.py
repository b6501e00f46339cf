"""Shadow-table rewrites on PostgreSQL: every phase of a ShadowWork, each idempotent (it looks at the
catalog first and does only what is missing, in one transaction where it changes anything the
application sees). The copy and verification chunks the backfill engine drives are in shadow_copy.py,
with the replay invariant the swap relies on too.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
import structlog

from adapters.postgres.shadow_catalog import LiveTable, exists, read_table
from adapters.postgres.shadow_copy import ShadowCopy, describe, ensure_primary_key, replay
from adapters.postgres.shadow_sql import (
    Names,
    Sync,
    capture,
    create_log,
    create_shadow,
    drop_capture,
    forward_index_renames,
    forward_sync,
    new_column_type,
    rename_indexes,
    reverse_sync,
    shadow_index,
)
from orchestrator.domain.errors import StepFailedError
from orchestrator.domain.identifiers import quote_ident
from orchestrator.domain.plan import BackfillWork, Step
from orchestrator.domain.shadow import (
    ShadowPhase,
    ShadowWork,
    key_type_change_problem,
    old_index_name,
    old_table_name,
    shadow_index_name,
    shadow_table_name,
)
from orchestrator.ports import Attempt, ChunkResult, KeyColumn, VerifyResult

log = structlog.get_logger(__name__)

# The swap replays what is left of the log while it holds the table's lock, so it waits until catch-up
# passes (without the lock) bring the backlog under this many keys: a few milliseconds of replay.
SWAP_BACKLOG = 2_000
CATCH_UP_PASSES = 30
_INTEGER_RANK = {"smallint": 1, "integer": 2, "bigint": 3}


@dataclass(frozen=True)
class Limits:
    lock_timeout_ms: int
    statement_timeout_ms: int | None


class ShadowTables:
    """The shadow-table side of PostgresTarget, on its connection pool."""

    def __init__(self, pool: Callable[[], Awaitable[asyncpg.Pool]]) -> None:
        self._pool = pool
        self._copy = ShadowCopy(pool)

    async def copy_chunk(
        self, work: BackfillWork, key: Sequence[KeyColumn], after: list[Any] | None, limit: int
    ) -> ChunkResult:
        return await self._copy.copy_chunk(work, key, after, limit)

    async def verify_chunk(
        self, work: BackfillWork, key: Sequence[KeyColumn], after: list[Any] | None, limit: int
    ) -> VerifyResult:
        return await self._copy.verify_chunk(work, key, after, limit)

    # -- steps --------------------------------------------------------------------------------------

    async def execute(
        self, step: Step, *, lock_timeout_ms: int, statement_timeout_ms: int | None = None
    ) -> Attempt:
        assert step.shadow is not None
        phases = {
            ShadowPhase.PREPARE: self._prepare,
            ShadowPhase.DROP: self._drop,
            ShadowPhase.BUILD: self._build,
            ShadowPhase.SWAP: self._swap,
            ShadowPhase.SWAP_BACK: self._swap_back,
            ShadowPhase.DROP_OLD: self._drop_old,
        }
        phase = phases.get(step.shadow.phase)
        if phase is None:
            raise StepFailedError(step.id, step.description, f"no step runs phase {step.shadow.phase}")
        started = time.monotonic()
        pool = await self._pool()
        async with pool.acquire() as conn:
            try:
                await phase(conn, step, step.shadow, Limits(lock_timeout_ms, statement_timeout_ms))
            except asyncpg.LockNotAvailableError:
                return Attempt(lock_timed_out=True, seconds=time.monotonic() - started)
            except asyncpg.QueryCanceledError as error:
                raise StepFailedError(
                    step.id,
                    step.description,
                    f"{describe(error)}: a statement ran past statement_timeout while holding a lock "
                    "(rolled back, nothing changed)",
                ) from error
            except asyncpg.PostgresError as error:
                raise StepFailedError(step.id, step.description, describe(error)) from error
        return Attempt(lock_timed_out=False, seconds=time.monotonic() - started)

    async def _prepare(self, conn: asyncpg.Connection, step: Step, work: ShadowWork, limits: Limits) -> None:
        live, names = await _live(conn, step, work)
        if await exists(conn, names.old):
            return  # swapped already: this step is long done
        if await exists(conn, names.shadow) and await _captured(conn, names, reverse=False):
            return
        _check(step, work, live)
        current_user = await conn.fetchval("SELECT quote_ident(current_user)")
        sync = forward_sync(live, work, names)
        async with conn.transaction():
            await _limit(conn, limits)
            # A shadow table without its triggers is a stale leftover: nothing relies on it.
            await conn.execute(f"DROP TABLE IF EXISTS {names.shadow}, {names.log}")
            for statement in create_shadow(live, work, names, current_user):
                await conn.execute(statement)
            await _check_expressions(conn, step, work, live, names, sync)
            await conn.execute(create_log(names.log, live.key, live.key_types()))
            # Last: CREATE TRIGGER takes the lock on the live table, held until this commits.
            for statement in capture(
                names, names.table, names.log, [names.shadow, names.log], live.key, reverse=False
            ):
                await conn.execute(statement)
        log.info("shadow_prepared", table=work.table, shadow=shadow_table_name(work.table))

    async def _drop(self, conn: asyncpg.Connection, step: Step, work: ShadowWork, limits: Limits) -> None:
        live, names = await _live(conn, step, work)
        if await exists(conn, names.old):
            raise StepFailedError(
                step.id, step.description, f"{work.table} is the shadow table swapped in: swap it back first"
            )
        if await exists(conn, names.shadow):
            await _follow_sequences(conn, names, shadow_table_name(live.name), work, limits)
        async with conn.transaction():
            await _limit(conn, limits)
            present = await _triggers(conn, names)
            for statement in drop_capture(names, names.table, names.log, reverse=False, present=present):
                await conn.execute(statement)
            await conn.execute(f"DROP TABLE IF EXISTS {names.shadow}")
        log.info("shadow_dropped", table=live.name)

    async def _build(self, conn: asyncpg.Connection, step: Step, work: ShadowWork, limits: Limits) -> None:
        live, names = await _live(conn, step, work)
        if await exists(conn, names.old):
            return
        await _build_indexes(conn, live, names)

    async def _swap(self, conn: asyncpg.Connection, step: Step, work: ShadowWork, limits: Limits) -> None:
        live, names = await _live(conn, step, work)
        if await exists(conn, names.old) and not await exists(conn, names.shadow):
            # Swapped before a crash took the checkpoint, or before the sequences could follow.
            await _follow_sequences(conn, names, old_table_name(live.name), work, limits)
            return
        # Indexes created on the original since the build step get their counterpart now.
        await _build_indexes(conn, live, names)
        sync = forward_sync(live, work, names)
        await _catch_up(conn, step, sync)
        to_old, to_original = forward_index_renames(live)
        new_key_types = [new_column_type(live, work, name) for name in live.key]
        async with conn.transaction():
            await _limit(conn, limits)
            await conn.execute(f"LOCK TABLE {names.table}, {names.shadow} IN ACCESS EXCLUSIVE MODE")
            locked = time.monotonic()
            replayed = await replay(conn, sync)
            present = await _triggers(conn, names)
            for statement in drop_capture(names, names.table, names.log, reverse=False, present=present):
                await conn.execute(statement)
            await conn.execute(
                f"ALTER TABLE {names.table} RENAME TO {quote_ident(old_table_name(live.name))}"
            )
            await conn.execute(f"ALTER TABLE {names.shadow} RENAME TO {quote_ident(live.name)}")
            for statement in rename_indexes(to_old, live.schema) + rename_indexes(to_original, live.schema):
                await conn.execute(statement)
            await conn.execute(create_log(names.reverse_log, live.key, new_key_types))
            for statement in capture(
                names, names.table, names.reverse_log, [names.old, names.reverse_log], live.key, reverse=True
            ):
                await conn.execute(statement)
            held_ms = (time.monotonic() - locked) * 1000
        await _follow_sequences(conn, names, old_table_name(live.name), work, limits)
        log.info(
            "shadow_swapped",
            table=live.name,
            old=old_table_name(live.name),
            replayed_under_lock=replayed,
            held_ms=round(held_ms, 1),
        )

    async def _swap_back(
        self, conn: asyncpg.Connection, step: Step, work: ShadowWork, limits: Limits
    ) -> None:
        new, names = await _live(conn, step, work)
        if not await exists(conn, names.old):
            # Never swapped, or swapped back before a crash took the checkpoint or the sequences.
            if await exists(conn, names.shadow):
                await _follow_sequences(conn, names, shadow_table_name(new.name), work, limits)
            return
        old = await read_table(conn, old_table_name(work.table), new.schema)
        assert old is not None
        sync = reverse_sync(new, old, work, names)
        await _catch_up(conn, step, sync)
        old_names = {index.name for index in old.indexes}
        to_shadow = [(index.name, shadow_index_name(new.name, index.name)) for index in new.indexes]
        to_original = [
            (old_index_name(new.name, index.name), index.name)
            for index in new.indexes
            if old_index_name(new.name, index.name) in old_names
        ]
        async with conn.transaction():
            await _limit(conn, limits)
            await conn.execute(f"LOCK TABLE {names.table}, {names.old} IN ACCESS EXCLUSIVE MODE")
            locked = time.monotonic()
            await replay(conn, sync)
            present = await _triggers(conn, names)
            for statement in drop_capture(
                names, names.table, names.reverse_log, reverse=True, present=present
            ):
                await conn.execute(statement)
            await conn.execute(
                f"ALTER TABLE {names.table} RENAME TO {quote_ident(shadow_table_name(new.name))}"
            )
            await conn.execute(f"ALTER TABLE {names.old} RENAME TO {quote_ident(new.name)}")
            for statement in rename_indexes(to_shadow, new.schema) + rename_indexes(to_original, new.schema):
                await conn.execute(statement)
            held_ms = (time.monotonic() - locked) * 1000
        await _follow_sequences(conn, names, shadow_table_name(new.name), work, limits)
        log.info("shadow_swapped_back", table=new.name, held_ms=round(held_ms, 1))

    async def _drop_old(self, conn: asyncpg.Connection, step: Step, work: ShadowWork, limits: Limits) -> None:
        live, names = await _live(conn, step, work)
        if not await exists(conn, names.old):
            if await exists(conn, names.shadow):
                raise StepFailedError(
                    step.id, step.description, f"{work.table} has not been swapped with its shadow table"
                )
            return  # dropped before a crash took the checkpoint
        await _follow_sequences(conn, names, old_table_name(live.name), work, limits)
        async with conn.transaction():
            await _limit(conn, limits)
            present = await _triggers(conn, names)
            for statement in drop_capture(
                names, names.table, names.reverse_log, reverse=True, present=present
            ):
                await conn.execute(statement)
            await conn.execute(f"DROP TABLE IF EXISTS {names.old}")
        log.info("shadow_old_dropped", table=live.name, old=old_table_name(live.name))


# -- helpers ----------------------------------------------------------------------------------------


async def _live(conn: asyncpg.Connection, step: Step, work: ShadowWork) -> tuple[LiveTable, Names]:
    live = await read_table(conn, work.table)
    if live is None:
        raise StepFailedError(step.id, step.description, f"table {work.table} does not exist")
    return live, Names(live.schema, live.name)


def _check(step: Step, work: ShadowWork, live: LiveTable) -> None:
    """What the planner could not see when it planned offline, and what no plan can carry over."""
    problems = list(live.blockers)
    names = {column.name for column in live.columns}
    if work.column not in names:
        problems.append(f"column {work.table}.{work.column} does not exist")
    elif work.column in live.key:
        if work.type:
            problem = key_type_change_problem(live.column(work.column).type, work.type)
            if problem:
                problems.append(problem)
        if work.up or work.down:
            problems.append("a primary-key column's values are carried by a cast: leave out up and down")
    if problems:
        raise StepFailedError(
            step.id,
            step.description,
            f"a shadow rewrite cannot carry {work.table} over: " + "; ".join(problems),
        )


async def _check_expressions(
    conn: asyncpg.Connection, step: Step, work: ShadowWork, live: LiveTable, names: Names, sync: Sync
) -> None:
    """Plan (never run) what the copy and the reverse sync will compute, to fail before any trigger."""
    old_type = live.column(work.column).type
    down = reverse_sync(live, live, work, names).values
    for side, sql in (
        ("up", f"SELECT {', '.join(sync.values)} FROM {names.table}"),  # noqa: S608
        ("down", f"SELECT {', '.join(down)} FROM {names.shadow}"),  # noqa: S608
    ):
        try:
            await conn.prepare(sql)
        except asyncpg.PostgresError as error:
            raise StepFailedError(
                step.id,
                step.description,
                f"the {side} conversion of {work.table}.{work.column} ({old_type} -> "
                f"{work.type or old_type}) does not compile: {describe(error)}",
            ) from error


async def _triggers(conn: asyncpg.Connection, names: Names) -> set[str]:
    """The names of osctl's triggers on the live table."""
    rows = await conn.fetch(
        "SELECT tgname FROM pg_trigger WHERE tgrelid = to_regclass($1) AND tgname LIKE '\\_osc\\_%'",
        names.table,
    )
    return {row["tgname"] for row in rows}


async def _captured(conn: asyncpg.Connection, names: Names, *, reverse: bool) -> bool:
    wanted = [name.strip('"') for name in names.triggers(reverse=reverse).values()]
    found = await conn.fetchval(
        "SELECT count(*) FROM pg_trigger WHERE tgrelid = to_regclass($1) AND tgname = ANY($2::text[])",
        names.table,
        wanted,
    )
    return int(found) == len(wanted)


async def _build_indexes(conn: asyncpg.Connection, live: LiveTable, names: Names) -> None:
    """The original's valid secondary indexes on the shadow table, each skipped when already built.
    Plain CREATE INDEX: only osctl uses the shadow table, and one scan is cheaper than CONCURRENTLY's two."""
    await ensure_primary_key(conn, live, names)
    for index in live.indexes:
        if index.primary or not index.valid:
            continue
        name = shadow_index_name(live.name, index.name)
        qualified = names.qualified(name)
        valid = await conn.fetchval(
            "SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass($1)", qualified
        )
        if valid is False:
            await conn.execute(f"DROP INDEX IF EXISTS {qualified}")
        if valid is not True:
            started = time.monotonic()
            await conn.execute(shadow_index(index.definition, name, names.shadow))
            log.info("shadow_index_built", index=name, seconds=round(time.monotonic() - started, 3))
        if index.unique_constraint and not await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = to_regclass($1) AND conname = $2)",
            names.shadow,
            name,
        ):
            await conn.execute(
                f"ALTER TABLE {names.shadow} ADD CONSTRAINT {quote_ident(name)} UNIQUE USING INDEX {quote_ident(name)}"
            )
    await conn.execute(f"ANALYZE {names.shadow}")


async def _catch_up(conn: asyncpg.Connection, step: Step, sync: Sync) -> None:
    """Replay passes, without the table's lock, until what the swap must replay under it is small."""
    backlog = 0
    for passes in range(1, CATCH_UP_PASSES + 1):
        async with conn.transaction(isolation="repeatable_read"):
            backlog = await replay(conn, sync)
        if backlog <= SWAP_BACKLOG:
            log.info("shadow_caught_up", table=step.table, passes=passes, last_backlog=backlog)
            return
    raise StepFailedError(
        step.id,
        step.description,
        f"the change log still held {backlog} keys after {CATCH_UP_PASSES} replay passes: the application "
        "writes faster than the replay keeps up. Retry when it writes less.",
    )


async def _follow_sequences(
    conn: asyncpg.Connection, names: Names, aside: str, work: ShadowWork, limits: Limits
) -> None:
    """Sequences owned by a column of the table set aside (`aside`) move to the live table's column of
    that name (or dropping the table aside would take them along), and the changed column's sequence
    takes the column's integer type. Its own short transaction, never inside a swap: the swap holds
    the table, and an application transaction that took nextval() before waiting for the table would
    wait on the swap while the swap waited on it (a deadlock, one of them cancelled)."""
    aside_table = await read_table(conn, aside, names.schema)
    live = await read_table(conn, names.table_name, names.schema)
    if aside_table is None or live is None or not aside_table.sequences:
        return
    async with conn.transaction():
        await _limit(conn, limits)
        for column, sequence in aside_table.sequences.items():
            await conn.execute(f"ALTER SEQUENCE {sequence.name} OWNED BY {names.table}.{quote_ident(column)}")
            type_name = live.column(column).type
            if column == work.column and type_name != sequence.type and type_name in _INTEGER_RANK:
                # A serial's sequence has its column's type, and with it the limit of that type.
                await conn.execute(f"ALTER SEQUENCE {sequence.name} AS {type_name}")
    log.info("shadow_sequences_moved", table=names.table_name, sequences=len(aside_table.sequences))


async def _limit(conn: asyncpg.Connection, limits: Limits) -> None:
    await conn.execute("SELECT set_config('lock_timeout', $1, true)", f"{int(limits.lock_timeout_ms)}ms")
    if limits.statement_timeout_ms:
        await conn.execute(
            "SELECT set_config('statement_timeout', $1, true)", f"{int(limits.statement_timeout_ms)}ms"
        )
