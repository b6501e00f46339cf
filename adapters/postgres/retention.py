"""Tables set aside by drop_table: found by their marker, dropped for good under lock_timeout."""

from __future__ import annotations

import asyncpg
import structlog

from orchestrator.domain.identifiers import quote_ident
from orchestrator.domain.retention import ASIDE_PREFIX, AsideTable, parse_marker
from orchestrator.ports import PurgeResult

log = structlog.get_logger(__name__)

# Tables named like ours that the search path resolves to (the names the steps used); the marker in
# the comment decides whether one is really ours.
_ASIDE_SQL = r"""
    SELECT c.relname, obj_description(c.oid, 'pg_class') AS comment
    FROM pg_class c
    WHERE c.relkind IN ('r', 'p') AND c.relname LIKE $1 || '%'
      AND to_regclass(quote_ident(c.relname)) = c.oid
    ORDER BY c.relname
"""


async def aside_tables(conn: asyncpg.Connection | asyncpg.Pool) -> list[AsideTable]:
    prefix = ASIDE_PREFIX.replace("_", r"\_")
    rows = await conn.fetch(_ASIDE_SQL, prefix)
    tables = [parse_marker(row["relname"], row["comment"]) for row in rows]
    return [table for table in tables if table is not None]


async def purge(conn: asyncpg.Connection, name: str, *, lock_timeout_ms: int) -> PurgeResult:
    """DROP TABLE in a transaction that first re-reads the marker, so a table renamed back by a
    rollback a moment ago, or a stranger's table of that name, is never dropped."""
    try:
        async with conn.transaction():
            await conn.execute("SELECT set_config('lock_timeout', $1, true)", f"{int(lock_timeout_ms)}ms")
            comment = await conn.fetchval(
                "SELECT obj_description(to_regclass($1), 'pg_class')", quote_ident(name)
            )
            if parse_marker(name, comment) is None:
                return "not_ours"
            # No CASCADE: preflight refused dependants; one that appeared since fails the purge loudly.
            await conn.execute(f"DROP TABLE IF EXISTS {quote_ident(name)}")
    except asyncpg.LockNotAvailableError:
        log.info("aside_table_busy", table=name, lock_timeout_ms=lock_timeout_ms)
        return "busy"
    return "purged"
