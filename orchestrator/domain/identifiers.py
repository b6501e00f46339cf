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
# `timestamp with time zone`, `text[]`. No punctuation that could end the statement.
_TYPE_NAME = re.compile(
    r"^[a-z_][a-z0-9_]*( [a-z_][a-z0-9_]*){0,3}( ?\(\d{1,5}( ?, ?\d{1,5})?\))?(\[\]){0,3}$"
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
        if isinstance(value, float) and value != value:  # NaN has no literal form
            return "'NaN'"
        return repr(value)
    escaped = value.replace("\\", "\\\\").replace("'", "''")
    return f"E'{escaped}'"
