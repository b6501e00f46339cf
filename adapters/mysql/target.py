"""MysqlTarget: the TargetDatabase port over PyMySQL, for MySQL and MariaDB.

PyMySQL blocks, so every call runs on a worker thread (`asyncio.to_thread`) with a connection from a
small thread-safe pool (adapters/mysql/pool.py).
Every DDL statement waits at most lock_timeout (rounded up to whole seconds: MySQL's unit) for its
metadata lock; a lock wait timeout or deadlock is reported as `lock_timed_out` so the runner backs off
and retries. Statements are re-rendered with the best online algorithm the server has for the change.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import pymysql
import structlog
from pymysql.cursors import Cursor

from adapters.mysql.algorithms import (
    AlterStatement,
    Change,
    ServerVersion,
    online_algorithm,
    parse_alter,
)
from adapters.mysql.copy import CopyDriver
from adapters.mysql.copy_state import CopySettings
from adapters.mysql.dsn import MysqlDsn
from adapters.mysql.keyset import SAMPLE_KEYS, ChunkStatements, key_text, quote
from adapters.mysql.pool import SESSION_LOCK_WAIT_SECONDS, ConnectionPool, error_code
from orchestrator.domain.errors import StepFailedError
from orchestrator.domain.identifiers import check_identifier
from orchestrator.domain.plan import BackfillWork, Step
from orchestrator.domain.schema import ColumnInfo, IndexInfo, TableInfo
from orchestrator.ports import Attempt, ChunkResult, KeyColumn, StepControls, VerifyResult

log = structlog.get_logger(__name__)

T = TypeVar("T")

ER_LOCK_WAIT_TIMEOUT, ER_LOCK_DEADLOCK = 1205, 1213
LOCK_CODES = frozenset({ER_LOCK_WAIT_TIMEOUT, ER_LOCK_DEADLOCK})
# ER_ALTER_OPERATION_NOT_SUPPORTED, ..._REASON, and MySQL 8.0.29+'s ER_INNODB_MAX_ROW_VERSION (64 instant
# changes): the server cannot make this change on this table with the algorithm asked for.
REFUSED_ONLINE_CODES = frozenset({1845, 1846, 4092})
# What a replayed step meets when its first run committed but was not checkpointed.
ALREADY_DONE = {
    Change.ADD_COLUMN: 1060,  # ER_DUP_FIELDNAME
    Change.DROP_COLUMN: 1091,  # ER_CANT_DROP_FIELD_OR_KEY
    Change.ADD_INDEX: 1061,  # ER_DUP_KEYNAME
    Change.ADD_UNIQUE_INDEX: 1061,
    Change.DROP_INDEX: 1091,
}
COPY_TOOL_HINT = (
    "it needs a copy tool: write it as an alter_table operation (strategy auto, pt_osc or gh_ost), "
    "which runs pt-online-schema-change or gh-ost"
)

CHUNK_ATTEMPTS = 5
# A table without statistics is counted up to this many rows: enough to tell small from large.
ROW_COUNT_BOUND = 10_000_000
CHUNK_RETRY_BASE_SECONDS = 0.05


def lock_wait_seconds(lock_timeout_ms: int) -> int:
    """MySQL's lock_wait_timeout (and MariaDB's WAIT) count whole seconds: round up, at least 1."""
    return max(1, math.ceil(lock_timeout_ms / 1000))


def _describe(error: pymysql.MySQLError) -> str:
    code, message = error_code(error)
    return f"MySQL error {code}: {message}"


class MysqlTarget:
    """TargetDatabase for MySQL 5.6+/8.x and MariaDB 10.x/11.x: direct online DDL and keyset backfills."""

    def __init__(self, dsn: str, *, pool_size: int = 2, copy_settings: CopySettings | None = None) -> None:
        self._dsn = MysqlDsn.parse(dsn)
        self._pool = ConnectionPool(self._dsn, pool_size)
        self._statements: dict[tuple[BackfillWork, tuple[KeyColumn, ...]], ChunkStatements] = {}
        self._walk_indexes: dict[tuple[str, tuple[KeyColumn, ...]], str] = {}
        self._controls: StepControls | None = None
        # Copy tools (alter_table): settings from the environment (GH_OST_BIN...) unless given.
        self._copy = CopyDriver(
            self._dsn,
            self._call,
            copy_settings or CopySettings.from_env(self._dsn),
            lambda: self._controls,
            self.server_version,
        )

    def attach_controls(self, controls: StepControls | None) -> None:
        """The runner's stop signal, throttle and progress sink, consulted while a copy tool runs."""
        self._controls = controls

    def __repr__(self) -> str:  # never the password
        return f"MysqlTarget({self._dsn.user}@{self._dsn.host}:{self._dsn.port}/{self._dsn.database})"

    async def _call(self, work: Callable[[Cursor], T]) -> T:
        return await asyncio.to_thread(self._pool.run, work)

    async def close(self) -> None:
        await asyncio.to_thread(self._pool.close)

    async def server_version(self) -> ServerVersion:
        """The flavour and version of the server (read once per target, on its first connection)."""
        if self._pool.version is None:
            await self._call(lambda cur: None)
        assert self._pool.version is not None
        return self._pool.version

    # -- DDL ----------------------------------------------------------------------------------------

    async def execute_step(
        self, step: Step, *, lock_timeout_ms: int, statement_timeout_ms: int | None = None
    ) -> Attempt:
        # statement_timeout_ms is PostgreSQL's bound on strong-lock statements; MySQL's online DDL
        # runs under lock_wait_timeout only (a max_statement_time here is not wired yet).
        if step.copy_work is not None:
            return await self._copy.execute(step, lock_timeout_ms=lock_timeout_ms)
        if step.sql is None:
            return Attempt(lock_timed_out=False, seconds=0.0)
        version = await self.server_version()
        statement = parse_alter(step.sql)
        sql = step.sql
        if statement is not None:
            algorithm = online_algorithm(statement.change, version)
            if algorithm is None:
                raise StepFailedError(
                    step.id, step.description, f"{version} has no online DDL at all; {COPY_TOOL_HINT}"
                )
            if algorithm is not statement.algorithm:
                log.info(
                    "mysql_algorithm_adapted",
                    step_id=step.id,
                    planned=statement.algorithm.value,
                    chosen=algorithm.value,
                    server=str(version),
                )
            sql = statement.render(algorithm)
        seconds = lock_wait_seconds(lock_timeout_ms)
        return await self._call(lambda cur: self._run_ddl(cur, step, statement, sql, seconds, version))

    def _run_ddl(
        self,
        cur: Cursor,
        step: Step,
        statement: AlterStatement | None,
        sql: str,
        seconds: int,
        version: ServerVersion,
    ) -> Attempt:
        cur.execute("SET SESSION lock_wait_timeout = %s", (seconds,))
        try:
            if statement is not None and _already_applied(cur, statement):
                log.info("mysql_step_already_applied", step_id=step.id)
                return Attempt(lock_timed_out=False, seconds=0.0)
            started = time.monotonic()
            try:
                cur.execute(sql)
            except pymysql.MySQLError as error:
                elapsed = time.monotonic() - started
                code, message = error_code(error)
                if code in LOCK_CODES:
                    return Attempt(lock_timed_out=True, seconds=elapsed)
                if statement is not None and code == ALREADY_DONE[statement.change]:
                    return Attempt(lock_timed_out=False, seconds=elapsed)
                if code in REFUSED_ONLINE_CODES:
                    cause = (
                        f"MySQL error {code}: {message}. {version} cannot make this change online on "
                        f"this table; {COPY_TOOL_HINT}"
                    )
                    raise StepFailedError(step.id, step.description, cause) from error
                raise StepFailedError(step.id, step.description, _describe(error)) from error
            return Attempt(lock_timed_out=False, seconds=time.monotonic() - started)
        finally:
            with contextlib.suppress(pymysql.MySQLError):
                cur.execute("SET SESSION lock_wait_timeout = %s", (SESSION_LOCK_WAIT_SECONDS,))

    # -- backfill -----------------------------------------------------------------------------------

    async def backfill_key(self, work: BackfillWork) -> list[KeyColumn]:
        found = await self._call(lambda cur: _walk_key(cur, work.table))
        if found is None:
            raise StepFailedError(
                f"backfill.{work.table}.{work.column}",
                f"backfill {work.table}.{work.column}",
                f"table {work.table} has no primary key, nor a unique index over NOT NULL columns, "
                "to walk in chunks; add one first",
            )
        index, key = found
        self._walk_indexes[(work.table, tuple(key))] = index
        return key

    async def estimate_rows(self, table: str) -> int:
        def read(cur: Cursor) -> int:
            cur.execute(
                "SELECT TABLE_ROWS FROM information_schema.TABLES "
                "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s",
                (table,),
            )
            row = cur.fetchone()
            estimate = int(row[0] or 0) if row else 0
            if estimate <= 0:  # no statistics yet (a new or just loaded table): count
                cur.execute(f"SELECT COUNT(*) FROM {quote(check_identifier(table))}")  # noqa: S608
                counted = cur.fetchone()
                estimate = int(counted[0]) if counted else 0
            return estimate

        return await self._call(read)

    def _chunk_statements(self, work: BackfillWork, key: Sequence[KeyColumn]) -> ChunkStatements:
        cache_key = (work, tuple(key))
        statements = self._statements.get(cache_key)
        if statements is None:
            check_identifier(work.table)
            check_identifier(work.column)
            # The index the key was found on is forced on every statement (None: the optimizer picks).
            index = self._walk_indexes.get((work.table, tuple(key)))
            statements = ChunkStatements.build(work.table, work.column, work.expression, key, index)
            self._statements[cache_key] = statements
        return statements

    async def backfill_chunk(
        self, work: BackfillWork, key: Sequence[KeyColumn], after: list[Any] | None, limit: int
    ) -> ChunkResult:
        statements = self._chunk_statements(work, key)

        def chunk(cur: Cursor) -> ChunkResult:
            for attempt in range(1, CHUNK_ATTEMPTS + 1):
                try:
                    return _backfill_once(cur, statements, after, limit)
                except pymysql.MySQLError as error:
                    with contextlib.suppress(pymysql.MySQLError):
                        cur.connection.rollback()
                    code, _ = error_code(error)
                    if code not in LOCK_CODES or attempt == CHUNK_ATTEMPTS:
                        raise StepFailedError(
                            f"backfill.{work.table}.{work.column}",
                            f"backfill {work.table}.{work.column}",
                            _describe(error),
                        ) from error
                    # The chunk was rolled back whole: give the application's transaction the row.
                    log.warning("mysql_backfill_chunk_retry", attempt=attempt, code=code, after=after)
                    time.sleep(CHUNK_RETRY_BASE_SECONDS * 2**attempt)
            raise AssertionError("unreachable")

        return await self._call(chunk)

    async def verify_chunk(
        self, work: BackfillWork, key: Sequence[KeyColumn], after: list[Any] | None, limit: int
    ) -> VerifyResult:
        statements = self._chunk_statements(work, key)

        def verify(cur: Cursor) -> VerifyResult:
            try:
                bounds = _chunk_bounds(cur, statements, after, limit)
                if bounds is None:
                    return VerifyResult(high_water=None, rows_scanned=0, mismatches=0, sample_keys=[])
                last, scanned = bounds
                sql, params = statements.samples(after, last)
                cur.execute(sql, params)
                samples = [[key_text(value) for value in row] for row in cur.fetchall()]
                mismatches = len(samples)
                if mismatches >= SAMPLE_KEYS:  # there may be more than the samples show
                    sql, params = statements.mismatches(after, last)
                    cur.execute(sql, params)
                    mismatches = _scalar(cur)
                return VerifyResult(
                    high_water=last, rows_scanned=scanned, mismatches=mismatches, sample_keys=samples
                )
            except pymysql.MySQLError as error:
                raise StepFailedError(
                    f"verify.{work.table}.{work.column}",
                    f"verify {work.table}.{work.column}",
                    _describe(error),
                ) from error

        return await self._call(verify)

    # -- preflight ----------------------------------------------------------------------------------

    async def describe_table(self, table: str) -> TableInfo | None:
        def read(cur: Cursor) -> TableInfo | None:
            cur.execute(
                "SELECT TABLE_ROWS, COALESCE(DATA_LENGTH, 0) + COALESCE(INDEX_LENGTH, 0), VERSION() "
                "FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s",
                (table,),
            )
            found = cur.fetchone()
            if found is None:
                return None
            rows, size, version = int(found[0] or 0), int(found[1] or 0), str(found[2])
            if rows == 0:  # no statistics yet (a new or just loaded table): count, up to a bound
                cur.execute(
                    f"SELECT COUNT(*) FROM (SELECT 1 FROM {quote(check_identifier(table))} "  # noqa: S608
                    f"LIMIT {ROW_COUNT_BOUND}) AS counted"
                )
                rows = _scalar(cur)
            cur.execute(
                "SELECT COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE = 'YES' FROM information_schema.COLUMNS "
                "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s ORDER BY ORDINAL_POSITION",
                (table,),
            )
            columns = {
                str(name): ColumnInfo(name=str(name), type=str(type_), nullable=bool(nullable))
                for name, type_, nullable in cur.fetchall()
            }
            cur.execute(
                "SELECT INDEX_NAME, NON_UNIQUE, COLUMN_NAME FROM information_schema.STATISTICS "
                "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s ORDER BY INDEX_NAME, SEQ_IN_INDEX",
                (table,),
            )
            index_columns: dict[str, list[str]] = {}
            unique: dict[str, bool] = {}
            for name, non_unique, column in cur.fetchall():
                index_columns.setdefault(str(name), []).append(str(column))
                unique[str(name)] = not int(non_unique)
            walk = _walk_key(cur, table)
            return TableInfo(
                name=table,
                columns=columns,
                # MySQL has no half-built indexes to report: a failed build leaves nothing behind.
                indexes={
                    name: IndexInfo(name=name, columns=cols, valid=True, unique=unique[name])
                    for name, cols in index_columns.items()
                },
                primary_key=index_columns.get("PRIMARY", []),
                walk_key=[column.name for column in walk[1]] if walk else [],
                estimated_rows=rows,
                estimated_bytes=size,
                server_version=version,
            )

        return await self._call(read)

    async def relation_exists(self, name: str) -> bool:
        """A table or view of that name, or an index of that name on any table of the database.

        MySQL index names are only unique per table; the port asks by name alone, so any match counts.
        """

        def read(cur: Cursor) -> bool:
            cur.execute(
                "SELECT EXISTS (SELECT 1 FROM information_schema.TABLES "
                "               WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s) "
                "    OR EXISTS (SELECT 1 FROM information_schema.STATISTICS "
                "               WHERE TABLE_SCHEMA = DATABASE() AND INDEX_NAME = %s)",
                (name, name),
            )
            return bool(_scalar(cur))

        return await self._call(read)

    async def check_expression(self, table: str, expression: str) -> str | None:
        def explain(cur: Cursor) -> str | None:
            try:
                # Planned, never run. Without CLIENT.MULTI_STATEMENTS a second statement cannot ride
                # along; without parameters PyMySQL leaves '%' in the expression alone.
                cur.execute(f"EXPLAIN SELECT ({expression}) FROM {quote(check_identifier(table))}")  # noqa: S608
                cur.fetchall()
            except pymysql.MySQLError as error:
                return _describe(error)
            return None

        return await self._call(explain)


def _scalar(cur: Cursor) -> int:
    row = cur.fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def _walk_key(cur: Cursor, table: str) -> tuple[str, list[KeyColumn]] | None:
    """The index a backfill walks and its columns in order: the primary key, else the narrowest
    unique index over whole NOT NULL columns (a nullable, prefix or functional one could skip rows or
    visit some twice). None when the table has neither (or does not exist)."""
    cur.execute(
        """
        SELECT s.INDEX_NAME, s.COLUMN_NAME, LOWER(c.DATA_TYPE), s.SUB_PART, c.IS_NULLABLE
        FROM information_schema.STATISTICS AS s
        LEFT JOIN information_schema.COLUMNS AS c
          ON c.TABLE_SCHEMA = s.TABLE_SCHEMA AND c.TABLE_NAME = s.TABLE_NAME
         AND c.COLUMN_NAME = s.COLUMN_NAME
        WHERE s.TABLE_SCHEMA = DATABASE() AND s.TABLE_NAME = %s AND s.NON_UNIQUE = 0
        ORDER BY s.INDEX_NAME, s.SEQ_IN_INDEX
        """,
        (table,),
    )
    indexes: dict[str, list[KeyColumn]] = {}
    unusable: set[str] = set()
    for index, column, data_type, sub_part, nullable in cur.fetchall():
        name = str(index)
        if column is None or data_type is None or sub_part is not None or nullable != "NO":
            unusable.add(name)
        else:
            indexes.setdefault(name, []).append(KeyColumn(str(column), str(data_type)))
    candidates = sorted(
        (name != "PRIMARY", len(columns), name, columns)
        for name, columns in indexes.items()
        if name not in unusable
    )
    if not candidates:
        return None
    _, _, name, columns = candidates[0]
    return name, columns


def _already_applied(cur: Cursor, statement: AlterStatement) -> bool:
    """Whether the catalog already shows the change (a replay after a crash before the checkpoint)."""
    if statement.on_index:
        cur.execute(
            "SELECT COUNT(*) FROM information_schema.STATISTICS "
            "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s AND INDEX_NAME = %s",
            (statement.table, statement.name),
        )
    else:
        cur.execute(
            "SELECT COUNT(*) FROM information_schema.COLUMNS "
            "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s AND COLUMN_NAME = %s",
            (statement.table, statement.name),
        )
    exists = _scalar(cur) > 0
    return exists if statement.adds else not exists


def _chunk_bounds(
    cur: Cursor, statements: ChunkStatements, after: list[Any] | None, limit: int
) -> tuple[list[str], int] | None:
    """The last key of the next `limit` rows past `after` and how many rows the range holds."""
    sql, params = statements.boundary(after, max(limit, 1) - 1)
    cur.execute(sql, params)
    row = cur.fetchone()
    if row is not None:
        return [key_text(value) for value in row], max(limit, 1)
    sql, params = statements.tail(after)  # fewer than `limit` rows are left
    cur.execute(sql, params)
    row = cur.fetchone()
    if row is None:
        return None
    last = [key_text(value) for value in row]
    sql, params = statements.count(after, last)
    cur.execute(sql, params)
    return last, _scalar(cur)


def _backfill_once(
    cur: Cursor, statements: ChunkStatements, after: list[Any] | None, limit: int
) -> ChunkResult:
    """One short READ COMMITTED transaction: find the range's end, update the rows that differ."""
    cur.connection.begin()
    bounds = _chunk_bounds(cur, statements, after, limit)
    if bounds is None:
        cur.connection.commit()
        return ChunkResult(high_water=None, rows_scanned=0, rows_updated=0)
    last, scanned = bounds
    sql, params = statements.update(after, last)
    updated = cur.execute(sql, params)
    cur.connection.commit()
    return ChunkResult(high_water=last, rows_scanned=scanned, rows_updated=int(updated))
