"""PostgresTarget: the TargetDatabase port over asyncpg. Every statement is lock-bounded and idempotent."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import asyncpg
import structlog

from adapters.postgres import activity, dependents, lock_safety, preflight_data, retention
from adapters.postgres.shadow import ShadowTables
from orchestrator.domain.data_checks import DataCheck, LiveData
from orchestrator.domain.errors import StepFailedError
from orchestrator.domain.identifiers import quote_ident
from orchestrator.domain.plan import BackfillWork, Step, StepAction
from orchestrator.domain.retention import AsideTable
from orchestrator.domain.schema import ColumnInfo, ConstraintInfo, IndexInfo, TableInfo
from orchestrator.lint.lexer import split_statements
from orchestrator.ports import Attempt, ChunkResult, KeyColumn, PurgeResult, VerifyResult

log = structlog.get_logger(__name__)

APPLICATION_NAME = "osctl"


class PostgresTarget:
    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self._pool: asyncpg.Pool | None = None
        self._statements: dict[tuple[object, ...], str] = {}
        self._blockers = lock_safety.BlockerMonitor(dsn, f"{APPLICATION_NAME}-lock-watch")
        self._shadow = ShadowTables(self._get_pool)

    async def _get_pool(self) -> asyncpg.Pool:
        if self._pool is None:
            self._pool = await asyncpg.create_pool(
                self._dsn,
                min_size=1,
                max_size=2,
                # Chunk statements are prepared once and run with ever-new bounds: a generic plan
                # (chosen after five runs) joins by scanning the whole table on every chunk.
                server_settings={
                    "application_name": APPLICATION_NAME,
                    "plan_cache_mode": "force_custom_plan",
                },
            )
        return self._pool

    async def close(self) -> None:
        await self._blockers.close()
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    # -- DDL ----------------------------------------------------------------------------------------

    async def execute_step(
        self, step: Step, *, lock_timeout_ms: int, statement_timeout_ms: int | None = None
    ) -> Attempt:
        if step.shadow is not None:  # a shadow-table rewrite's phase: its SQL is made from the catalog
            return await self._shadow.execute(
                step, lock_timeout_ms=lock_timeout_ms, statement_timeout_ms=statement_timeout_ms
            )
        if step.sql is None:
            return Attempt(lock_timed_out=False, seconds=0.0)
        pool = await self._get_pool()
        bound_ms = lock_safety.statement_timeout_ms(step, statement_timeout_ms)
        async with pool.acquire() as conn:
            await conn.execute("SELECT set_config('lock_timeout', $1, false)", f"{int(lock_timeout_ms)}ms")
            await conn.execute("SELECT set_config('statement_timeout', $1, false)", f"{bound_ms}ms")
            try:
                async with self._blockers.watch(conn.get_server_pid(), lock_timeout_ms) as watch:
                    attempt = await self._attempt(conn, step, watch, bound_ms)
                if attempt.lock_timed_out and not attempt.blockers:
                    # The polls came too late (a very short lock_timeout): the lock holders on the
                    # table are the next best answer, and a forgotten transaction still holds its lock.
                    blockers = watch.seen or await activity.holders(conn, [quote_ident(step.table)])
                    attempt = replace(attempt, blockers=blockers)
                return attempt
            finally:
                await conn.execute("RESET lock_timeout")
                await conn.execute("RESET statement_timeout")

    async def _attempt(
        self, conn: asyncpg.Connection, step: Step, watch: lock_safety.BlockerWatch, bound_ms: int
    ) -> Attempt:
        started = time.monotonic()
        try:
            if step.action is StepAction.CREATE_INDEX_CONCURRENTLY:
                return await self._create_index(conn, step)
            return await self._run(conn, step)
        except _CancelledError as error:
            if watch.latest:
                # Cancelled while still queued for a lock (one lock_timeout per lock it needs can
                # add up past statement_timeout): nothing changed, so it is a lock timeout.
                return Attempt(lock_timed_out=True, seconds=time.monotonic() - started, blockers=watch.latest)
            if not bound_ms:
                raise
            # Not waiting: it ran that long holding a lock that blocks writes. Retrying would stall
            # the application again for as long, so the step fails and says why.
            raise StepFailedError(
                step.id,
                step.description,
                f"ran past its statement_timeout of {bound_ms} ms while holding a lock that blocks "
                "writes (rolled back); the change is not catalog-only on this table: plan it another "
                "way (a new column and a backfill, a shadow table) or raise settings.statement_timeout_ms",
            ) from error

    async def _run(self, conn: asyncpg.Connection, step: Step) -> Attempt:
        assert step.sql is not None
        started = time.monotonic()
        try:
            if step.transactional:
                async with conn.transaction():
                    await conn.execute(step.sql)
            else:
                # Several statements in one query string form an implicit transaction block, which
                # CONCURRENTLY and VACUUM refuse: outside a transaction they go one at a time.
                for statement in split_statements(step.sql, "postgres").statements:
                    await conn.execute(statement.text)
        except asyncpg.LockNotAvailableError:
            return Attempt(lock_timed_out=True, seconds=time.monotonic() - started)
        except asyncpg.QueryCanceledError as error:
            raise _CancelledError(step.id, step.description, _describe(error)) from error
        except asyncpg.PostgresError as error:
            raise StepFailedError(step.id, step.description, _describe(error)) from error
        return Attempt(lock_timed_out=False, seconds=time.monotonic() - started)

    async def _create_index(self, conn: asyncpg.Connection, step: Step) -> Attempt:
        assert step.index_name is not None
        valid = await self._index_valid(conn, step.index_name)
        if valid:
            return Attempt(lock_timed_out=False, seconds=0.0)
        if valid is False:
            # An earlier build died half-way (crash, lock timeout, duplicate key): IF NOT EXISTS would
            # keep that INVALID index forever, so drop it before building again.
            log.warning("dropping_invalid_index", index=step.index_name)
            dropped = await self._drop_index(conn, step)
            if dropped.lock_timed_out:
                return dropped
        attempt = await self._run_cleaning_up(conn, step)
        return attempt

    async def _run_cleaning_up(self, conn: asyncpg.Connection, step: Step) -> Attempt:
        try:
            attempt = await self._run(conn, step)
        except StepFailedError:
            await self._drop_invalid(conn, step)
            raise
        if attempt.lock_timed_out:
            await self._drop_invalid(conn, step)
        return attempt

    async def _drop_invalid(self, conn: asyncpg.Connection, step: Step) -> None:
        assert step.index_name is not None
        if await self._index_valid(conn, step.index_name) is False:
            await self._drop_index(conn, step)

    async def _drop_index(self, conn: asyncpg.Connection, step: Step) -> Attempt:
        assert step.index_name is not None
        drop = step.model_copy(
            update={
                "sql": f"DROP INDEX CONCURRENTLY IF EXISTS {quote_ident(step.index_name)}",
                "transactional": False,
            }
        )
        return await self._run(conn, drop)

    async def _index_valid(self, conn: asyncpg.Connection, name: str) -> bool | None:
        value = await conn.fetchval(
            "SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass($1)", quote_ident(name)
        )
        return None if value is None else bool(value)

    # -- backfill -----------------------------------------------------------------------------------

    async def backfill_key(self, work: BackfillWork) -> list[KeyColumn]:
        pool = await self._get_pool()
        rows = await pool.fetch(_WALK_KEY_SQL, quote_ident(work.table))
        if not rows:
            raise StepFailedError(
                f"backfill.{work.table}.{work.column}",
                f"backfill {work.table}.{work.column}",
                f"table {work.table} has no primary key, nor a unique index over NOT NULL columns, "
                "to walk in chunks; add one first",
            )
        return [KeyColumn(row["attname"], row["type"]) for row in rows]

    async def estimate_rows(self, table: str) -> int:
        pool = await self._get_pool()
        estimate = await pool.fetchval(
            "SELECT reltuples::bigint FROM pg_class WHERE oid = to_regclass($1)", quote_ident(table)
        )
        if estimate is None or estimate < 0:  # never analysed: the planner has no idea yet
            estimate = await pool.fetchval(f"SELECT count(*) FROM {quote_ident(table)}")  # noqa: S608
        return int(estimate or 0)

    async def backfill_chunk(
        self, work: BackfillWork, key: Sequence[KeyColumn], after: list[Any] | None, limit: int
    ) -> ChunkResult:
        """Two short statements over a key range: find the chunk's last key, then update the range.

        A plain range (`key > after AND key <= last`) lets the UPDATE walk the primary key index
        between two bounds, which is several times cheaper than joining against a list of keys.
        """
        if work.shadow is not None:
            return await self._shadow.copy_chunk(work, key, after, limit)
        key = tuple(key)
        resume = after is not None
        lower = list(after or [])
        pool = await self._get_pool()
        try:
            async with pool.acquire() as conn:
                bound = await conn.fetchrow(self._bound_statement(work, key, resume=resume), limit, *lower)
                if bound is None:
                    # Fewer than `limit` rows remain: this is the last chunk, bounded by the last key.
                    bound = await conn.fetchrow(self._last_statement(work, key, resume=resume), *lower)
                    if bound is None or bound["n"] == 0:
                        return ChunkResult(high_water=None, rows_scanned=0, rows_updated=0)
                    scanned = int(bound["n"])
                else:
                    scanned = limit
                upper = list(bound["k"])
                updated = await conn.fetchval(
                    self._update_statement(work, key, resume=resume), *lower, *upper
                )
        except asyncpg.PostgresError as error:
            raise StepFailedError(
                f"backfill.{work.table}.{work.column}",
                f"backfill {work.table}.{work.column}",
                _describe(error),
            ) from error
        return ChunkResult(high_water=upper, rows_scanned=scanned, rows_updated=int(updated or 0))

    def _bound_statement(self, work: BackfillWork, key: tuple[KeyColumn, ...], *, resume: bool) -> str:
        names, _, where = _key_parts(key, resume=resume, first_param=2)
        as_text = ", ".join(f"{name}::text" for name in names)
        order = ", ".join(names)
        return self._cached(
            ("bound", work.table, key, resume),
            f"SELECT ARRAY[{as_text}] AS k FROM {quote_ident(work.table)} {where} "  # noqa: S608
            f"ORDER BY {order} OFFSET $1 - 1 LIMIT 1",
        )

    def _last_statement(self, work: BackfillWork, key: tuple[KeyColumn, ...], *, resume: bool) -> str:
        names, _, where = _key_parts(key, resume=resume, first_param=1)
        as_text = ", ".join(f"{name}::text" for name in names)
        descending = ", ".join(f"{name} DESC" for name in names)
        table = quote_ident(work.table)
        return self._cached(
            ("last", work.table, key, resume),
            f"SELECT (SELECT count(*) FROM {table} {where}) AS n, "  # noqa: S608
            f"(SELECT ARRAY[{as_text}] FROM {table} {where} ORDER BY {descending} LIMIT 1) AS k",
        )

    def _update_statement(self, work: BackfillWork, key: tuple[KeyColumn, ...], *, resume: bool) -> str:
        names, _, where = _key_parts(key, resume=resume, first_param=1)
        first_upper = 1 + (len(key) if resume else 0)
        upper = ", ".join(f"${first_upper + n}::text::{part.type}" for n, part in enumerate(key))
        in_range = f"{where} {'AND' if where else 'WHERE'} ({', '.join(names)}) <= ({upper})"
        column = quote_ident(work.column)
        # `IS DISTINCT FROM` skips rows that already hold the value, so replaying a chunk after a
        # crash, or a row the new application code already wrote, costs a read and no write.
        return self._cached(
            ("update", work, key, resume),
            f"WITH u AS (UPDATE {quote_ident(work.table)} SET {column} = ({work.expression}) "  # noqa: S608
            f"{in_range} AND {column} IS DISTINCT FROM ({work.expression}) RETURNING 1) "
            "SELECT count(*)::int FROM u",
        )

    def _cached(self, cache_key: tuple[object, ...], sql: str) -> str:
        return self._statements.setdefault(cache_key, sql)

    async def verify_chunk(
        self, work: BackfillWork, key: Sequence[KeyColumn], after: list[Any] | None, limit: int
    ) -> VerifyResult:
        if work.shadow is not None:
            return await self._shadow.verify_chunk(work, key, after, limit)
        sql = self._verify_statement(work, tuple(key), resume=after is not None)
        pool = await self._get_pool()
        try:
            row = await pool.fetchrow(sql, limit, *(after or []))
        except asyncpg.PostgresError as error:
            raise StepFailedError(
                f"backfill.{work.table}.{work.column}", f"verify {work.table}.{work.column}", _describe(error)
            ) from error
        assert row is not None
        return VerifyResult(
            high_water=list(row["high_water"]) if row["high_water"] is not None else None,
            rows_scanned=row["scanned"],
            mismatches=row["mismatches"],
            sample_keys=json.loads(row["samples"]) if row["samples"] else [],
        )

    def _verify_statement(self, work: BackfillWork, key: tuple[KeyColumn, ...], *, resume: bool) -> str:
        cache_key = (work, key, resume, "verify")
        cached = self._statements.get(cache_key)
        if cached is not None:
            return cached
        table, column = quote_ident(work.table), quote_ident(work.column)
        names, aliases, where = _key_parts(key, resume=resume)
        select_list = ", ".join(f"{name} AS {alias}" for name, alias in zip(names, aliases, strict=True))
        as_text = ", ".join(f"{alias}::text" for alias in aliases)
        last = ", ".join(f"{alias} DESC" for alias in aliases)
        sql = f"""
            WITH b AS (
                SELECT {select_list}, ({column} IS DISTINCT FROM ({work.expression})) AS __osc_bad
                FROM {table} {where} ORDER BY {", ".join(names)} LIMIT $1
            )
            SELECT (SELECT count(*) FROM b)::int AS scanned,
                   (SELECT count(*) FROM b WHERE __osc_bad)::int AS mismatches,
                   (SELECT ARRAY[{as_text}] FROM b ORDER BY {last} LIMIT 1) AS high_water,
                   (SELECT json_agg(json_build_array({as_text}))
                      FROM (SELECT * FROM b WHERE __osc_bad LIMIT 5) AS s)::text AS samples
        """  # noqa: S608 - identifiers are validated and quoted; the expression is parsed as one expression
        self._statements[cache_key] = sql
        return sql

    # -- preflight ----------------------------------------------------------------------------------

    async def describe_table(self, table: str) -> TableInfo | None:
        pool = await self._get_pool()
        oid = await pool.fetchval("SELECT to_regclass($1)::oid", quote_ident(table))
        if oid is None:
            return None
        columns = await pool.fetch(
            """
            SELECT a.attname, format_type(a.atttypid, a.atttypmod) AS type, NOT a.attnotnull AS nullable,
                   CASE WHEN a.attgenerated = '' THEN pg_get_expr(d.adbin, d.adrelid) END AS default,
                   a.attidentity <> '' AS identity, a.attgenerated <> '' AS generated
            FROM pg_attribute a
            LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
            WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum
            """,
            oid,
        )
        indexes = await pool.fetch(
            """
            SELECT c.relname, i.indisvalid, i.indisunique, i.indisprimary,
                   ARRAY(SELECT a.attname FROM pg_attribute a
                         WHERE a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
                         ORDER BY array_position(i.indkey::int2[], a.attnum))::text[] AS columns,
                   ARRAY(SELECT pg_get_indexdef(i.indexrelid, k, true)
                         FROM generate_series(1, i.indnkeyatts) AS k ORDER BY k)::text[] AS keys,
                   am.amname AS method, pg_get_expr(i.indpred, i.indrelid, true) AS predicate,
                   (SELECT conname FROM pg_constraint
                    WHERE conindid = i.indexrelid AND conrelid = i.indrelid AND contype IN ('p', 'u', 'x')
                    LIMIT 1) AS constraint_name,
                   pg_get_indexdef(i.indexrelid) AS definition
            FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am am ON am.oid = c.relam
            WHERE i.indrelid = $1
            """,
            oid,
        )
        constraints = await pool.fetch(
            """
            SELECT conname, contype::text AS kind, convalidated,
                   ARRAY(SELECT attname FROM pg_attribute
                         WHERE attrelid = conrelid AND attnum = ANY (conkey))::text[] AS columns
            FROM pg_constraint WHERE conrelid = $1
            """,
            oid,
        )
        estimate = await pool.fetchval("SELECT reltuples::bigint FROM pg_class WHERE oid = $1", oid)
        primary = next((list(row["columns"]) for row in indexes if row["indisprimary"]), [])
        walk_key = [row["attname"] for row in await pool.fetch(_WALK_KEY_SQL, quote_ident(table))]
        views, foreign_keys = await dependents.of_table(pool, oid)
        return TableInfo(
            name=table,
            columns={
                row["attname"]: ColumnInfo(
                    name=row["attname"],
                    type=row["type"],
                    nullable=row["nullable"],
                    default=row["default"],
                    identity=row["identity"],
                    generated=row["generated"],
                )
                for row in columns
            },
            indexes={
                row["relname"]: IndexInfo(
                    name=row["relname"],
                    columns=list(row["columns"]),
                    valid=row["indisvalid"],
                    unique=row["indisunique"],
                    keys=list(row["keys"]),
                    method=row["method"],
                    predicate=row["predicate"],
                    constraint=row["constraint_name"],
                    definition=row["definition"],
                )
                for row in indexes
            },
            constraints={
                row["conname"]: ConstraintInfo(
                    name=row["conname"],
                    kind=row["kind"],
                    validated=row["convalidated"],
                    columns=list(row["columns"]),
                )
                for row in constraints
            },
            primary_key=primary,
            column_dependents=await _column_dependents(pool, oid),
            dependent_views=views,
            referenced_by=foreign_keys,
            walk_key=walk_key,
            estimated_rows=max(int(estimate or 0), 0),
        )

    async def relation_exists(self, name: str) -> bool:
        pool = await self._get_pool()
        return bool(await pool.fetchval("SELECT to_regclass($1) IS NOT NULL", quote_ident(name)))

    # -- tables set aside by drop_table (SupportsAsideTables) -------------------------------------------

    async def aside_tables(self) -> list[AsideTable]:
        return await retention.aside_tables(await self._get_pool())

    async def purge_aside_table(self, name: str, *, lock_timeout_ms: int) -> PurgeResult:
        pool = await self._get_pool()
        async with pool.acquire() as conn:
            return await retention.purge(conn, name, lock_timeout_ms=lock_timeout_ms)

    async def read_live_data(
        self, checks: list[DataCheck], tables: list[str], *, timeout_ms: int
    ) -> LiveData:
        return await preflight_data.read_live_data(
            await self._get_pool(), checks, tables, timeout_ms=timeout_ms
        )

    async def check_expression(self, table: str, expression: str) -> str | None:
        pool = await self._get_pool()
        try:
            # A prepared statement: it is planned, never executed, and cannot carry a second statement.
            async with pool.acquire() as conn:
                await conn.prepare(f"SELECT ({expression}) FROM {quote_ident(table)}")  # noqa: S608
        except asyncpg.PostgresError as error:
            return _describe(error)
        return None


async def _column_dependents(pool: asyncpg.Pool, oid: int) -> dict[str, list[str]]:
    rows = await pool.fetch(_COLUMN_DEPENDENTS_SQL, oid)
    dependents: dict[str, list[str]] = {}
    for row in rows:
        dependents.setdefault(row["attname"], []).append(row["what"])
    return dependents


# What depends on each column besides its indexes (IndexInfo), the constraints those indexes back,
# and its own default: views, checks, foreign keys from or to it, generated columns, sequences.
_COLUMN_DEPENDENTS_SQL = """
    SELECT DISTINCT a.attname, pg_describe_object(d.classid, d.objid, d.objsubid) AS what
    FROM pg_depend d
    JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
    WHERE d.refclassid = 'pg_class'::regclass AND d.refobjid = $1 AND d.refobjsubid > 0
      AND d.deptype IN ('n', 'a', 'i')
      AND NOT (d.classid = 'pg_class'::regclass
               AND d.objid IN (SELECT indexrelid FROM pg_index WHERE indrelid = $1))
      AND NOT (d.classid = 'pg_attrdef'::regclass
               AND d.objid IN (SELECT oid FROM pg_attrdef WHERE adrelid = $1 AND adnum = d.refobjsubid))
      AND NOT (d.classid = 'pg_constraint'::regclass
               AND d.objid IN (SELECT oid FROM pg_constraint
                               WHERE conrelid = $1 AND contype IN ('p', 'u', 'x') AND conindid <> 0))
    ORDER BY 1, 2
"""


# The key a backfill walks, in index column order: the primary key, else the narrowest valid,
# non-partial unique index whose columns are all plain NOT NULL columns (no expressions).
_WALK_KEY_SQL = """
    WITH candidate AS (
        SELECT i.indexrelid, i.indkey::int2[] AS cols
        FROM pg_index i
        WHERE i.indrelid = to_regclass($1) AND i.indisunique AND i.indisvalid AND i.indpred IS NULL
          AND NOT (0 = ANY (i.indkey::int2[]))
          AND NOT EXISTS (
              SELECT 1 FROM pg_attribute a
              WHERE a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey) AND NOT a.attnotnull)
        ORDER BY i.indisprimary DESC, array_length(i.indkey::int2[], 1), i.indexrelid
        LIMIT 1
    )
    SELECT a.attname, format_type(a.atttypid, a.atttypmod) AS type
    FROM candidate c JOIN pg_attribute a ON a.attrelid = to_regclass($1) AND a.attnum = ANY (c.cols)
    ORDER BY array_position(c.cols, a.attnum)
"""


def _key_parts(
    key: tuple[KeyColumn, ...], *, resume: bool, first_param: int = 2
) -> tuple[list[str], list[str], str]:
    """Quoted key columns, their aliases, and the keyset WHERE clause (`key > after`) whose
    parameters start at $first_param."""
    names = [quote_ident(part.name) for part in key]
    aliases = [f"__osc_k{position}" for position in range(len(key))]
    where = ""
    if resume:
        # Keys travel as text (JSON-safe in the checkpoint) and are cast back to the key's own type.
        bounds = ", ".join(f"${n + first_param}::text::{part.type}" for n, part in enumerate(key))
        where = f"WHERE ({', '.join(names)}) > ({bounds})"
    return names, aliases, where


class _CancelledError(StepFailedError):
    """A statement cancelled by statement_timeout (or by hand); execute_step decides what it means."""


def _describe(error: asyncpg.PostgresError) -> str:
    sqlstate = getattr(error, "sqlstate", None) or "?"
    return f"{error.__class__.__name__} ({sqlstate}): {error}"
