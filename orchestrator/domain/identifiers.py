"""SQL identifiers and type names: validated on the way in, quoted on the way out, never pasted raw."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator

# Unquoted-identifier rules shared by PostgreSQL and MySQL, limited to PostgreSQL's 63-byte NAMEDATALEN.
# Anything stranger (spaces, quotes, mixed case) is refused rather than quoted, so the names a DBA sees
# in the plan are the names in the catalog.
_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_$]{0,62}$")

# A column type as a DBA writes it: `timestamptz`, `varchar(255)`, `numeric(12, 2)`, `double precision`,
# `timestamp with time zone`, `text[]`. Words after the first come from the few that multi-word SQL type
# names use, so a constraint (`int unique`, `int references t`, `text default x`) cannot ride along.
_TYPE_NAME = re.compile(
    r"^[a-z_][a-z0-9_]*( (precision|varying|with|without|time|zone)){0,3}"
    r"( ?\(\d{1,5}( ?, ?\d{1,5})?\))?( (with|without) time zone)?(\[\]){0,3}$"
)


def check_identifier(value: str) -> str:
    if not _IDENTIFIER.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a valid identifier: use 1-63 lower-case letters, digits, '_' or '$', "
            "starting with a letter or '_'"
        )
    return value


def check_type_name(value: str) -> str:
    normalised = " ".join(value.strip().lower().split())
    if not _TYPE_NAME.fullmatch(normalised):
        raise ValueError(
            f"{value!r} is not a column type this planner accepts: write a type name such as "
            "'bigint', 'varchar(255)', 'numeric(12,2)', 'timestamp with time zone' or 'text[]'"
        )
    return normalised


Identifier = Annotated[str, AfterValidator(check_identifier)]
TypeName = Annotated[str, AfterValidator(check_type_name)]


def quote_ident(name: str) -> str:
    """Double-quote an identifier for PostgreSQL after re-checking it (defence in depth)."""
    check_identifier(name)
    return '"' + name.replace('"', '""') + '"'


def quote_literal(value: str | int | float | bool | None) -> str:
    """Render a constant as a PostgreSQL literal. Strings use E'' escaping so backslashes stay data."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | float):
        if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
            # NaN and the infinities have no bare literal form; PostgreSQL reads them from strings.
            return {"nan": "'NaN'", "inf": "'Infinity'", "-inf": "'-Infinity'"}[repr(value)]
        return repr(value)
    escaped = value.replace("\\", "\\\\").replace("'", "''")
    return f"E'{escaped}'"
