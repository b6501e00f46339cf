"""A small thread-safe pool of PyMySQL connections, each set up for lock-safe work.

PyMySQL blocks, so the target calls into the pool from worker threads. Connections are in autocommit
mode (an idle one never sits in a transaction holding metadata locks), bound their lock waits, and
read with READ COMMITTED so a backfill chunk locks only the rows it changes.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import TypeVar

import pymysql
from pymysql.connections import Connection
from pymysql.cursors import Cursor

from adapters.mysql.algorithms import Flavour, ServerVersion, parse_server_version
from adapters.mysql.dsn import MysqlDsn

T = TypeVar("T")

SESSION_LOCK_WAIT_SECONDS = 5  # metadata-lock wait for everything that is not a DDL step
ROW_LOCK_WAIT_SECONDS = 2  # row-lock wait of a backfill chunk before it gives way and is retried


def error_code(error: pymysql.MySQLError) -> tuple[int, str]:
    """The server's (or client's, 2000+) error number and message."""
    args = error.args
    if len(args) >= 2 and isinstance(args[0], int):
        return args[0], str(args[1])
    return 0, str(error)


class ConnectionPool:
    """At most `size` idle connections, shared by worker threads; more are opened when all are busy."""

    def __init__(self, dsn: MysqlDsn, size: int) -> None:
        self._dsn = dsn
        self._size = size
        self._idle: list[Connection] = []
        self._lock = threading.Lock()
        self._closed = False
        self.version: ServerVersion | None = None

    def _connect(self) -> Connection:
        conn = pymysql.connect(**self._dsn.connect_args())
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT VERSION(), @@SESSION.sql_mode, @@SESSION.binlog_format")
                row = cur.fetchone()
                assert row is not None
                version = parse_server_version(str(row[0]))
                # Literals and PyMySQL's own escaping both assume backslash escapes.
                modes = [mode for mode in str(row[1]).split(",") if mode and mode != "NO_BACKSLASH_ESCAPES"]
                cur.execute(
                    "SET SESSION sql_mode = %s, lock_wait_timeout = %s, innodb_lock_wait_timeout = %s",
                    (",".join(modes), SESSION_LOCK_WAIT_SECONDS, ROW_LOCK_WAIT_SECONDS),
                )
                if str(row[2]).upper() != "STATEMENT":
                    # Chunks lock only the rows they change: no gap locks in the application's way.
                    # (Statement-based binary logging refuses InnoDB writes under READ COMMITTED.)
                    cur.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
                if version.flavour is Flavour.MYSQL and version.at_least(8, 0):
                    # MySQL 8 caches information_schema table statistics for a day by default.
                    cur.execute("SET SESSION information_schema_stats_expiry = 0")
        except BaseException:
            conn.close()
            raise
        self.version = version
        return conn

    def _take(self) -> Connection:
        while True:
            with self._lock:
                if self._closed:
                    raise RuntimeError("the MySQL target is closed")
                conn = self._idle.pop() if self._idle else None
            if conn is None:
                return self._connect()
            try:
                conn.ping(reconnect=False)  # the server may have closed it (wait_timeout, restart)
                return conn
            except pymysql.MySQLError:
                with contextlib.suppress(Exception):
                    conn.close()

    def _give_back(self, conn: Connection, *, healthy: bool) -> None:
        with self._lock:
            if healthy and conn.open and not self._closed and len(self._idle) < self._size:
                self._idle.append(conn)
                return
        with contextlib.suppress(Exception):
            conn.close()

    @contextlib.contextmanager
    def connection(self) -> Iterator[Connection]:
        conn = self._take()
        healthy = False
        try:
            yield conn
            healthy = True
        except BaseException as error:
            cause = error if isinstance(error, pymysql.MySQLError) else error.__cause__
            # A server error (below 2000) leaves the session usable once rolled back; a client-side
            # one (lost connection, protocol) may not, so that connection is dropped.
            if not isinstance(cause, pymysql.MySQLError) or 0 < error_code(cause)[0] < 2000:
                try:
                    conn.rollback()
                    healthy = True
                except pymysql.MySQLError:
                    healthy = False
            raise
        finally:
            self._give_back(conn, healthy=healthy)

    def run(self, work: Callable[[Cursor], T]) -> T:
        with self.connection() as conn, conn.cursor() as cur:
            return work(cur)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for conn in idle:
            with contextlib.suppress(Exception):
                conn.close()
