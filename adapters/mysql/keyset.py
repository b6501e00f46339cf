"""Keyset ranges along a primary key, as MySQL SQL with parameters. Pure: no connection here.

A chunk is the range `after < key <= last`. Composite keys are spelled `a > x OR (a = x AND b > y)`
(with a leading `a >= x`) rather than as row constructors, which MariaDB does not turn into index
ranges. Keys travel as text (a JSON-safe checkpoint) and are turned back into the column's own type
here, so an integer key is compared as an integer and a binary key as bytes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from orchestrator.ports import KeyColumn

INTEGER_TYPES = frozenset({"tinyint", "smallint", "mediumint", "int", "integer", "bigint", "year"})
BINARY_TYPES = frozenset({"binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob"})
SAMPLE_KEYS = 5


def quote(name: str) -> str:
    """Backtick-quote a name read from the catalog (doubling any backtick it holds)."""
    return "`" + name.replace("`", "``") + "`"


def key_param(column: KeyColumn, value: Any) -> Any:
    """A checkpointed key part (text) as the parameter MySQL compares with the column."""
    if column.type in INTEGER_TYPES:
        return int(value)
    if column.type in BINARY_TYPES:
        return bytes.fromhex(value) if isinstance(value, str) else bytes(value)
    return str(value)


def key_text(value: Any) -> str:
    """A key part read from MySQL as text: bytes as hex, times in MySQL's own literal form."""
    if isinstance(value, bytes | bytearray):
        return bytes(value).hex()
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, timedelta):  # PyMySQL reads TIME columns as timedelta
        seconds = int(value.total_seconds())
        sign, seconds = ("-", -seconds) if seconds < 0 else ("", seconds)
        return f"{sign}{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
    return str(value)


@dataclass(frozen=True)
class Keyset:
    table: str  # quoted
    columns: tuple[KeyColumn, ...]

    @property
    def names(self) -> list[str]:
        return [quote(column.name) for column in self.columns]

    def select_list(self) -> str:
        return ", ".join(self.names)

    def order(self, *, descending: bool = False) -> str:
        direction = " DESC" if descending else ""
        return ", ".join(f"{name}{direction}" for name in self.names)

    def params(self, values: Sequence[Any]) -> list[Any]:
        if len(values) != len(self.columns):
            raise ValueError(f"a key of {len(self.columns)} parts was given {len(values)} values")
        return [key_param(column, value) for column, value in zip(self.columns, values, strict=True)]

    def after(self, values: Sequence[Any]) -> tuple[str, list[Any]]:
        """`key > values`."""
        return self._compare(self.params(values), strict=">", last=">", lead=">=")

    def through(self, values: Sequence[Any]) -> tuple[str, list[Any]]:
        """`key <= values`."""
        return self._compare(self.params(values), strict="<", last="<=", lead="<=")

    def range(self, after: Sequence[Any] | None, last: Sequence[Any]) -> tuple[str, list[Any]]:
        """`after < key <= last` (no lower bound when `after` is None)."""
        upper, upper_params = self.through(last)
        if after is None:
            return upper, upper_params
        lower, lower_params = self.after(after)
        return f"{lower} AND {upper}", [*lower_params, *upper_params]

    def _compare(self, values: list[Any], *, strict: str, last: str, lead: str) -> tuple[str, list[Any]]:
        names = self.names

        def nested(position: int) -> tuple[str, list[Any]]:
            name, value = names[position], values[position]
            if position == len(names) - 1:
                return f"{name} {last} %s", [value]
            inner, params = nested(position + 1)
            return f"({name} {strict} %s OR ({name} = %s AND {inner}))", [value, value, *params]

        condition, params = nested(0)
        if len(names) > 1:
            # Redundant, but it hands the range optimizer a plain bound on the key's first column.
            return f"({names[0]} {lead} %s AND {condition})", [values[0], *params]
        return condition, params


@dataclass(frozen=True)
class ChunkStatements:
    """The statements of one backfill (or verification) over a table, built once per work item."""

    keyset: Keyset
    column: str  # quoted
    expression: str  # validated by the planner; '%' doubled for PyMySQL's parameter formatting
    index: str | None  # the index the key is (PRIMARY or a unique one), forced on every statement

    @classmethod
    def build(
        cls,
        table: str,
        column: str,
        expression: str,
        key: Sequence[KeyColumn],
        index: str | None = "PRIMARY",
    ) -> ChunkStatements:
        return cls(Keyset(quote(table), tuple(key)), quote(column), expression.replace("%", "%%"), index)

    def _from(self) -> str:
        if self.index is None:
            return self.keyset.table
        index = "PRIMARY" if self.index == "PRIMARY" else quote(self.index)
        return f"{self.keyset.table} FORCE INDEX ({index})"

    def boundary(self, after: Sequence[Any] | None, offset: int) -> tuple[str, list[Any]]:
        """The key `offset` rows past `after`: the last key of a full chunk."""
        where, params = self.keyset.after(after) if after is not None else ("TRUE", [])
        sql = (
            f"SELECT {self.keyset.select_list()} FROM {self._from()} WHERE {where} "  # noqa: S608
            f"ORDER BY {self.keyset.order()} LIMIT 1 OFFSET %s"
        )
        return sql, [*params, offset]

    def tail(self, after: Sequence[Any] | None) -> tuple[str, list[Any]]:
        """The last key of the table past `after`: the end of a short, final chunk."""
        where, params = self.keyset.after(after) if after is not None else ("TRUE", [])
        sql = (
            f"SELECT {self.keyset.select_list()} FROM {self._from()} WHERE {where} "  # noqa: S608
            f"ORDER BY {self.keyset.order(descending=True)} LIMIT 1"
        )
        return sql, params

    def count(self, after: Sequence[Any] | None, last: Sequence[Any]) -> tuple[str, list[Any]]:
        where, params = self.keyset.range(after, last)
        return f"SELECT COUNT(*) FROM {self._from()} WHERE {where}", params  # noqa: S608

    def _differs(self) -> str:
        # Null-safe: a NULL column differs from a non-NULL value, and NULL equals NULL.
        return f"NOT ({self.column} <=> ({self.expression}))"

    def update(self, after: Sequence[Any] | None, last: Sequence[Any]) -> tuple[str, list[Any]]:
        where, params = self.keyset.range(after, last)
        sql = (
            f"UPDATE {self._from()} SET {self.column} = ({self.expression}) "  # noqa: S608
            f"WHERE {where} AND {self._differs()}"
        )
        return sql, params

    def mismatches(self, after: Sequence[Any] | None, last: Sequence[Any]) -> tuple[str, list[Any]]:
        where, params = self.keyset.range(after, last)
        return f"SELECT COUNT(*) FROM {self._from()} WHERE {where} AND {self._differs()}", params  # noqa: S608

    def samples(self, after: Sequence[Any] | None, last: Sequence[Any]) -> tuple[str, list[Any]]:
        where, params = self.keyset.range(after, last)
        sql = (
            f"SELECT {self.keyset.select_list()} FROM {self._from()} "  # noqa: S608
            f"WHERE {where} AND {self._differs()} ORDER BY {self.keyset.order()} LIMIT {SAMPLE_KEYS}"
        )
        return sql, params
