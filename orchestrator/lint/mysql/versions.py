"""How InnoDB runs each kind of ALTER on each MySQL and MariaDB release line: a pure table.

Sources: the MySQL 5.7 and 8.0 reference manuals' "Online DDL Operations" tables and MariaDB's
"InnoDB Online DDL Operations with the INSTANT / NOCOPY / INPLACE Alter Algorithm" pages. Each
row reads across the release lines; a server version uses the newest line at or below it.

- MySQL 8.0 (8.0.12 to 8.0.28): INSTANT ADD COLUMN, only as the last column.
- MySQL 8.0.29+: INSTANT ADD COLUMN anywhere and INSTANT DROP COLUMN.
- MariaDB 10.3: INSTANT ADD COLUMN as the last column.
- MariaDB 10.4: INSTANT DROP COLUMN and column reordering, so ADD COLUMN ... FIRST/AFTER too.
- MariaDB 10.5: the RENAME COLUMN and RENAME INDEX syntax (10.5.2).
- MariaDB 10.11: as 10.5 for everything in this table; the default, as the servers osctl is tested on.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import IntEnum, StrEnum


class Algorithm(IntEnum):
    """Ordered from least to most disruptive: a statement runs as its most disruptive clause."""

    INSTANT = 0  # metadata only
    INPLACE = 1  # no table rebuild; concurrent reads and writes
    REBUILD = 2  # the table is rebuilt in place; concurrent reads and writes, replicas lag
    SHARED = 3  # in place, but LOCK=SHARED at best: writes wait for the whole operation
    COPY = 4  # a copy of the table; writes wait for the whole operation
    UNSUPPORTED = 5  # the server rejects the statement


class Change(StrEnum):
    ADD_COLUMN = "add column (last)"
    ADD_COLUMN_POSITIONED = "add column FIRST/AFTER"
    ADD_AUTO_INCREMENT_COLUMN = "add AUTO_INCREMENT column"
    ADD_VIRTUAL_COLUMN = "add VIRTUAL generated column"
    ADD_STORED_COLUMN = "add STORED generated column"
    DROP_COLUMN = "drop column"
    RENAME_COLUMN = "RENAME COLUMN"
    MODIFY_COLUMN = "redefine column (MODIFY/CHANGE)"
    SET_DEFAULT = "set/drop column default"
    ADD_INDEX = "add index"
    ADD_FULLTEXT_INDEX = "add FULLTEXT index"
    ADD_SPATIAL_INDEX = "add SPATIAL index"
    DROP_INDEX = "drop index"
    RENAME_INDEX = "RENAME INDEX"
    INDEX_VISIBILITY = "index VISIBLE/INVISIBLE"
    ADD_PRIMARY_KEY = "add primary key"
    DROP_PRIMARY_KEY = "drop primary key"
    ADD_FOREIGN_KEY = "add foreign key (foreign_key_checks=1)"
    ADD_FOREIGN_KEY_UNCHECKED = "add foreign key (foreign_key_checks=0)"
    DROP_FOREIGN_KEY = "drop foreign key"
    ADD_CHECK = "add CHECK constraint"
    DROP_CHECK = "drop CHECK constraint"
    CONVERT_CHARSET = "CONVERT TO CHARACTER SET"
    REBUILD_TABLE = "rebuild (ENGINE=, FORCE, ROW_FORMAT=, KEY_BLOCK_SIZE=, OPTIMIZE TABLE)"
    RENAME_TABLE = "rename table"
    TABLE_OPTION = "table option (AUTO_INCREMENT=, COMMENT=, default charset)"


RELEASE_LINES = (
    "mysql-5.7",
    "mysql-8.0",
    "mysql-8.0.29",
    "mariadb-10.3",
    "mariadb-10.4",
    "mariadb-10.5",
    "mariadb-10.11",
)

_I, _P, _R, _S, _C, _X = (
    Algorithm.INSTANT,
    Algorithm.INPLACE,
    Algorithm.REBUILD,
    Algorithm.SHARED,
    Algorithm.COPY,
    Algorithm.UNSUPPORTED,
)

# Columns follow RELEASE_LINES:  5.7 8.0 8.0.29 | M10.3 M10.4 M10.5 M10.11
GRID: dict[Change, tuple[Algorithm, ...]] = {
    Change.ADD_COLUMN: (_R, _I, _I, _I, _I, _I, _I),
    Change.ADD_COLUMN_POSITIONED: (_R, _R, _I, _R, _I, _I, _I),
    Change.ADD_AUTO_INCREMENT_COLUMN: (_S, _S, _S, _S, _S, _S, _S),
    Change.ADD_VIRTUAL_COLUMN: (_P, _I, _I, _P, _P, _P, _P),
    Change.ADD_STORED_COLUMN: (_C, _C, _C, _C, _C, _C, _C),
    Change.DROP_COLUMN: (_R, _R, _I, _R, _I, _I, _I),
    Change.RENAME_COLUMN: (_X, _P, _I, _X, _X, _I, _I),
    # Without the old definition this is the worst case: a type change copies the table. Only
    # nullability changing rebuilds in place; only the default or an appended ENUM value is instant.
    Change.MODIFY_COLUMN: (_C, _C, _C, _C, _C, _C, _C),
    Change.SET_DEFAULT: (_P, _I, _I, _I, _I, _I, _I),
    Change.ADD_INDEX: (_P, _P, _P, _P, _P, _P, _P),
    Change.ADD_FULLTEXT_INDEX: (_S, _S, _S, _S, _S, _S, _S),
    Change.ADD_SPATIAL_INDEX: (_S, _S, _S, _S, _S, _S, _S),
    Change.DROP_INDEX: (_P, _P, _P, _P, _P, _P, _P),
    Change.RENAME_INDEX: (_P, _P, _P, _X, _X, _P, _P),
    Change.INDEX_VISIBILITY: (_X, _P, _P, _X, _X, _X, _X),
    Change.ADD_PRIMARY_KEY: (_R, _R, _R, _R, _R, _R, _R),
    Change.DROP_PRIMARY_KEY: (_C, _C, _C, _C, _C, _C, _C),
    Change.ADD_FOREIGN_KEY: (_C, _C, _C, _C, _C, _C, _C),
    Change.ADD_FOREIGN_KEY_UNCHECKED: (_P, _P, _P, _P, _P, _P, _P),
    Change.DROP_FOREIGN_KEY: (_P, _P, _P, _P, _P, _P, _P),
    # MySQL 5.7 parses CHECK and ignores it.
    Change.ADD_CHECK: (_I, _C, _C, _C, _C, _C, _C),
    Change.DROP_CHECK: (_I, _P, _P, _P, _P, _P, _P),
    Change.CONVERT_CHARSET: (_C, _C, _C, _C, _C, _C, _C),
    Change.REBUILD_TABLE: (_R, _R, _R, _R, _R, _R, _R),
    Change.RENAME_TABLE: (_I, _I, _I, _I, _I, _I, _I),
    Change.TABLE_OPTION: (_P, _P, _P, _P, _P, _P, _P),
}

# Changes whose real algorithm depends on the definition they replace, which the SQL does not show.
UNCERTAIN = frozenset({Change.MODIFY_COLUMN})


@dataclass(frozen=True)
class ServerVersion:
    flavor: str  # "mysql" or "mariadb"
    numbers: tuple[int, int, int]
    precise: bool = True  # False when given without a patch level ("8.0"): shown as given

    @property
    def release_line(self) -> str:
        major, minor, patch = self.numbers
        if self.flavor == "mysql":
            if (major, minor) < (8, 0):
                return "mysql-5.7"
            return "mysql-8.0.29" if (major, minor, patch) >= (8, 0, 29) else "mysql-8.0"
        if (major, minor) >= (10, 11):
            return "mariadb-10.11"
        if (major, minor) >= (10, 5):
            return "mariadb-10.5"
        return "mariadb-10.4" if (major, minor) >= (10, 4) else "mariadb-10.3"

    @property
    def supports_instant_clause(self) -> bool:
        return self.release_line != "mysql-5.7"

    def __str__(self) -> str:
        name = "MySQL" if self.flavor == "mysql" else "MariaDB"
        shown = self.numbers if self.precise else self.numbers[:2]
        return f"{name} {'.'.join(str(part) for part in shown)}"


DEFAULT_SERVER_VERSION = "mariadb-10.11"
_VERSION = re.compile(r"^(?:(mysql|mariadb)[- ]?)?(\d+)\.(\d+)(?:\.(\d+))?(.*)$", re.IGNORECASE)


def parse_server_version(text: str) -> ServerVersion:
    """`8.0.35`, `mysql-8.0.29`, `10.11.6-MariaDB-1:10.11.6+maria~deb12`, `mariadb-10.6`, `5.7`.

    Without a flavour, a major version of 10 or more is MariaDB (MySQL went from 5.7 to 8.0)."""
    match = _VERSION.match(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not a server version such as 8.0.35, 10.11 or mariadb-10.6")
    flavor_text, major, minor, patch, rest = match.groups()
    numbers = (int(major), int(minor), int(patch or 0))
    if flavor_text:
        flavor = flavor_text.lower()
    else:
        flavor = "mariadb" if numbers[0] >= 10 or "mariadb" in rest.lower() else "mysql"
    oldest = (5, 7, 0) if flavor == "mysql" else (10, 3, 0)
    if (
        numbers < oldest
        or (flavor == "mysql" and numbers[0] >= 10)
        or (flavor == "mariadb" and numbers[0] < 10)
    ):
        raise ValueError(f"{text!r}: osctl knows {', '.join(RELEASE_LINES)} and later releases")
    return ServerVersion(flavor, numbers, precise=patch is not None)


def algorithm_for(change: Change, version: ServerVersion) -> Algorithm:
    return GRID[change][RELEASE_LINES.index(version.release_line)]
