"""PostgreSQL replica lag: seconds from a heartbeat row, bytes from WAL positions.

Why a heartbeat: pg_stat_replication's `replay_lag` goes NULL when the primary is idle, and
`now() - pg_last_xact_replay_timestamp()` on a replica grows while the primary is idle (it reads 20 s
and more with no lag at all). A row the primary keeps rewriting is replayed like any other write.

No background task: each `PgReplicaLagSource.sample()` writes one beat on the primary (a one-row upsert)
and then reads the replica; `HeartbeatTracker` turns the beats written (with the WAL positions around
each) and the beat and replay position seen into seconds, on the primary's clock alone. The beat commits with `synchronous_commit = local`: with the server's
`synchronous_commit = off` its WAL would wait up to `wal_writer_delay` (200 ms) before being sent, and
the figure would measure that instead of the replica; `local` never waits for a standby.

The heartbeat table, `public.osctl_heartbeat(id int primary key, beat timestamptz)` unless told
otherwise, is created on the primary on first use and reaches the replica by replication; until it
has, samples have no value ("hold"). The replica DSN must name the same database as the primary's.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass

import asyncpg

from adapters.signals.base import (
    DEFAULT_TIMEOUT,
    Clock,
    GuardedSource,
    SignalReadError,
    pg_endpoint,
    pg_secrets,
)
from adapters.signals.connections import PgSession
from adapters.signals.heartbeat import FIRST_SYNC_SECONDS, HeartbeatTracker, NotReplicatedYet, measure
from orchestrator.domain.identifiers import quote_ident
from orchestrator.domain.throttle import Sample

DEFAULT_TABLE = "public.osctl_heartbeat"


def qualified_name(table: str) -> str:
    """`schema.table` or `table`, each part a plain identifier, quoted for PostgreSQL."""
    parts = table.split(".")
    if len(parts) > 2:
        raise ValueError(f"{table!r}: a heartbeat table is `table` or `schema.table`")
    return ".".join(quote_ident(part) for part in parts)


@dataclass(frozen=True)
class Beat:
    at: float  # the primary's now(), epoch seconds
    start_lsn: int  # the primary's WAL insert position just before the beat
    wal_lsn: int  # ... and just after it (before its commit record)
    sent: float  # time.monotonic() just before the beat was sent


class PgHeartbeat:
    """Writes the primary's now() into the heartbeat row, creating the table when it is missing."""

    def __init__(
        self, dsn: str, *, table: str = DEFAULT_TABLE, row_id: int = 1, timeout: float = DEFAULT_TIMEOUT
    ) -> None:
        self.table = table
        self._name = qualified_name(table)
        self._row_id = row_id
        self._session = PgSession(
            dsn,
            timeout=timeout,
            application_name="osctl-heartbeat",
            settings={"synchronous_commit": "local"},
        )
        # The name is two checked, quoted identifiers (qualified_name).
        # WAL insert positions just before (the materialized CTE is read before the row is inserted)
        # and just after the beat: the tracker places the replica between beats with them.
        self._upsert = (
            "WITH pos AS MATERIALIZED (SELECT pg_current_wal_insert_lsn() AS before) "  # noqa: S608
            f"INSERT INTO {self._name} (id, beat) SELECT $1, now() FROM pos "
            "ON CONFLICT (id) DO UPDATE SET beat = excluded.beat "
            "RETURNING extract(epoch FROM beat)::float8 AS beat, "
            "pg_wal_lsn_diff((SELECT before FROM pos), '0/0')::int8 AS start_lsn, "
            "pg_wal_lsn_diff(pg_current_wal_insert_lsn(), '0/0')::int8 AS lsn"
        )

    async def beat(self) -> Beat:
        """Raises what the primary raised (unreachable, read-only, no privilege): the caller decides."""
        sent = time.monotonic()
        try:
            row = await self._session.fetchrow(self._upsert, self._row_id)
        except asyncpg.UndefinedTableError:
            await self._create()
            sent = time.monotonic()
            row = await self._session.fetchrow(self._upsert, self._row_id)
        assert row is not None
        return Beat(
            at=float(row["beat"]), start_lsn=int(row["start_lsn"]), wal_lsn=int(row["lsn"]), sent=sent
        )

    async def close(self) -> None:
        await self._session.close()

    async def _create(self) -> None:
        # UniqueViolation / DuplicateTable: another writer created it at the same moment.
        with contextlib.suppress(asyncpg.UniqueViolationError, asyncpg.DuplicateTableError):
            await self._session.fetch(
                f"CREATE TABLE IF NOT EXISTS {self._name} (id int PRIMARY KEY, beat timestamptz NOT NULL)"
            )


class _Replica:
    """The read side: recovery state, replay position and the newest beat, in one round trip."""

    def __init__(self, dsn: str, *, table: str | None, row_id: int, timeout: float) -> None:
        self.endpoint = pg_endpoint(dsn)
        self._table = table
        self._session = PgSession(dsn, timeout=timeout)
        beat = (
            f"(SELECT extract(epoch FROM beat)::float8 FROM {qualified_name(table)} WHERE id = {int(row_id)})"  # noqa: S608
            if table is not None
            else "NULL::float8"
        )
        self._sql = (
            "SELECT pg_is_in_recovery() AS in_recovery, "
            "pg_wal_lsn_diff(pg_last_wal_replay_lsn(), '0/0')::int8 AS replay_lsn, "
            "CASE WHEN pg_is_in_recovery() THEN pg_is_wal_replay_paused() END AS paused, "
            f"{beat} AS beat"
        )

    async def read(self) -> ReplicaState:
        try:
            row = await self._session.fetchrow(self._sql)
        except asyncpg.UndefinedTableError:
            raise NotReplicatedYet(
                f"heartbeat table {self._table} is not on the replica {self.endpoint} yet"
            ) from None
        assert row is not None
        if not row["in_recovery"]:
            raise SignalReadError(f"{self.endpoint} is not a replica (pg_is_in_recovery() is false)")
        return ReplicaState(
            replay_lsn=None if row["replay_lsn"] is None else int(row["replay_lsn"]),
            paused=bool(row["paused"]),
            beat=None if row["beat"] is None else float(row["beat"]),
        )

    async def close(self) -> None:
        await self._session.close()


@dataclass(frozen=True)
class ReplicaState:
    replay_lsn: int | None
    paused: bool
    beat: float | None


def _byte_lag(primary_lsn: int, replica: ReplicaState) -> int | None:
    if replica.replay_lsn is None:
        return None
    return max(0, primary_lsn - replica.replay_lsn)


def _replica_notes(replica: ReplicaState, byte_lag: int | None) -> str:
    notes = ["WAL replay paused"] if replica.paused else []
    notes.append("no WAL replayed yet" if byte_lag is None else f"{byte_lag} bytes behind")
    return ", ".join(notes)


class PgReplicaLagSource(GuardedSource):
    """Seconds the replica is behind, from a heartbeat written at each sample (see the module doc).

    The detail carries the replica, whether its replay is paused, its WAL byte lag and the age of the
    newest beat it shows: 'replica 127.0.0.1:55433: 0 bytes behind, newest beat 0.31s old'.
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
        self._heartbeat = PgHeartbeat(primary_dsn, table=table, row_id=row_id, timeout=timeout)
        self._replica = _Replica(replica_dsn, table=table, row_id=row_id, timeout=timeout)
        self._tracker = HeartbeatTracker()
        super().__init__(
            name=name,
            unit="s",
            where=f"replica {self._replica.endpoint}",
            timeout=timeout,
            clock=clock,
            secrets=pg_secrets(primary_dsn) + pg_secrets(replica_dsn),
        )

    async def _read(self, at: float) -> Sample:
        beat = await self._heartbeat.beat()
        self._tracker.wrote(beat.at, start=beat.start_lsn, end=beat.wal_lsn)
        lag, replica = await measure(
            self._tracker,
            beat.at,
            beat.sent,
            self._read_replica,
            budget=min(FIRST_SYNC_SECONDS, self._timeout / 2),
        )
        notes = _replica_notes(replica, _byte_lag(beat.wal_lsn, replica))
        bound = "" if lag.exact else " (upper bound: no beat of ours replayed yet)"
        detail = f"{self._where}: {notes}, newest beat {lag.newest_seen_age:.2f}s old{bound}"
        return Sample(value=round(lag.seconds, 6), at=at, detail=detail)

    async def _read_replica(self) -> tuple[float, int | None, ReplicaState]:
        replica = await self._replica.read()
        if replica.beat is None:
            raise NotReplicatedYet(f"the heartbeat row is not on the replica {self._replica.endpoint} yet")
        return replica.beat, replica.replay_lsn, replica

    async def close(self) -> None:
        await self._heartbeat.close()
        await self._replica.close()


class PgReplicaByteLagSource(GuardedSource):
    """Bytes of WAL the replica has not replayed: the primary's insert position minus its replay position.

    The insert position, not `pg_current_wal_lsn()`: with `synchronous_commit = off` commits sit in WAL
    buffers for up to `wal_writer_delay` and the write position would not count them yet. Positions are
    read primary first, so a replica that replays in between reads 0, never a negative figure.
    """

    def __init__(
        self,
        primary_dsn: str,
        replica_dsn: str,
        *,
        name: str = "replica-lag-bytes",
        timeout: float = DEFAULT_TIMEOUT,
        clock: Clock = time.monotonic,
    ) -> None:
        self._primary = PgSession(primary_dsn, timeout=timeout)
        self._replica = _Replica(replica_dsn, table=None, row_id=0, timeout=timeout)
        super().__init__(
            name=name,
            unit="bytes",
            where=f"replica {self._replica.endpoint}",
            timeout=timeout,
            clock=clock,
            secrets=pg_secrets(primary_dsn) + pg_secrets(replica_dsn),
        )

    async def _read(self, at: float) -> Sample:
        row = await self._primary.fetchrow(
            "SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), '0/0')::int8 AS lsn "
            "WHERE NOT pg_is_in_recovery()"
        )
        if row is None:
            raise SignalReadError("the primary DSN names a server in recovery (a replica), not the primary")
        replica = await self._replica.read()
        byte_lag = _byte_lag(int(row["lsn"]), replica)
        if byte_lag is None:
            raise SignalReadError(f"the replica {self._replica.endpoint} has replayed no WAL yet")
        return Sample(
            value=float(byte_lag), at=at, detail=f"{self._where}: {_replica_notes(replica, byte_lag)}"
        )

    async def close(self) -> None:
        await self._primary.close()
        await self._replica.close()
