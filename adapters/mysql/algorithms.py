"""Which online algorithm a server can run a change with, and the ALTER statements the planner writes.

Pure functions, no I/O. The planner writes each statement for a current server (MariaDB 10.11, MySQL
8.0.29+); the target parses it back (`parse_alter`) and re-renders it with the best algorithm the
connected server supports for that change (`online_algorithm`), so one plan runs everywhere it can.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum


class Flavour(StrEnum):
    MARIADB = "mariadb"
    MYSQL = "mysql"


@dataclass(frozen=True, order=True)
class ServerVersion:
    flavour: Flavour
    major: int
    minor: int
    patch: int

    def at_least(self, major: int, minor: int, patch: int = 0) -> bool:
        return (self.major, self.minor, self.patch) >= (major, minor, patch)

    def __str__(self) -> str:
        name = "MariaDB" if self.flavour is Flavour.MARIADB else "MySQL"
        return f"{name} {self.major}.{self.minor}.{self.patch}"


_VERSION = re.compile(r"(\d+)\.(\d+)\.(\d+)")


def parse_server_version(text: str) -> ServerVersion:
    """`SELECT VERSION()`: '10.11.19-MariaDB-0+deb12u1-log', '8.0.36-0ubuntu0.22.04.1', '5.7.44-log'.

    MariaDB behind some proxies and old clients reports '5.5.5-10.11.2-MariaDB': the real version
    follows the fake 5.5.5 prefix.
    """
    flavour = Flavour.MARIADB if "mariadb" in text.lower() else Flavour.MYSQL
    if flavour is Flavour.MARIADB and text.startswith("5.5.5-"):
        text = text.removeprefix("5.5.5-")
    match = _VERSION.match(text.strip())
    if match is None:
        raise ValueError(f"cannot read a server version from {text!r}")
    major, minor, patch = (int(part) for part in match.groups())
    return ServerVersion(flavour, major, minor, patch)


class Change(StrEnum):
    ADD_COLUMN = "ADD COLUMN"
    DROP_COLUMN = "DROP COLUMN"
    ADD_INDEX = "ADD INDEX"
    ADD_UNIQUE_INDEX = "ADD UNIQUE INDEX"
    DROP_INDEX = "DROP INDEX"


class Algorithm(StrEnum):
    INSTANT = "INSTANT"  # catalog only: no rebuild, no copy, replicas apply it at once
    INPLACE = "INPLACE"  # built inside the engine while reads and writes go on (LOCK=NONE)


# The clause each algorithm is written with. LOCK=NONE makes the server refuse, rather than quietly
# block writes, when it cannot let DML run during the change. INSTANT takes no LOCK clause: MySQL
# rejects any LOCK other than DEFAULT with it.
CLAUSES = {Algorithm.INSTANT: "ALGORITHM=INSTANT", Algorithm.INPLACE: "ALGORITHM=INPLACE, LOCK=NONE"}


def online_algorithm(change: Change, version: ServerVersion) -> Algorithm | None:
    """The least disruptive algorithm `version` runs `change` with; None when only a table copy can.

    - ADD COLUMN: INSTANT on MariaDB 10.3.7+ (MDEV-11369; the ALGORITHM=INSTANT syntax came in
      10.3.7) and MySQL 8.0.12+; before that an online rebuild (INPLACE, LOCK=NONE).
    - DROP COLUMN: INSTANT on MariaDB 10.4+ (MDEV-15562) and MySQL 8.0.29+; before that INPLACE.
    - ADD [UNIQUE] INDEX, DROP INDEX: INPLACE, LOCK=NONE (MySQL 5.6+, MariaDB 10.0+); neither
      flavour drops an index with INSTANT (MariaDB says "Try ALGORITHM=NOCOPY").
    Servers before MySQL 5.6 and MariaDB 10.0 have no online DDL at all.

    A table can still refuse INSTANT where its version allows it (a FULLTEXT index, ROW_FORMAT=
    COMPRESSED, MySQL's 64 row versions): the target reports that refusal as needing a copy tool.
    """
    if version.flavour is Flavour.MARIADB:
        if not version.at_least(10, 0):
            return None
        instant_add, instant_drop = version.at_least(10, 3, 7), version.at_least(10, 4)
    else:
        if not version.at_least(5, 6):
            return None
        instant_add, instant_drop = version.at_least(8, 0, 12), version.at_least(8, 0, 29)
    if change is Change.ADD_COLUMN:
        return Algorithm.INSTANT if instant_add else Algorithm.INPLACE
    if change is Change.DROP_COLUMN:
        return Algorithm.INSTANT if instant_drop else Algorithm.INPLACE
    return Algorithm.INPLACE


# -- the statements the planner writes ----------------------------------------------------------------

_NAME = r"`(?P<{}>[a-z_][a-z0-9_$]{{0,62}})`"
_ALTER = re.compile(
    r"ALTER TABLE " + _NAME.format("table") + r" (?P<change>ADD COLUMN|DROP COLUMN|ADD UNIQUE INDEX"
    r"|ADD INDEX|DROP INDEX) " + _NAME.format("name") + r"(?P<body>.*?)"
    r", ALGORITHM=(?P<algorithm>INSTANT|INPLACE)(?:, LOCK=NONE)?",
    re.DOTALL,
)


@dataclass(frozen=True)
class AlterStatement:
    """`ALTER TABLE `t` <change> `name`<body>, <algorithm clause>`: one change to one table."""

    table: str
    change: Change
    name: str  # the column or index the change adds or drops
    body: str  # what follows the name: a column definition or an index's column list
    algorithm: Algorithm

    def render(self, algorithm: Algorithm | None = None) -> str:
        clause = CLAUSES[algorithm or self.algorithm]
        return f"ALTER TABLE `{self.table}` {self.change.value} `{self.name}`{self.body}, {clause}"

    @property
    def adds(self) -> bool:
        return self.change in (Change.ADD_COLUMN, Change.ADD_INDEX, Change.ADD_UNIQUE_INDEX)

    @property
    def on_index(self) -> bool:
        return self.change in (Change.ADD_INDEX, Change.ADD_UNIQUE_INDEX, Change.DROP_INDEX)


def parse_alter(sql: str) -> AlterStatement | None:
    """The statement back from the planner's text; None for anything else (run as written)."""
    match = _ALTER.fullmatch(sql.strip())
    if match is None:
        return None
    return AlterStatement(
        table=match["table"],
        change=Change(match["change"]),
        name=match["name"],
        body=match["body"],
        algorithm=Algorithm(match["algorithm"]),
    )
