"""One long-lived connection per source endpoint, opened on first use and dropped after a failure.

A source polled several times a second must not pay a connection set-up per sample, and must not keep
using a connection whose state is unknown after a network error, a cancellation or a timeout: the next
sample opens a new one. (An error the server answered with, a missing table say, leaves a PostgreSQL
connection usable; PyMySQL connections are dropped after any error.)
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import asyncpg
import pymysql
import pymysql.cursors

from adapters.mysql.dsn import MysqlDsn

T = TypeVar("T")

APPLICATION_NAME = "osctl-signals"


class PgSession:
    """An asyncpg connection with a server-side statement_timeout, used by one caller at a time."""

    def __init__(
        self,
        dsn: str,
        *,
        timeout: float,
        application_name: str = APPLICATION_NAME,
        settings: Mapping[str, str] | None = None,
    ) -> None:
        self._dsn = dsn
        self._timeout = timeout
        self._settings = {
            "application_name": application_name,
            "statement_timeout": f"{max(1, math.ceil(timeout * 1000))}ms",
            **(settings or {}),
        }
        self._conn: asyncpg.Connection | None = None
        self._lock = asyncio.Lock()

    async def fetchrow(self, sql: str, *args: Any) -> asyncpg.Record | None:
        async with self._lock:
            conn = await self._connection()
            try:
                record: asyncpg.Record | None = await conn.fetchrow(sql, *args)
            except asyncpg.PostgresError:
                raise  # the server refused the statement; the connection itself is fine
            except BaseException:
                self._discard()
                raise
            return record

    async def fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        async with self._lock:
            conn = await self._connection()
            try:
                records: list[asyncpg.Record] = await conn.fetch(sql, *args)
            except asyncpg.PostgresError:
                raise  # the server refused the statement; the connection itself is fine
            except BaseException:
                self._discard()
                raise
            return records

    async def close(self) -> None:
        async with self._lock:
            conn, self._conn = self._conn, None
            if conn is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(conn.close(), timeout=self._timeout)
                if not conn.is_closed():
                    conn.terminate()

    async def _connection(self) -> asyncpg.Connection:
        if self._conn is not None and not self._conn.is_closed():
            return self._conn
        self._conn = await asyncpg.connect(
            self._dsn,
            timeout=self._timeout,
            server_settings=self._settings,
            # Signal queries are few and fixed; a statement cache would only hold server memory.
            statement_cache_size=0,
        )
        return self._conn

    def _discard(self) -> None:
        """After an error or a cancellation the connection's state is unknown: drop it at once."""
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            conn.terminate()


Cursor = pymysql.cursors.DictCursor
Statements = Callable[[Any], T]  # given a DictCursor, returns what the source needs


class MysqlSession:
    """A PyMySQL connection driven from worker threads (`asyncio.to_thread`), never from the event loop.

    A worker takes the connection for the length of its call and gives it back only when the call
    succeeded. When the awaiting side times out first, the worker still finishes on its own (PyMySQL's
    read timeout bounds it) and either returns a healthy connection or closes a broken one; a later
    sample meanwhile opens its own.
    """

    def __init__(
        self, dsn: str, *, timeout: float, on_connect: Sequence[str] = (), optional: Sequence[str] = ()
    ) -> None:
        self._args = MysqlDsn.parse(dsn).connect_args()
        seconds = max(1, math.ceil(timeout))
        self._args.update(
            connect_timeout=seconds,
            read_timeout=seconds + 1,
            write_timeout=seconds + 1,
            cursorclass=pymysql.cursors.DictCursor,
            program_name=APPLICATION_NAME,
        )
        self._on_connect = tuple(on_connect)  # statements that must succeed
        self._optional = tuple(optional)  # statements that may fail (a variable only one flavour knows)
        self._idle: Any = None  # a pymysql Connection nobody is using
        self._closed = False
        self._lock = threading.Lock()

    async def run(self, statements: Statements[T]) -> T:
        return await asyncio.to_thread(self._call, statements)

    async def close(self) -> None:
        with self._lock:
            self._closed = True
            conn, self._idle = self._idle, None
        if conn is not None:
            await asyncio.to_thread(_close_quietly, conn)

    def _call(self, statements: Statements[T]) -> T:
        with self._lock:
            if self._closed:
                raise RuntimeError("the source is closed")
            conn, self._idle = self._idle, None
        if conn is None:
            conn = self._connect()
        try:
            with conn.cursor() as cursor:
                result = statements(cursor)
        except BaseException:
            _close_quietly(conn)
            raise
        with self._lock:
            if self._idle is None and not self._closed:
                self._idle, conn = conn, None
        if conn is not None:
            _close_quietly(conn)
        return result

    def _connect(self) -> Any:
        conn = pymysql.connect(**self._args)
        try:
            with conn.cursor() as cursor:
                for statement in self._on_connect:
                    cursor.execute(statement)
                for statement in self._optional:
                    with contextlib.suppress(pymysql.MySQLError):
                        cursor.execute(statement)
        except BaseException:
            _close_quietly(conn)
            raise
        return conn


def _close_quietly(conn: Any) -> None:
    with contextlib.suppress(Exception):
        conn.close()
