"""`mysql://user:password@host:port/database?options` into PyMySQL's keyword arguments.

The password is kept out of every repr and message: it reaches PyMySQL as a parameter and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote

SCHEMES = ("mysql", "mariadb", "mysql+pymysql", "mariadb+pymysql")
DEFAULT_PORT = 3306


@dataclass(frozen=True)
class MysqlDsn:
    host: str
    port: int
    user: str
    database: str
    password: str = field(default="", repr=False)
    unix_socket: str | None = None
    connect_timeout: int = 10
    # `?replicas=host:port,host:port`: the replicas a copy tool watches for lag (never connected to here).
    replicas: tuple[tuple[str, int], ...] = ()

    @classmethod
    def parse(cls, dsn: str) -> MysqlDsn:
        """Parse on the text, not with urlsplit: a password may hold '/', '?', '#' or '@'."""
        scheme, separator, rest = dsn.partition("://")
        if not separator or scheme.lower() not in SCHEMES:
            raise ValueError("a MySQL DSN looks like mysql://user:password@host:port/database")
        credentials, at, location = rest.rpartition("@")
        user, _, password = credentials.partition(":") if at else ("", "", "")
        location, _, query = location.partition("?")
        hostport, _, database = location.partition("/")
        host, colon, port = hostport.rpartition(":") if not hostport.startswith("[") else _bracketed(hostport)
        if not colon:
            host, port = hostport, ""
        options = dict(parse_qsl(query))
        database = unquote(database)
        if not database:
            raise ValueError("a MySQL DSN must name a database: mysql://user:password@host:port/database")
        try:
            number = int(port) if port else DEFAULT_PORT
            timeout = int(options.get("connect_timeout", "10"))
        except ValueError:
            raise ValueError("the port and connect_timeout of a MySQL DSN must be numbers") from None
        return cls(
            host=unquote(host) or "127.0.0.1",
            port=number,
            user=unquote(user),
            password=unquote(password),
            database=database,
            unix_socket=options.get("unix_socket"),
            connect_timeout=timeout,
            replicas=_replicas(options.get("replicas", "")),
        )

    def connect_args(self) -> dict[str, Any]:
        args: dict[str, Any] = {
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "password": self.password,
            "database": self.database,
            "charset": "utf8mb4",
            "connect_timeout": self.connect_timeout,
            # Every statement commits on its own unless a transaction is opened explicitly: an idle
            # pooled connection must never sit in a transaction holding metadata locks.
            "autocommit": True,
        }
        if self.unix_socket:
            args["unix_socket"] = self.unix_socket
        return args

    def with_database(self, database: str) -> MysqlDsn:
        return MysqlDsn(
            host=self.host,
            port=self.port,
            user=self.user,
            password=self.password,
            database=database,
            unix_socket=self.unix_socket,
            connect_timeout=self.connect_timeout,
            replicas=self.replicas,
        )


def _replicas(text: str) -> tuple[tuple[str, int], ...]:
    """`h1:3306,h2` -> (('h1', 3306), ('h2', 3306))."""
    found = []
    for part in filter(None, (item.strip() for item in text.split(","))):
        host, colon, port = part.rpartition(":")
        if not colon:
            host, port = part, ""
        try:
            found.append((host, int(port) if port else DEFAULT_PORT))
        except ValueError:
            raise ValueError(f"replica {part!r} in the DSN is not host[:port]") from None
    return tuple(found)


def _bracketed(hostport: str) -> tuple[str, str, str]:
    """`[::1]:3306` -> ('::1', ':', '3306')."""
    host, _, port = hostport[1:].partition("]")
    return host, (":" if port.startswith(":") else ""), port[1:]
