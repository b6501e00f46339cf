"""MySQL/MariaDB usage statistics for the contract safety proof, from performance_schema:
statement digests (events_statements_summary_by_digest: DIGEST_TEXT, COUNT_STAR, LAST_SEEN) and
table and index I/O (table_io_waits_summary_by_table, table_io_waits_summary_by_index_usage).

Digests are those run with the target database as the default schema, and whose text names a target
table (a superset; the engine decides on the parse tree). With performance_schema off, or the
digest consumer or table I/O instrument disabled, the snapshot says so rather than reading as unused.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import pymysql
from pymysql.cursors import Cursor

from adapters.mysql.dsn import MysqlDsn
from orchestrator.domain.identifiers import check_identifier
from orchestrator.domain.usage import (
    DropKind,
    DropTarget,
    ObjectStat,
    SourceState,
    StatementStat,
    UsageSnapshot,
)

STATEMENTS = "performance_schema statement digests"
COUNTERS = "performance_schema table and index I/O"
PERFORMANCE_SCHEMA_OFF = (
    "performance_schema is OFF on this server (set performance_schema=ON in its configuration and "
    "restart): nothing that used the objects can be seen"
)


class MysqlUsageReader:
    def __init__(self, dsn: str) -> None:
        self._dsn = MysqlDsn.parse(dsn)

    async def close(self) -> None:
        """Nothing held between snapshots: each opens and closes its own connection."""

    async def snapshot(self, targets: Sequence[DropTarget]) -> UsageSnapshot:
        for target in targets:  # names reach SQL only as parameters, but refuse nonsense early
            for name in (target.table, target.column, target.index):
                if name is not None:
                    check_identifier(name)
        return await asyncio.to_thread(self._snapshot, list(targets))

    def _snapshot(self, targets: list[DropTarget]) -> UsageSnapshot:
        conn = pymysql.connect(**self._dsn.connect_args())
        try:
            with conn.cursor() as cur:
                enabled = _scalar(cur, "SELECT @@performance_schema")
                if not enabled:
                    off = SourceState(name=STATEMENTS, available=False, note=PERFORMANCE_SCHEMA_OFF)
                    return UsageSnapshot(
                        engine="mysql",
                        taken_at=datetime.now(UTC),
                        statements_source=off,
                        counters_source=off.model_copy(update={"name": COUNTERS}),
                        missing=[target.label for target in targets if not _exists(cur, target)],
                    )
                statements_source, statements = _statements(cur, sorted({target.table for target in targets}))
                counters_source = _counters_source(cur)
                tables: dict[str, ObjectStat] = {}
                indexes: dict[str, ObjectStat] = {}
                if counters_source.available:
                    for target in targets:
                        if target.kind is DropKind.TABLE:
                            tables[target.table] = _table_io(cur, target.table)
                        elif target.kind is DropKind.INDEX and target.index is not None:
                            indexes[target.index] = _index_io(cur, target.table, target.index)
                missing = [target.label for target in targets if not _exists(cur, target)]
        finally:
            conn.close()
        return UsageSnapshot(
            engine="mysql",
            taken_at=datetime.now(UTC),
            statements_source=statements_source,
            counters_source=counters_source,
            statements=statements,
            tables=tables,
            indexes=indexes,
            missing=missing,
        )


def _statements(cur: Cursor, tables: list[str]) -> tuple[SourceState, list[StatementStat]]:
    consumer = _scalar(
        cur, "SELECT ENABLED FROM performance_schema.setup_consumers WHERE NAME = 'statements_digest'"
    )
    if consumer != "YES":
        note = "the statements_digest consumer is disabled (performance_schema.setup_consumers)"
        return SourceState(name=STATEMENTS, available=False, note=note), []
    # One LOCATE per table, each with its placeholder: nothing but %s reaches the text.
    matches = " OR ".join(["LOCATE(%s, LOWER(DIGEST_TEXT)) > 0"] * len(tables)) or "FALSE"
    sql = (
        "SELECT DIGEST, DIGEST_TEXT, COUNT_STAR, UNIX_TIMESTAMP(LAST_SEEN) "
        "FROM performance_schema.events_statements_summary_by_digest "
        "WHERE SCHEMA_NAME = DATABASE() AND DIGEST IS NOT NULL AND (" + matches + ")"
    )
    cur.execute(sql, [table.lower() for table in tables])
    statements = [
        StatementStat(
            key=str(digest),
            text=str(text),
            calls=int(count),
            last_seen=datetime.fromtimestamp(float(seen), UTC) if seen is not None else None,
        )
        for digest, text, count, seen in cur.fetchall()
    ]
    cur.execute("SHOW GLOBAL STATUS LIKE 'Performance_schema_digest_lost'")
    lost = cur.fetchone()
    marks = {"digests lost (table full)": str(lost[1])} if lost else {}
    held = _scalar(cur, "SELECT COUNT(*) FROM performance_schema.events_statements_summary_by_digest")
    size = _scalar(cur, "SELECT @@performance_schema_digests_size")
    note = ""
    if size is not None and int(size) > 0 and int(held or 0) >= int(size):
        # A statement first run from now on has no row to be counted in: a use could go unseen.
        note = (
            f"the digest table is full ({held} of performance_schema_digests_size={size}): statements "
            "not seen before are not counted; TRUNCATE "
            "performance_schema.events_statements_summary_by_digest before the gate (or raise the size) "
            "for a whole proof"
        )
    return SourceState(name=STATEMENTS, available=True, note=note, marks=marks), statements


def _counters_source(cur: Cursor) -> SourceState:
    instrument = _scalar(
        cur,
        "SELECT ENABLED FROM performance_schema.setup_instruments WHERE NAME = 'wait/io/table/sql/handler'",
    )
    if instrument != "YES":
        note = "the wait/io/table/sql/handler instrument is disabled (performance_schema.setup_instruments)"
        return SourceState(name=COUNTERS, available=False, note=note)
    return SourceState(name=COUNTERS, available=True)


def _table_io(cur: Cursor, table: str) -> ObjectStat:
    cur.execute(
        "SELECT COALESCE(SUM(COUNT_READ), 0), COALESCE(SUM(COUNT_WRITE), 0) "
        "FROM performance_schema.table_io_waits_summary_by_table "
        "WHERE OBJECT_SCHEMA = DATABASE() AND OBJECT_NAME = %s",
        (table,),
    )
    reads, writes = cur.fetchone() or (0, 0)
    return ObjectStat(counters={"rows_read": int(reads), "rows_written": int(writes)})


def _index_io(cur: Cursor, table: str, index: str) -> ObjectStat:
    reads = _scalar(
        cur,
        "SELECT COALESCE(SUM(COUNT_READ), 0) FROM performance_schema.table_io_waits_summary_by_index_usage "
        "WHERE OBJECT_SCHEMA = DATABASE() AND OBJECT_NAME = %s AND INDEX_NAME = %s",
        (table, index),
    )
    return ObjectStat(counters={"rows_read_through_index": int(reads or 0)})


def _exists(cur: Cursor, target: DropTarget) -> bool:
    if target.kind is DropKind.COLUMN:
        sql = (
            "SELECT COUNT(*) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() "
            "AND TABLE_NAME = %s AND COLUMN_NAME = %s"
        )
        return bool(_scalar(cur, sql, (target.table, target.column)))
    if target.kind is DropKind.INDEX:
        sql = (
            "SELECT COUNT(*) FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() "
            "AND TABLE_NAME = %s AND INDEX_NAME = %s"
        )
        return bool(_scalar(cur, sql, (target.table, target.index)))
    sql = "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s"
    return bool(_scalar(cur, sql, (target.table,)))


def _scalar(cur: Cursor, sql: str, args: Sequence[Any] | None = None) -> Any:
    cur.execute(sql, args)
    row = cur.fetchone()
    return row[0] if row else None
