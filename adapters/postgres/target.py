"""PostgresTarget: the TargetDatabase port over asyncpg. Every statement is lock-bounded and idempotent."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

import asyncpg
import structlog

from orchestrator.domain.errors import StepFailedError
from orchestrator.domain.identifiers import quote_ident
from orchestrator.domain.plan import BackfillWork, Step, StepAction
from orchestrator.domain.schema import ColumnInfo, IndexInfo, TableInfo
from orchestrator.ports import Attempt, ChunkResult, KeyColumn, VerifyResult

log = structlog.get_logger(__name__)

APPLICATION_NAME = "osctl"


class PostgresTarget:
    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self._pool: asyncpg.Pool | None = None
        self._statements: dict[tuple[object, ...], str] = {}

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
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    # -- DDL ----------------------------------------------------------------------------------------

    async def execute_step(self, step: Step, *, lock_timeout_ms: int) -> Attempt:
        if step.sql is None:
            return Attempt(lock_timed_out=False, seconds=0.0)
        pool = await self._get_pool()
        async with pool.acquire() as conn:
            await conn.execute("SELECT set_config('lock_timeout', $1, false)", f"{int(lock_timeout_ms)}ms")
            try:
                if step.action is StepAction.CREATE_INDEX_CONCURRENTLY:
                    return await self._create_index(conn, step)
                return await self._run(conn, step)
            finally:
                await conn.execute("RESET lock_timeout")

    async def _run(self, conn: asyncpg.Connection, step: Step) -> Attempt:
        assert step.sql is not None
        started = time.monotonic()
        try:
            if step.transactional:
                async with conn.transaction():
                    await conn.execute(step.sql)
            else:
                await conn.execute(step.sql)
        except asyncpg.LockNotAvailableError:
            return Attempt(lock_timed_out=True, seconds=time.monotonic() - started)
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
            SELECT attname, format_type(atttypid, atttypmod) AS type, NOT attnotnull AS nullable
            FROM pg_attribute WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped ORDER BY attnum
            """,
            oid,
        )
        indexes = await pool.fetch(
            """
            SELECT c.relname, i.indisvalid, i.indisunique, i.indisprimary,
                   ARRAY(SELECT a.attname FROM pg_attribute a
                         WHERE a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
                         ORDER BY array_position(i.indkey::int2[], a.attnum))::text[] AS columns
            FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = $1
            """,
            oid,
        )
        estimate = await pool.fetchval("SELECT reltuples::bigint FROM pg_class WHERE oid = $1", oid)
        primary = next((list(row["columns"]) for row in indexes if row["indisprimary"]), [])
        walk_key = [row["attname"] for row in await pool.fetch(_WALK_KEY_SQL, quote_ident(table))]
        return TableInfo(
            name=table,
            columns={
                row["attname"]: ColumnInfo(name=row["attname"], type=row["type"], nullable=row["nullable"])
                for row in columns
            },
            indexes={
                row["relname"]: IndexInfo(
                    name=row["relname"],
                    columns=list(row["columns"]),
                    valid=row["indisvalid"],
                    unique=row["indisunique"],
                )
                for row in indexes
            },
            primary_key=primary,
            walk_key=walk_key,
            estimated_rows=max(int(estimate or 0), 0),
        )

    async def relation_exists(self, name: str) -> bool:
        pool = await self._get_pool()
        return bool(await pool.fetchval("SELECT to_regclass($1) IS NOT NULL", quote_ident(name)))

    async def check_expression(self, table: str, expression: str) -> str | None:
        pool = await self._get_pool()
        try:
            # A prepared statement: it is planned, never executed, and cannot carry a second statement.
            async with pool.acquire() as conn:
                await conn.prepare(f"SELECT ({expression}) FROM {quote_ident(table)}")  # noqa: S608
        except asyncpg.PostgresError as error:
            return _describe(error)
        return None


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


def _describe(error: asyncpg.PostgresError) -> str:
    sqlstate = getattr(error, "sqlstate", None) or "?"
    return f"{error.__class__.__name__} ({sqlstate}): {error}"
