"""MySQL spelling: backtick-quoted identifiers, literals, and the column types MySQL understands."""

from __future__ import annotations

import math
import re

from orchestrator.domain.errors import SpecError
from orchestrator.domain.identifiers import check_identifier

# Types only PostgreSQL has. Refused at plan time with a hint, rather than by the server mid-expand.
_POSTGRES_ONLY = {
    "timestamptz": "timestamp or datetime(6)",
    "timetz": "time",
    "jsonb": "json",
    "bytea": "blob or varbinary(n)",
    "serial": "an auto_increment integer column",
    "bigserial": "an auto_increment integer column",
    "smallserial": "an auto_increment integer column",
    "interval": "an integer number of seconds",
    "inet": "varchar(45) or varbinary(16)",
    "cidr": "varchar(49)",
    "macaddr": "char(17)",
    "money": "decimal(19,4)",
    "tsvector": "a FULLTEXT index on a text column",
    "tsquery": "a FULLTEXT index on a text column",
    "citext": "varchar(n) with a case-insensitive collation",
    "hstore": "json",
    "xml": "text",
    "oid": "bigint unsigned",
}


def quote_name(name: str) -> str:
    """Backtick-quote an identifier after re-checking it (the rules leave no backtick to escape)."""
    return f"`{check_identifier(name)}`"


def literal(value: str | int | float | bool | None) -> str:
    """A constant as MySQL reads it with backslash escapes on (the target's sessions ensure that)."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            raise SpecError([("column.default", "MySQL has no NaN or infinity to use as a default")])
        return repr(value)
    escaped = value.replace("\\", "\\\\").replace("'", "''").replace("\x00", "\\0")
    return f"'{escaped}'"


def check_type(type_name: str) -> str:
    """The (already validated) type name, refused when it is PostgreSQL's spelling."""
    base = re.split(r"[ (\[]", type_name, maxsplit=1)[0]
    if base in _POSTGRES_ONLY:
        raise SpecError(
            [("column.type", f"{base} is a PostgreSQL type; on MySQL use {_POSTGRES_ONLY[base]}")]
        )
    if type_name.endswith("[]"):
        raise SpecError([("column.type", "MySQL has no array types; use json")])
    if "time zone" in type_name:
        raise SpecError(
            [("column.type", "MySQL timestamps take no time zone clause: timestamp is stored in UTC")]
        )
    return type_name
