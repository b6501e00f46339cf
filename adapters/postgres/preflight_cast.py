"""Would every row survive the conversion to a new type?

The value is inserted into a one-column temporary table of the new type: assignment semantics,
stricter than an explicit cast on purpose. CAST('abcd' AS varchar(3)) silently keeps 'abc'; a value
the change would cut short is data lost, so it counts as failing here. Where the types have no
assignment cast (text to integer) the value goes through an explicit cast, as the change does.

The table is walked in ranges of physical blocks (a TID range scan: no key or index needed); a range
that fails is gone through row by row, each row in its own subtransaction, to count the failures and
keep a few sample keys. Every insert is rolled back, the whole walk runs in one read-only snapshot,
and it stops at MAX_FAILURES rows or when settings.preflight.check_timeout_ms is up.
"""

from __future__ import annotations

import time

import asyncpg

from adapters.postgres.preflight_sql import SAMPLE_ROWS, finding_error
from orchestrator.domain.data_checks import DataCheck, DataFinding, DataSample
from orchestrator.domain.identifiers import quote_ident

CHUNK_BLOCKS = 1024  # 8 MB of heap per statement
ROWS_PER_CALL = 5000  # rows tested one by one per call, when a range failed
MAX_FAILURES = 1000
_PAST_THE_END = 4_294_967_295  # above any block number: the last range is open-ended

_PROBE = "pg_temp.osctl_cast_probe"

# One subtransaction per row: only used over a range already known to hold a failing row.
_FAILING_ROWS_FUNCTION = """
    CREATE OR REPLACE FUNCTION pg_temp.osctl_failing_rows(probe text, candidates tid[])
    RETURNS TABLE (failed tid, failure text) LANGUAGE plpgsql AS $fn$
    DECLARE
        candidate tid;
    BEGIN
        FOREACH candidate IN ARRAY candidates LOOP
            BEGIN
                EXECUTE probe USING candidate;
            EXCEPTION WHEN data_exception THEN
                failed := candidate;
                failure := SQLERRM;
                RETURN NEXT;
            END;
        END LOOP;
    END
    $fn$
"""


async def cast_finding(conn: asyncpg.Connection, check: DataCheck, timeout_ms: int) -> DataFinding:
    assert check.type_name is not None
    try:
        # Outside the read-only transaction, which allows writing temporary tables but not making them.
        await conn.execute(f"DROP TABLE IF EXISTS {_PROBE}")
        await conn.execute(f"CREATE TEMPORARY TABLE osctl_cast_probe (v {check.type_name})")
        await conn.execute(_FAILING_ROWS_FUNCTION)
        value = await _assigned(conn, check)
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            return await _walk(conn, check, value, time.monotonic() + timeout_ms / 1000, timeout_ms)
    except asyncpg.PostgresError as error:
        return finding_error(check, error, timeout_ms)
    finally:
        await conn.execute(f"DROP TABLE IF EXISTS {_PROBE}")


async def _assigned(conn: asyncpg.Connection, check: DataCheck) -> str:
    """The value as the probe column receives it: assigned as it is where the types have an
    assignment cast (so a too-long varchar fails, as it would in the backfill), else through an
    explicit cast (text to integer has no assignment cast; 'a cast' is then what the change means)."""
    value = check.expressions[0]
    try:
        # Planned, not run (LIMIT 0), in a transaction of its own: a bare prepare leaves the
        # session unable to start the read-only snapshot after it.
        async with conn.transaction():
            planned = f"INSERT INTO {_PROBE} SELECT ({value}) FROM {quote_ident(check.table)} LIMIT 0"  # noqa: S608
            await conn.execute(planned)
    except asyncpg.DatatypeMismatchError:
        return f"({value})::{check.type_name}"
    return f"({value})"


async def _walk(
    conn: asyncpg.Connection, check: DataCheck, value: str, deadline: float, timeout_ms: int
) -> DataFinding:
    table = quote_ident(check.table)
    blocks = await conn.fetchval(
        "SELECT pg_relation_size(to_regclass($1)) / current_setting('block_size')::int", table
    )
    in_range = f"FROM {table} WHERE ctid >= $1::tid AND ctid < $2::tid"
    failures: list[tuple[object, str]] = []
    start = 0
    while start <= blocks and len(failures) < MAX_FAILURES:
        if time.monotonic() > deadline:
            break
        end = start + CHUNK_BLOCKS
        bounds = ((start, 0), (end, 0) if end <= blocks else (_PAST_THE_END, 0))
        await conn.execute("SAVEPOINT osctl_range")
        try:
            await conn.execute(f"INSERT INTO {_PROBE} SELECT {value} {in_range}", *bounds)
        except asyncpg.DataError:
            await conn.execute("ROLLBACK TO SAVEPOINT osctl_range")
            candidates = await conn.fetchval(f"SELECT array_agg(ctid ORDER BY ctid) {in_range}", *bounds)
            failures += await _failing_rows(conn, check.table, value, list(candidates or []), deadline)
        else:
            await conn.execute("ROLLBACK TO SAVEPOINT osctl_range")
        start = end
    finished = start > blocks and len(failures) < MAX_FAILURES
    if not failures and not finished:
        return finding_error(check, asyncpg.QueryCanceledError("time is up"), timeout_ms)
    return DataFinding(
        check=check,
        count=len(failures),
        samples=await _samples(conn, check, [tid for tid, _ in failures[:SAMPLE_ROWS]]),
        exact=finished,
        error=failures[0][1] if failures else None,
    )


async def _failing_rows(
    conn: asyncpg.Connection, table: str, value: str, candidates: list[object], deadline: float
) -> list[tuple[object, str]]:
    probe = f"INSERT INTO {_PROBE} SELECT {value} FROM {quote_ident(table)} WHERE ctid = $1"  # noqa: S608
    failures: list[tuple[object, str]] = []
    for first in range(0, len(candidates), ROWS_PER_CALL):
        if time.monotonic() > deadline or len(failures) >= MAX_FAILURES:
            break
        await conn.execute("SAVEPOINT osctl_rows")
        rows = await conn.fetch(
            "SELECT failed, failure FROM pg_temp.osctl_failing_rows($1, $2::tid[])",
            probe,
            candidates[first : first + ROWS_PER_CALL],
        )
        await conn.execute("ROLLBACK TO SAVEPOINT osctl_rows")
        failures += [(row["failed"], str(row["failure"])) for row in rows]
    return failures[:MAX_FAILURES]


async def _samples(conn: asyncpg.Connection, check: DataCheck, tids: list[object]) -> tuple[DataSample, ...]:
    if not tids:
        return ()
    keys = [quote_ident(name) for name in check.key] or ["ctid"]
    as_text = ", ".join(f"{key}::text" for key in keys)
    shown = "".join(f", {quote_ident(name)}::text" for name in check.shown)
    rows = await conn.fetch(
        f"SELECT ARRAY[{as_text}] AS k, ARRAY[NULL::text{shown}] AS v FROM {quote_ident(check.table)} "  # noqa: S608
        f"WHERE ctid = ANY ($1::tid[]) ORDER BY {', '.join(keys)}",
        tids,
    )
    return tuple(DataSample(key=tuple(row["k"]), values=tuple(row["v"][1:])) for row in rows)
