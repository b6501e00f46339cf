"""PostgreSQL usage statistics for the contract safety proof: pg_stat_statements when the extension is
installed in the target database, and the cumulative counters of pg_stat_user_tables and
pg_stat_user_indexes.

Only statements whose text contains a target table's name are read back (a cheap superset: the
engine decides on the parse tree whether one really uses the table or column). What cannot be read
is said in the snapshot's source notes rather than read as "unused".
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import asyncpg
import structlog

from orchestrator.domain.identifiers import quote_ident
from orchestrator.domain.usage import (
    DropKind,
    DropTarget,
    ObjectStat,
    SourceState,
    StatementStat,
    UsageSnapshot,
)

log = structlog.get_logger(__name__)

APPLICATION_NAME = "osctl-usage"
STATEMENTS = "pg_stat_statements"
COUNTERS = "pg_stat_user_tables/pg_stat_user_indexes"
# Table counters that move when a table is read or written.
TABLE_COUNTERS = ("seq_scan", "idx_scan", "n_tup_ins", "n_tup_upd", "n_tup_del")
MISSING_EXTENSION = (
    "pg_stat_statements is not installed in this database (CREATE EXTENSION pg_stat_statements, with "
    "the library in shared_preload_libraries): statements using a column cannot be seen, only "
    "table and index counters"
)


class PgUsageReader:
    def __init__(self, dsn: str) -> None:
        self._dsn = dsn

    async def close(self) -> None:
        """Nothing held between snapshots: each opens and closes its own connection."""

    async def snapshot(self, targets: Sequence[DropTarget]) -> UsageSnapshot:
        conn = await asyncpg.connect(self._dsn, server_settings={"application_name": APPLICATION_NAME})
        try:
            source, statements = await _statements(conn, sorted({target.table for target in targets}))
            tables = {
                target.table: stat
                for target in targets
                if target.kind is DropKind.TABLE
                and (stat := await _table_counters(conn, target.table)) is not None
            }
            indexes = {
                target.index: stat
                for target in targets
                if target.kind is DropKind.INDEX
                and target.index is not None
                and (stat := await _index_counters(conn, target.index)) is not None
            }
            missing = [target.label for target in targets if not await _exists(conn, target)]
        finally:
            await conn.close()
        return UsageSnapshot(
            engine="postgres",
            taken_at=datetime.now(UTC),
            statements_source=source,
            counters_source=SourceState(name=COUNTERS, available=True),
            statements=statements,
            tables=tables,
            indexes=indexes,
            missing=missing,
        )


async def _statements(conn: asyncpg.Connection, tables: list[str]) -> tuple[SourceState, list[StatementStat]]:
    schema = await conn.fetchval(
        "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace "
        "WHERE e.extname = 'pg_stat_statements'"
    )
    if schema is None:
        return SourceState(name=STATEMENTS, available=False, note=MISSING_EXTENSION), []
    try:
        view = f"{quote_ident(schema)}.pg_stat_statements"
    except ValueError:
        note = f"pg_stat_statements lives in schema {schema!r}, which osctl does not quote"
        return SourceState(name=STATEMENTS, available=False, note=note), []
    try:
        rows = await conn.fetch(
            f"""
            SELECT s.userid, s.queryid, s.toplevel, s.calls, s.query
            FROM {view} AS s
            WHERE s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
              AND s.queryid IS NOT NULL
              AND EXISTS (SELECT 1 FROM unnest($1::text[]) AS t(name)
                          WHERE strpos(lower(s.query), t.name) > 0)
            """,  # noqa: S608 - the view name is quoted; the tables travel as a parameter
            [table.lower() for table in tables],
        )
        info = await conn.fetchrow(
            f"SELECT dealloc, stats_reset FROM {quote_ident(schema)}.pg_stat_statements_info"  # noqa: S608
        )
    except asyncpg.PostgresError as error:
        # Installed but not preloaded, or not readable by this role: said, not taken as "unused".
        return SourceState(
            name=STATEMENTS, available=False, note=f"cannot read pg_stat_statements: {error}"
        ), []
    track = await conn.fetchval("SELECT current_setting('pg_stat_statements.track', true)")
    notes = []
    if track == "none":
        return SourceState(name=STATEMENTS, available=False, note="pg_stat_statements.track is none"), []
    if track == "top":
        notes.append("pg_stat_statements.track is top: statements inside functions are not counted")
    # Entries evicted or reset between the gate and contract lose their counts: the proof says so.
    marks = (
        {}
        if info is None
        else {"evicted entries": str(info["dealloc"]), "reset at": str(info["stats_reset"])}
    )
    statements = [
        StatementStat(
            key=f"{row['userid']}/{row['queryid']}/{'top' if row['toplevel'] else 'nested'}",
            text=row["query"],
            calls=int(row["calls"]),
        )
        for row in rows
    ]
    return SourceState(name=STATEMENTS, available=True, note="; ".join(notes), marks=marks), statements


async def _table_counters(conn: asyncpg.Connection, table: str) -> ObjectStat | None:
    row = await conn.fetchrow(
        "SELECT seq_scan, coalesce(idx_scan, 0) AS idx_scan, n_tup_ins, n_tup_upd, n_tup_del "
        "FROM pg_stat_user_tables WHERE relid = to_regclass($1)",
        quote_ident(table),
    )
    if row is None:
        return None
    return ObjectStat(counters={name: int(row[name]) for name in TABLE_COUNTERS})


async def _index_counters(conn: asyncpg.Connection, index: str) -> ObjectStat | None:
    scans = await conn.fetchval(
        "SELECT idx_scan FROM pg_stat_user_indexes WHERE indexrelid = to_regclass($1)", quote_ident(index)
    )
    return None if scans is None else ObjectStat(counters={"idx_scan": int(scans)})


async def _exists(conn: asyncpg.Connection, target: DropTarget) -> bool:
    if target.kind is DropKind.INDEX and target.index is not None:
        return bool(await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", quote_ident(target.index)))
    if target.kind is DropKind.COLUMN:
        return bool(
            await conn.fetchval(
                "SELECT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass($1) "
                "AND attname = $2 AND attnum > 0 AND NOT attisdropped)",
                quote_ident(target.table),
                target.column,
            )
        )
    return bool(await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", quote_ident(target.table)))
