"""The catalog reads and small DDL a table copy needs, as blocking functions over a PyMySQL cursor (the
target runs them on its worker threads): the live facts a tool choice needs, what a copy tool left
behind (found in information_schema, never taken from the tool's own advice), the swap, the drops."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass

import pymysql
from pymysql.cursors import Cursor

from adapters import ghost, ptosc
from adapters.mysql.keyset import quote
from adapters.mysql.pool import SESSION_LOCK_WAIT_SECONDS, error_code
from orchestrator.domain.copy_tools import TableFacts

LOCK_CODES = frozenset({1205, 1213})  # lock wait timeout, deadlock


@dataclass(frozen=True)
class Leftovers:
    triggers: tuple[str, ...] = ()  # pt-osc's, on the table or on its renamed old copy
    tables: tuple[str, ...] = ()  # _<t>_new, _<t>_gho, _<t>_ghc

    def __bool__(self) -> bool:
        return bool(self.triggers or self.tables)

    def describe(self) -> str:
        parts = [f"trigger {name}" for name in self.triggers] + [f"table {name}" for name in self.tables]
        return ", ".join(parts) or "nothing"


def _rows(cur: Cursor, sql: str, args: Sequence[object] = ()) -> list[tuple[object, ...]]:
    cur.execute(sql, tuple(args))
    return list(cur.fetchall())


def database(cur: Cursor) -> str:
    return str(_rows(cur, "SELECT DATABASE()")[0][0])


def existing_tables(cur: Cursor, names: Sequence[str]) -> set[str]:
    if not names:
        return set()
    marks = ", ".join(["%s"] * len(names))
    rows = _rows(
        cur,
        f"SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME IN ({marks})",  # noqa: S608
        names,
    )
    return {str(row[0]) for row in rows}


def find_leftovers(cur: Cursor, table: str) -> Leftovers:
    """pt-osc's triggers (by its name prefix, on the table or its old copy) and the tools' work tables."""
    db = database(cur)
    prefix = ptosc.trigger_prefix(db, table)
    triggers = _rows(
        cur,
        "SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = DATABASE() "
        "AND EVENT_OBJECT_TABLE IN (%s, %s, %s) AND TRIGGER_NAME IN (%s, %s, %s)",
        (
            table,
            ptosc.old_table_name(table),
            ptosc.new_table_name(table),
            *(f"{prefix}_{e}" for e in ptosc.TRIGGER_EVENTS),
        ),
    )
    work_tables = [
        ptosc.new_table_name(table),
        ghost.ghost_table_name(table),
        ghost.changelog_table_name(table),
    ]
    found = existing_tables(cur, work_tables)
    return Leftovers(
        triggers=tuple(sorted(str(row[0]) for row in triggers)),
        tables=tuple(name for name in work_tables if name in found),
    )


def run_ddl(cur: Cursor, sql: str, lock_wait_seconds: int) -> bool:
    """One DDL statement waiting at most `lock_wait_seconds` for its metadata lock; False when the lock
    was not granted (nothing changed), True when it ran."""
    cur.execute("SET SESSION lock_wait_timeout = %s", (max(1, lock_wait_seconds),))
    try:
        cur.execute(sql)
        return True
    except pymysql.MySQLError as error:
        if error_code(error)[0] in LOCK_CODES:
            return False
        raise
    finally:
        with contextlib.suppress(pymysql.MySQLError):
            cur.execute("SET SESSION lock_wait_timeout = %s", (SESSION_LOCK_WAIT_SECONDS,))


def drop_leftovers(cur: Cursor, leftovers: Leftovers, lock_wait_seconds: int) -> bool:
    """Drop triggers first (they write the copy), then the work tables. Idempotent (IF EXISTS); False
    when a lock was not granted in time (what was dropped stays dropped)."""
    for name in leftovers.triggers:
        if not run_ddl(cur, f"DROP TRIGGER IF EXISTS {quote(name)}", lock_wait_seconds):
            return False
    for name in leftovers.tables:
        if not run_ddl(cur, f"DROP TABLE IF EXISTS {quote(name)}", lock_wait_seconds):
            return False
    return True


def table_facts(cur: Cursor, table: str) -> TableFacts:
    """Foreign keys either way, triggers (pt-osc's own left aside) and the NOT NULL unique keys."""
    if not existing_tables(cur, [table]):
        return TableFacts(exists=False)
    own_fks = _rows(
        cur,
        "SELECT COUNT(*) FROM information_schema.REFERENTIAL_CONSTRAINTS "
        "WHERE CONSTRAINT_SCHEMA = DATABASE() AND TABLE_NAME = %s",
        (table,),
    )
    referencing = _rows(
        cur,
        "SELECT DISTINCT TABLE_NAME FROM information_schema.REFERENTIAL_CONSTRAINTS "
        "WHERE UNIQUE_CONSTRAINT_SCHEMA = DATABASE() AND REFERENCED_TABLE_NAME = %s AND TABLE_NAME <> %s",
        (table, table),
    )
    prefix = ptosc.trigger_prefix(database(cur), table)
    triggers = _rows(
        cur,
        "SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE EVENT_OBJECT_SCHEMA = DATABASE() "
        "AND EVENT_OBJECT_TABLE = %s ORDER BY TRIGGER_NAME",
        (table,),
    )
    keys = _rows(
        cur,
        "SELECT s.INDEX_NAME, s.COLUMN_NAME, c.IS_NULLABLE FROM information_schema.STATISTICS s "
        "JOIN information_schema.COLUMNS c ON c.TABLE_SCHEMA = s.TABLE_SCHEMA "
        "AND c.TABLE_NAME = s.TABLE_NAME AND c.COLUMN_NAME = s.COLUMN_NAME "
        "WHERE s.TABLE_SCHEMA = DATABASE() AND s.TABLE_NAME = %s AND s.NON_UNIQUE = 0 "
        "ORDER BY s.INDEX_NAME, s.SEQ_IN_INDEX",
        (table,),
    )
    columns: dict[str, list[str]] = {}
    nullable: set[str] = set()
    for index, column, is_nullable in keys:
        columns.setdefault(str(index), []).append(str(column).lower())
        if is_nullable == "YES":
            nullable.add(str(index))
    version = _rows(cur, "SELECT VERSION()", ())
    return TableFacts(
        server_version=str(version[0][0]) if version else "",
        references_other_tables=int(own_fks[0][0]) > 0,  # type: ignore[call-overload]
        referenced_by=tuple(str(row[0]) for row in referencing),
        triggers=tuple(str(row[0]) for row in triggers if not str(row[0]).startswith(prefix)),
        unique_keys={name: tuple(cols) for name, cols in columns.items() if name not in nullable},
        nullable_unique_keys={name: tuple(cols) for name, cols in columns.items() if name in nullable},
    )


def columns_of(cur: Cursor, table: str) -> list[tuple[str, str, str]]:
    """(name, comparable type: COLUMN_TYPE and character set, DATA_TYPE) in table order; generated
    columns left out (the tools do not copy them: the server computes them)."""
    rows = _rows(
        cur,
        "SELECT COLUMN_NAME, CONCAT(COLUMN_TYPE, ' ', COALESCE(CHARACTER_SET_NAME, '')), LOWER(DATA_TYPE) "
        "FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s "
        "AND COALESCE(GENERATION_EXPRESSION, '') = '' ORDER BY ORDINAL_POSITION",
        (table,),
    )
    return [(str(name), str(type_), str(data_type)) for name, type_, data_type in rows]


def primary_key(cur: Cursor, table: str) -> list[tuple[str, str]]:
    rows = _rows(
        cur,
        "SELECT s.COLUMN_NAME, LOWER(c.DATA_TYPE) FROM information_schema.STATISTICS s "
        "JOIN information_schema.COLUMNS c ON c.TABLE_SCHEMA = s.TABLE_SCHEMA "
        "AND c.TABLE_NAME = s.TABLE_NAME AND c.COLUMN_NAME = s.COLUMN_NAME "
        "WHERE s.TABLE_SCHEMA = DATABASE() AND s.TABLE_NAME = %s AND s.INDEX_NAME = 'PRIMARY' "
        "ORDER BY s.SEQ_IN_INDEX",
        (table,),
    )
    return [(str(name), str(data_type)) for name, data_type in rows]


def duplicate_example(cur: Cursor, table: str, columns: Sequence[str]) -> tuple[object, ...] | None:
    """One set of values that more than one row holds in `columns` (rows with a NULL in them aside: a
    unique key lets those repeat), or None."""
    names = ", ".join(quote(column) for column in columns)
    not_null = " AND ".join(f"{quote(column)} IS NOT NULL" for column in columns)
    rows = _rows(
        cur,
        f"SELECT {names} FROM {quote(table)} WHERE {not_null} GROUP BY {names} HAVING COUNT(*) > 1 LIMIT 1",  # noqa: S608
    )
    return rows[0] if rows else None


def column_names(cur: Cursor, table: str) -> set[str]:
    return {name.lower() for name, _, _ in columns_of(cur, table)}


def swap_tables(cur: Cursor, table: str, copy: str, old: str, lock_wait_seconds: int) -> bool:
    """`RENAME TABLE t TO old, copy TO t`: atomic, one metadata lock. False when it was not granted."""
    return run_ddl(
        cur,
        f"RENAME TABLE {quote(table)} TO {quote(old)}, {quote(copy)} TO {quote(table)}",
        lock_wait_seconds,
    )


def performance_schema_mdl(cur: Cursor) -> bool:
    """Whether the server instruments metadata locks (gh-ost's cut-over check needs it)."""
    try:
        if str(_rows(cur, "SELECT @@performance_schema")[0][0]) not in ("1", "ON"):
            return False
        rows = _rows(
            cur,
            "SELECT ENABLED FROM performance_schema.setup_instruments WHERE NAME = 'wait/lock/metadata/sql/mdl'",
        )
    except pymysql.MySQLError:
        return False
    return bool(rows) and str(rows[0][0]) == "YES"


def master_position(cur: Cursor) -> tuple[str, int] | None:
    """SHOW MASTER STATUS's (File, Position); None without a binary log."""
    cur.execute("SHOW MASTER STATUS")
    row = cur.fetchone()
    return (str(row[0]), int(row[1])) if row else None
