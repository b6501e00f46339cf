"""The queries behind the data preflight: offending rows, sessions, replicas and table sizes.

Checks evaluate expressions from the spec, so each runs in a read-only transaction (a spec cannot
write through them) under a statement_timeout; a check that runs out of time says so instead of
failing. Rows are counted in full, a few sample keys come from a second, LIMITed query over the same
snapshot. Conversions are tested apart (adapters/postgres/preflight_cast.py).
"""

from __future__ import annotations

import asyncpg

from adapters.postgres import activity
from adapters.postgres.preflight_cast import cast_finding
from adapters.postgres.preflight_sql import SAMPLE_ROWS, derived_rows, finding_error, key_names
from orchestrator.domain.data_checks import (
    DataCheck,
    DataCheckKind,
    DataFinding,
    DataSample,
    LiveData,
    ReplicaInfo,
    TableSize,
)
from orchestrator.domain.identifiers import quote_ident

_REPLICAS_SQL = """
    SELECT coalesce(nullif(application_name, ''), client_addr::text, 'pid ' || pid) AS name,
           coalesce(state, '') AS state,
           pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::bigint AS lag_bytes,
           extract(epoch FROM replay_lag)::float8 AS lag_seconds
    FROM pg_stat_replication ORDER BY 1
"""

_SIZES_SQL = """
    SELECT c.relname::text AS name, pg_total_relation_size(c.oid) AS total_bytes,
           greatest(c.reltuples, 0)::bigint AS estimated_rows
    FROM pg_class c
    WHERE c.oid = ANY (SELECT to_regclass(name)::oid FROM unnest($1::text[]) AS name)
"""


async def read_live_data(
    pool: asyncpg.Pool, checks: list[DataCheck], tables: list[str], *, timeout_ms: int
) -> LiveData:
    relations = [quote_ident(table) for table in tables]
    async with pool.acquire() as conn:
        await conn.execute("SELECT set_config('statement_timeout', $1, false)", f"{int(timeout_ms)}ms")
        try:
            findings = tuple([await _finding(conn, check, timeout_ms) for check in checks])
            sessions = await activity.in_transaction(conn, relations)
            replicas = await _replicas(conn)
            sizes = {
                row["name"]: TableSize(row["name"], int(row["total_bytes"]), int(row["estimated_rows"]))
                for row in await conn.fetch(_SIZES_SQL, relations)
            }
        finally:
            await conn.execute("RESET statement_timeout")
    return LiveData(findings=findings, sessions=sessions, replicas=replicas, sizes=sizes)


async def _finding(conn: asyncpg.Connection, check: DataCheck, timeout_ms: int) -> DataFinding:
    if check.kind is DataCheckKind.CAST:
        return await cast_finding(conn, check, timeout_ms)
    try:
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            if check.kind is DataCheckKind.DUPLICATES:
                return await _duplicates(conn, check)
            return await _bad_rows(conn, check)
    except asyncpg.PostgresError as error:
        return finding_error(check, error, timeout_ms)


async def _bad_rows(conn: asyncpg.Connection, check: DataCheck) -> DataFinding:
    """NULLS, CHECK and ORPHANS: rows of the derived table `s` a condition picks out."""
    values = [f"s.__v{n}" for n in range(len(check.expressions))]
    match check.kind:
        case DataCheckKind.NULLS:
            condition = f"{values[0]} IS NULL"
        case DataCheckKind.CHECK:
            condition = f"{values[0]} IS FALSE"  # NULL passes a CHECK
        case _:
            assert check.referenced_table is not None
            # MATCH SIMPLE: a row with any NULL in its key references nothing and passes.
            present = " AND ".join(f"{value} IS NOT NULL" for value in values)
            referenced = ", ".join(f"r.{quote_ident(column)}" for column in check.referenced_columns)
            condition = (
                f"{present} AND NOT EXISTS (SELECT 1 FROM {quote_ident(check.referenced_table)} AS r "  # noqa: S608
                f"WHERE ({referenced}) = ({', '.join(values)}))"
            )
    rows = derived_rows(check)
    count = await conn.fetchval(f"SELECT count(*) FROM ({rows}) AS s WHERE {condition}")  # noqa: S608
    samples: tuple[DataSample, ...] = ()
    if count:
        keys = [f"s.__k{n}" for n in range(len(key_names(check)))]
        as_text = ", ".join(f"{key}::text" for key in keys)
        shown = "".join(f", s.__s{n}" for n in range(len(check.shown)))
        found = await conn.fetch(
            f"SELECT ARRAY[{as_text}] AS k, ARRAY[NULL::text{shown}] AS v FROM ({rows}) AS s "  # noqa: S608
            f"WHERE {condition} ORDER BY {', '.join(keys)} LIMIT {SAMPLE_ROWS}"
        )
        samples = tuple(DataSample(key=tuple(row["k"]), values=tuple(row["v"][1:])) for row in found)
    return DataFinding(check=check, count=int(count), samples=samples)


async def _duplicates(conn: asyncpg.Connection, check: DataCheck) -> DataFinding:
    """Groups of rows sharing the key, as a unique index sees them: rows with a NULL never collide."""
    values = [f"s.__v{n}" for n in range(len(check.expressions))]
    present = " AND ".join(f"{value} IS NOT NULL" for value in values)
    as_text = ", ".join(f"{value}::text" for value in values)
    found = await conn.fetch(
        f"""
        SELECT ARRAY[{as_text}] AS v, count(*) AS n, count(*) OVER () AS groups
        FROM ({derived_rows(check)}) AS s WHERE {present}
        GROUP BY {", ".join(values)} HAVING count(*) > 1
        ORDER BY n DESC, 1 LIMIT {SAMPLE_ROWS}
        """  # noqa: S608 - identifiers quoted; expressions parsed as one expression each
    )
    groups = int(found[0]["groups"]) if found else 0
    samples = tuple(DataSample(values=tuple(row["v"]), count=int(row["n"])) for row in found)
    return DataFinding(check=check, count=groups, samples=samples)


async def _replicas(conn: asyncpg.Connection) -> tuple[ReplicaInfo, ...] | None:
    try:
        rows = await conn.fetch(_REPLICAS_SQL)
    except asyncpg.PostgresError:
        return None  # a standby, or no right to read it: said so in the notes
    return tuple(
        ReplicaInfo(
            name=str(row["name"]),
            state=str(row["state"]),
            lag_bytes=None if row["lag_bytes"] is None else int(row["lag_bytes"]),
            lag_seconds=None if row["lag_seconds"] is None else float(row["lag_seconds"]),
        )
        for row in rows
    )
