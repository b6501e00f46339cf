"""Sessions of the target database from pg_stat_activity, as the domain's SessionInfo.

Shared by lock safety (who an attempt waits behind) and preflight (who would block the migration).
Queries are shortened and masked here, before they leave the adapter.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import asyncpg

from orchestrator.domain.sessions import SessionInfo, shorten_query

# The columns every session query selects, over pg_stat_activity aliased `a`. clock_timestamp(), not
# now(): a query run inside a long transaction would otherwise measure ages from its own start.
SESSION_COLUMNS = """
    a.pid,
    coalesce(a.state, '') AS state,
    a.query,
    coalesce(a.application_name, '') AS application_name,
    coalesce(a.usename::text, '') AS usename,
    extract(epoch FROM clock_timestamp() - a.xact_start)::float8 AS transaction_seconds,
    a.backend_xmin IS NOT NULL AS holds_snapshot
"""

# The sessions a waiting backend ($1) waits behind: lock holders, and those queued ahead of it
# with a conflicting request (pg_blocking_pids says both).
BLOCKING_SQL = f"""
    SELECT {SESSION_COLUMNS}
    FROM pg_stat_activity a
    WHERE a.pid = ANY (pg_blocking_pids($1))
    ORDER BY a.xact_start NULLS LAST, a.pid
"""  # noqa: S608 - constant SQL

# The relations of $1 (names as to_regclass reads them) on which session `a` holds a granted lock.
_LOCKED_TABLES = """
    ARRAY(SELECT DISTINCT c.relname::text FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
          WHERE l.pid = a.pid AND l.granted
            AND l.relation = ANY (SELECT to_regclass(name)::oid FROM unnest($1::text[]) AS name)
          ORDER BY 1) AS locked_tables
"""

# Other sessions holding a granted lock on one of the relations in $1, with the ones each holds.
HOLDERS_SQL = f"""
    SELECT * FROM (
        SELECT {SESSION_COLUMNS}, {_LOCKED_TABLES}, a.xact_start
        FROM pg_stat_activity a WHERE a.pid <> pg_backend_pid()
    ) AS s
    WHERE cardinality(s.locked_tables) > 0
    ORDER BY s.xact_start NULLS LAST, s.pid
"""  # noqa: S608 - constant SQL

# Sessions of this database (other than ours) inside a transaction, oldest first, with the
# relations of $1 each holds a lock on.
IN_TRANSACTION_SQL = f"""
    SELECT {SESSION_COLUMNS}, {_LOCKED_TABLES}
    FROM pg_stat_activity a
    WHERE a.datname = current_database() AND a.pid <> pg_backend_pid() AND a.xact_start IS NOT NULL
      AND a.backend_type = 'client backend'
    ORDER BY a.xact_start, a.pid
"""  # noqa: S608 - constant SQL


def session_from_row(row: asyncpg.Record) -> SessionInfo:
    seconds = row["transaction_seconds"]
    locked = row.get("locked_tables")
    return SessionInfo(
        pid=int(row["pid"]),
        state=str(row["state"]),
        query=shorten_query(row["query"]),
        transaction_seconds=None if seconds is None else float(seconds),
        application_name=str(row["application_name"]),
        user=str(row["usename"]),
        locked_tables=tuple(locked or ()),
        holds_snapshot=bool(row["holds_snapshot"]),
    )


def sessions_from_rows(rows: Iterable[asyncpg.Record]) -> tuple[SessionInfo, ...]:
    return tuple(session_from_row(row) for row in rows)


async def blocking(conn: asyncpg.Connection, pid: int) -> tuple[SessionInfo, ...]:
    return sessions_from_rows(await conn.fetch(BLOCKING_SQL, pid))


async def holders(conn: asyncpg.Connection, relations: Sequence[str]) -> tuple[SessionInfo, ...]:
    """`relations`: names as to_regclass reads them (quoted identifiers)."""
    return sessions_from_rows(await conn.fetch(HOLDERS_SQL, list(relations)))


async def in_transaction(conn: asyncpg.Connection, relations: Sequence[str]) -> tuple[SessionInfo, ...]:
    """`relations`: names as to_regclass reads them (quoted identifiers)."""
    return sessions_from_rows(await conn.fetch(IN_TRANSACTION_SQL, list(relations)))
