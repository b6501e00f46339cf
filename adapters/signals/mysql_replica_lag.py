"""MySQL/MariaDB replica lag: a heartbeat row for the seconds, SHOW REPLICA STATUS for the threads.

Seconds_Behind_Master has one-second resolution and jumps to tens of seconds during one large
transaction; a heartbeat row rewritten on the primary and read on the replica gives sub-second lag that
stays right while the primary is idle. Like the PostgreSQL source, each sample writes one beat and then
reads the replica (no background task), and `HeartbeatTracker` measures on the primary's clock alone.
Without replay positions here, the figure is the age of the oldest beat the replica misses: while the
primary is busy it trails the true lag by at most the spacing of beats (the poll interval).

A replication thread that is not running (stopped, or an IO thread still connecting) gives no value,
with the reason as the error ('replication SQL thread stopped'): a stopped replica would otherwise
look like a replica with a constant, small lag, or none at all, and must hold work, never pass it.

PyMySQL blocks, so every round trip runs in a worker thread (`MysqlSession`). The heartbeat table,
`osctl_heartbeat(id INT PRIMARY KEY, beat DATETIME(6))` in the DSN's database unless told otherwise, is
created on the primary on first use. The heartbeat connection uses UTC (`time_zone = '+00:00'`) so a
daylight-saving change never moves a beat.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pymysql

from adapters.mysql.dsn import MysqlDsn
from adapters.signals.base import DEFAULT_TIMEOUT, Clock, GuardedSource, SignalReadError
from adapters.signals.connections import MysqlSession
from adapters.signals.heartbeat import FIRST_SYNC_SECONDS, HeartbeatTracker, NotReplicatedYet, measure
from orchestrator.domain.identifiers import check_identifier
from orchestrator.domain.throttle import Sample

DEFAULT_TABLE = "osctl_heartbeat"
ER_NO_SUCH_TABLE = 1146
ER_PARSE_ERROR = 1064


def qualified_name(table: str) -> str:
    """`table` or `database.table`, each part a plain identifier, backtick-quoted."""
    parts = table.split(".")
    if len(parts) > 2:
        raise ValueError(f"{table!r}: a heartbeat table is `table` or `database.table`")
    return ".".join(f"`{check_identifier(part)}`" for part in parts)


def _epoch(value: Any) -> float:
    if not isinstance(value, datetime):
        raise SignalReadError(f"the heartbeat holds {type(value).__name__}, not a DATETIME")
    return value.replace(tzinfo=UTC).timestamp()


@dataclass(frozen=True)
class MysqlBeat:
    at: float  # the primary's NOW(6), epoch seconds
    sent: float  # time.monotonic() just before the beat was sent


class MysqlHeartbeat:
    """Writes the primary's NOW(6) into the heartbeat row, creating the table when it is missing.

    Two statements (read NOW(6), then upsert that value) rather than INSERT ... RETURNING, which only
    MariaDB has; the beat is committed a round trip after its time, which errs towards more lag.
    """

    def __init__(
        self, dsn: str, *, table: str = DEFAULT_TABLE, row_id: int = 1, timeout: float = DEFAULT_TIMEOUT
    ) -> None:
        self.table = table
        self._name = qualified_name(table)
        self._row_id = int(row_id)
        self._session = MysqlSession(dsn, timeout=timeout, on_connect=["SET time_zone = '+00:00'"])

    async def beat(self) -> MysqlBeat:
        sent = time.monotonic()
        at = await self._session.run(self._beat)
        return MysqlBeat(at=at, sent=sent)

    async def close(self) -> None:
        await self._session.close()

    def _beat(self, cursor: Any) -> float:
        cursor.execute("SELECT NOW(6) AS beat")
        beat = cursor.fetchone()["beat"]
        upsert = (
            f"INSERT INTO {self._name} (id, beat) VALUES (%s, %s) "  # noqa: S608 - checked identifiers
            "ON DUPLICATE KEY UPDATE beat = VALUES(beat)"
        )
        try:
            cursor.execute(upsert, (self._row_id, beat))
        except pymysql.err.ProgrammingError as error:
            if error.args[0] != ER_NO_SUCH_TABLE:
                raise
            cursor.execute(
                f"CREATE TABLE IF NOT EXISTS {self._name} "
                "(id INT NOT NULL PRIMARY KEY, beat DATETIME(6) NOT NULL) ENGINE=InnoDB"
            )
            cursor.execute(upsert, (self._row_id, beat))
        return _epoch(beat)


class ReplicationStopped(SignalReadError):
    """A replication thread is not running: no lag figure, the reason instead (hold, never pass)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(reason)
        self.detail = detail


@dataclass(frozen=True)
class ReplicaStatus:
    threads_error: str | None  # why replication is not running, None when both threads run
    detail: str  # Seconds_Behind_Master and the last error, for people
    beat: float | None


def _field(status: Mapping[str, Any], suffix: str) -> Any:
    """MariaDB and MySQL before 8.0.22 say Slave_*, MySQL 8.0.22+ says Replica_* (and Source_*)."""
    for prefix in ("Replica_", "Slave_"):
        if prefix + suffix in status:
            return status[prefix + suffix]
    return None


def threads_error(statuses: Sequence[Mapping[str, Any]]) -> str | None:
    """'replication SQL thread stopped' and the like, or None when every channel replicates."""
    if not statuses:
        return "not a replica (SHOW REPLICA STATUS is empty)"
    problems: list[str] = []
    for status in statuses:
        io, sql = _field(status, "IO_Running"), _field(status, "SQL_Running")
        if sql != "Yes":
            problems.append("replication SQL thread stopped")
        if io == "Connecting":
            problems.append("replication IO thread connecting")
        elif io != "Yes":
            problems.append("replication IO thread stopped")
    return "; ".join(dict.fromkeys(problems)) or None


def status_detail(statuses: Sequence[Mapping[str, Any]]) -> str:
    notes: list[str] = []
    for status in statuses:
        behind = status.get("Seconds_Behind_Master", status.get("Seconds_Behind_Source"))
        notes.append(f"Seconds_Behind_Master={'NULL' if behind is None else behind}")
        for key in ("Last_SQL_Error", "Last_IO_Error"):
            if status.get(key):
                notes.append(f"{key}: {' '.join(str(status[key]).split())[:200]}")
    return ", ".join(notes)


class _Replica:
    def __init__(self, dsn: str, *, table: str, row_id: int, timeout: float) -> None:
        self._session = MysqlSession(dsn, timeout=timeout)
        self._beat_sql = f"SELECT beat FROM {qualified_name(table)} WHERE id = {int(row_id)}"  # noqa: S608
        self._status_sql = "SHOW REPLICA STATUS"

    async def read(self) -> ReplicaStatus:
        return await self._session.run(self._read)

    async def close(self) -> None:
        await self._session.close()

    def _read(self, cursor: Any) -> ReplicaStatus:
        try:
            cursor.execute(self._status_sql)
        except pymysql.err.ProgrammingError as error:
            if error.args[0] != ER_PARSE_ERROR or self._status_sql == "SHOW SLAVE STATUS":
                raise
            self._status_sql = "SHOW SLAVE STATUS"  # MariaDB before 10.5.1, MySQL before 8.0.22
            cursor.execute(self._status_sql)
        statuses = list(cursor.fetchall())
        problem = threads_error(statuses)
        if problem is not None:
            return ReplicaStatus(threads_error=problem, detail=status_detail(statuses), beat=None)
        try:
            cursor.execute(self._beat_sql)
        except pymysql.err.ProgrammingError as error:
            if error.args[0] != ER_NO_SUCH_TABLE:
                raise
            raise NotReplicatedYet("the heartbeat table is not on the replica yet") from None
        row = cursor.fetchone()
        return ReplicaStatus(
            threads_error=None,
            detail=status_detail(statuses),
            beat=None if row is None else _epoch(row["beat"]),
        )


class MysqlReplicaLagSource(GuardedSource):
    """Seconds a MySQL/MariaDB replica is behind, from a heartbeat written at each sample.

    DSNs look like mysql://user:password@host:port/database. The replica user needs REPLICA MONITOR
    (MariaDB; REPLICATION CLIENT on MySQL) for SHOW REPLICA STATUS, and SELECT on the heartbeat table.
    """

    def __init__(
        self,
        primary_dsn: str,
        replica_dsn: str,
        *,
        name: str = "replica-lag",
        table: str = DEFAULT_TABLE,
        row_id: int = 1,
        timeout: float = DEFAULT_TIMEOUT,
        clock: Clock = time.monotonic,
    ) -> None:
        primary, replica = MysqlDsn.parse(primary_dsn), MysqlDsn.parse(replica_dsn)
        self._heartbeat = MysqlHeartbeat(primary_dsn, table=table, row_id=row_id, timeout=timeout)
        self._replica = _Replica(replica_dsn, table=table, row_id=row_id, timeout=timeout)
        self._tracker = HeartbeatTracker()
        super().__init__(
            name=name,
            unit="s",
            where=f"replica {replica.host}:{replica.port}",
            timeout=timeout,
            clock=clock,
            secrets=[primary.password, replica.password],
        )

    async def _read(self, at: float) -> Sample:
        beat = await self._heartbeat.beat()
        self._tracker.wrote(beat.at)
        try:
            lag, replica = await measure(
                self._tracker,
                beat.at,
                beat.sent,
                self._read_replica,
                budget=min(FIRST_SYNC_SECONDS, self._timeout / 2),
            )
        except ReplicationStopped as stopped:
            return self.failed(at, str(stopped), f"{self._where}: {stopped.detail}")
        bound = "" if lag.exact else " (upper bound: no beat of ours applied yet)"
        detail = f"{self._where}: {replica.detail}, newest beat {lag.newest_seen_age:.2f}s old{bound}"
        return Sample(value=round(lag.seconds, 6), at=at, detail=detail)

    async def _read_replica(self) -> tuple[float, int | None, ReplicaStatus]:
        replica = await self._replica.read()
        if replica.threads_error is not None:
            raise ReplicationStopped(replica.threads_error, replica.detail)
        if replica.beat is None:
            raise NotReplicatedYet("the heartbeat row is not on the replica yet")
        return replica.beat, None, replica

    async def close(self) -> None:
        await self._heartbeat.close()
        await self._replica.close()
