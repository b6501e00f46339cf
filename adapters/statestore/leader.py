"""Leader election on the PostgreSQL state database: a session advisory lock on a dedicated connection.

Why a session lock on its own connection: the lock lives exactly as long as that server session, so a
leader killed with `kill -9` (socket closed) loses it at once, and no transaction of the store's pool
ever holds it. This is incompatible with a pooler in transaction mode (PgBouncer `pool_mode =
transaction`): the session would be shared and the lock would follow whichever client got the server
connection. Point OSCTL_STATE_URL at PostgreSQL directly or at a session-mode pool.

A leader that is paused (SIGSTOP, a long GC, a frozen VM) keeps its TCP connection, and with it the
lock. `idle_session_timeout` makes the server end a session that has been idle for longer than the
lease: the leader's heartbeat keeps its own session busy, a paused leader's session is ended and the
lock released, and the next replica takes over. The old leader's writes are then refused by the epoch
check of the store (see SqlStateStore._write) and its heartbeat fails, so it steps down.
"""

from __future__ import annotations

import asyncio
import contextlib

import asyncpg
import structlog

from orchestrator.logging import scrub

log = structlog.get_logger(__name__)

# pg_try_advisory_lock key of the leader ("osctl" + 1); the schema lock is + 2 (see store.py).
LEADER_LOCK_KEY = 0x6F7363746C01


def asyncpg_dsn(url: str) -> str:
    """postgresql+asyncpg://... (SQLAlchemy) -> postgresql://... (asyncpg)."""
    scheme, separator, rest = url.partition("://")
    return f"{scheme.split('+')[0]}{separator}{rest}"


class PostgresLeadership:
    def __init__(
        self,
        url: str,
        identity: str,
        *,
        lock_key: int = LEADER_LOCK_KEY,
        lease_seconds: float = 10.0,
        retry_seconds: float = 1.0,
    ) -> None:
        self._dsn = asyncpg_dsn(url)
        self._key = lock_key
        self._identity = identity
        self._lease = lease_seconds
        self._retry = retry_seconds
        self._conn: asyncpg.Connection | None = None
        self._epoch: int | None = None
        self._released = asyncio.Event()

    @property
    def identity(self) -> str:
        return self._identity

    async def acquire(self, *, wait: bool = True) -> int | None:
        self._released.clear()
        while True:
            epoch = await self._try_once()
            if epoch is not None or not wait:
                return epoch
            # Polling is the election: a free lock is taken within one retry interval.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._released.wait(), timeout=self._retry)
            if self._released.is_set():
                return None

    async def held(self) -> None:
        """Heartbeat on the lock's own connection; return as soon as it fails or the epoch moved."""
        heartbeat = self._lease / 4
        while not self._released.is_set():
            try:
                assert self._conn is not None
                current = await self._conn.fetchval(
                    "SELECT epoch FROM leader WHERE id = 1", timeout=self._lease / 2
                )
            except (
                OSError,
                TimeoutError,
                AssertionError,
                asyncpg.PostgresError,
                asyncpg.InterfaceError,
            ) as error:
                log.warning(
                    "leadership_lost", reason=scrub(f"{type(error).__name__}: {error}"), epoch=self._epoch
                )
                await self._drop_connection()
                return
            if current != self._epoch:
                log.warning("leadership_lost", reason=f"epoch moved to {current}", epoch=self._epoch)
                await self._drop_connection()
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._released.wait(), timeout=heartbeat)

    async def release(self) -> None:
        self._released.set()
        if self._conn is not None and self._epoch is not None:
            with contextlib.suppress(OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
                await self._conn.execute("SELECT pg_advisory_unlock($1)", self._key, timeout=5)
                log.info("leadership_released", epoch=self._epoch)
        await self._drop_connection()

    async def _try_once(self) -> int | None:
        try:
            conn = await self._connection()
            if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", self._key, timeout=self._lease):
                return None
            try:
                # The increment waits for the old leader's write transactions still in flight (they
                # hold a share lock on the row); the server ends a paused one after its idle timeout.
                async with conn.transaction():
                    await conn.execute(f"SET LOCAL lock_timeout = '{int(self._lease * 3000)}ms'")
                    epoch = await conn.fetchval(
                        "UPDATE leader SET epoch = epoch + 1, holder = $1, acquired_at = now() "
                        "WHERE id = 1 RETURNING epoch",
                        self._identity,
                    )
            except BaseException:
                with contextlib.suppress(Exception):
                    await conn.execute("SELECT pg_advisory_unlock($1)", self._key, timeout=5)
                raise
            self._epoch = int(epoch)
            log.info("leadership_acquired", epoch=self._epoch, identity=self._identity)
            return self._epoch
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
            log.warning("leader_election_failed", error=scrub(f"{type(error).__name__}: {error}"))
            await self._drop_connection()
            return None

    async def _connection(self) -> asyncpg.Connection:
        if self._conn is None or self._conn.is_closed():
            lease_ms = str(int(self._lease * 1000))
            self._conn = await asyncpg.connect(
                self._dsn,
                timeout=self._lease,
                server_settings={
                    "application_name": f"osctl-leader {self._identity}"[:63],
                    # The lease: a session idle this long (its client paused) is ended by the server.
                    "idle_session_timeout": lease_ms,
                    # A partitioned client is noticed by the server's keepalives, not only by the lease.
                    "tcp_keepalives_idle": "5",
                    "tcp_keepalives_interval": "2",
                    "tcp_keepalives_count": "3",
                },
            )
        return self._conn

    async def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            conn.terminate()  # never wait on a connection that may be dead
