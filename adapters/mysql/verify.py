"""Is the copy the original? Row counts and a checksum of the shared columns, read in consistent
snapshots, before anything is swapped or dropped.

- pt-osc keeps its copy in sync with triggers, which write both tables in the application's own
  transaction: any consistent snapshot sees the two tables agree. So the key range is split into
  chunks and each chunk is compared in a short snapshot of its own, several at a time (no long
  snapshot holding back purge on a big table).
- gh-ost applies the binary log asynchronously: the snapshot is taken while the original is briefly
  read-locked and gh-ost has caught up with the binary log (see adapters/mysql/copy.py), and the whole
  table is compared in it.

The checksum is the XOR of the first 64 bits of each row's MD5 over its columns (the key included,
so rows are distinct and cannot cancel out), with each value QUOTE()d (NULL apart from 'NULL') and
character data compared as bytes (a collation change must not hide a changed value).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from pymysql.cursors import Cursor

from adapters.mysql.keyset import INTEGER_TYPES, quote

TEXT_TYPES = frozenset(
    {"char", "varchar", "tinytext", "text", "mediumtext", "longtext", "enum", "set", "json"}
)
CHUNK_ROWS = 250_000


@dataclass(frozen=True)
class Column:
    old: str  # name in the original
    new: str  # name in the copy (differs when the change renames it)
    data_type: str


def row_checksum_sql(table: str, columns: Sequence[tuple[str, str]], where: str = "") -> str:
    """`SELECT COUNT(*), <xor of 64-bit row hashes>` over `columns` ((name, DATA_TYPE)) of `table`."""
    parts = []
    for name, data_type in columns:
        value = f"CAST({quote(name)} AS BINARY)" if data_type in TEXT_TYPES else quote(name)
        parts.append(f"QUOTE({value})")
    row = "CONCAT_WS('#', " + ", ".join(parts) + ")"
    digest = f"CAST(CONV(LEFT(MD5({row}), 16), 16, 10) AS UNSIGNED)"
    sql = f"SELECT COUNT(*), COALESCE(BIT_XOR({digest}), 0) FROM {quote(table)}"  # noqa: S608
    return sql + (f" WHERE {where}" if where else "")


@dataclass(frozen=True)
class Range:
    low: int | None  # inclusive; None: unbounded
    high: int | None  # inclusive; None: unbounded

    def where(self, column: str) -> tuple[str, list[int]]:
        clauses, params = [], []
        if self.low is not None:
            clauses.append(f"{quote(column)} >= %s")
            params.append(self.low)
        if self.high is not None:
            clauses.append(f"{quote(column)} <= %s")
            params.append(self.high)
        return " AND ".join(clauses), params


def split_range(low: int, high: int, rows: int, chunk_rows: int = CHUNK_ROWS) -> list[Range]:
    """Ranges covering everything: the first open below, the last open above (rows inserted while
    the comparison runs are compared too)."""
    chunks = max(1, -(-rows // chunk_rows))
    if chunks == 1 or high <= low:
        return [Range(None, None)]
    step = max(1, -(-(high - low + 1) // chunks))
    bounds = list(range(low, high + 1, step))[1:]
    ranges, previous = [], None
    for bound in bounds:
        ranges.append(Range(previous, bound - 1))
        previous = bound
    ranges.append(Range(previous, None))
    return ranges


@dataclass
class Comparison:
    original_rows: int = 0
    copy_rows: int = 0
    mismatched: list[str] = field(default_factory=list)  # ranges whose count or checksum differ
    compared_columns: list[str] = field(default_factory=list)
    skipped_columns: list[str] = field(default_factory=list)  # type changed: not comparable as is

    @property
    def equal(self) -> bool:
        return not self.mismatched and self.original_rows == self.copy_rows


def compare_range(
    cur: Cursor, original: str, copy: str, columns: Sequence[Column], key: str, part: Range, *, snapshot: bool
) -> tuple[int, int, bool]:
    """(original rows, copy rows, equal) for one key range, both read in one consistent snapshot
    (opened here when `snapshot`; else the caller holds one)."""
    key_new = next((column.new for column in columns if column.old == key), key)
    old_where, params = part.where(key)
    new_where, _ = part.where(key_new)
    old_sql = row_checksum_sql(original, [(c.old, c.data_type) for c in columns], old_where)
    new_sql = row_checksum_sql(copy, [(c.new, c.data_type) for c in columns], new_where)
    if snapshot:
        cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        cur.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT")
    try:
        cur.execute(old_sql, params)
        old = cur.fetchone()
        cur.execute(new_sql, params)
        new = cur.fetchone()
    finally:
        if snapshot:
            cur.connection.commit()
    assert old is not None and new is not None
    return int(old[0]), int(new[0]), (int(old[0]), int(old[1])) == (int(new[0]), int(new[1]))


def key_bounds(cur: Cursor, table: str, key: str) -> tuple[int, int, int] | None:
    """(min, max, estimated rows) of an integer key; None for an empty table."""
    cur.execute(f"SELECT MIN({quote(key)}), MAX({quote(key)}) FROM {quote(table)}")  # noqa: S608
    row = cur.fetchone()
    if row is None or row[0] is None:
        return None
    cur.execute(
        "SELECT TABLE_ROWS FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s",
        (table,),
    )
    estimate = cur.fetchone()
    return int(row[0]), int(row[1]), int(estimate[0] or 0) if estimate else 0


def plan_ranges(cur: Cursor, table: str, key: Sequence[tuple[str, str]]) -> list[Range]:
    """Chunks along a single integer primary key; one whole-table range otherwise."""
    if len(key) != 1 or key[0][1] not in INTEGER_TYPES:
        return [Range(None, None)]
    bounds = key_bounds(cur, table, key[0][0])
    if bounds is None:
        return [Range(None, None)]
    low, high, rows = bounds
    return split_range(low, high, rows)
