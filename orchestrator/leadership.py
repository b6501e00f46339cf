"""Leadership without an election, for the embedded (SQLite) store: one replica, always the leader.

It still takes a new fencing epoch when it starts, so a second process started by mistake on the same
state file fences the first one's writes instead of interleaving with them.
"""

from __future__ import annotations

import asyncio
import os
import socket

from orchestrator.ports import ServiceStore


def default_identity() -> str:
    """host:pid, unique enough among replicas; OSCTL_REPLICA_ID (the pod name) overrides it."""
    return f"{socket.gethostname()}:{os.getpid()}"


class SingleReplicaLeadership:
    def __init__(self, store: ServiceStore, identity: str | None = None) -> None:
        self._store = store
        self._identity = identity or default_identity()
        self._released = asyncio.Event()

    @property
    def identity(self) -> str:
        return self._identity

    async def acquire(self, *, wait: bool = True) -> int | None:
        self._released.clear()
        return await self._store.claim_epoch(self._identity)

    async def held(self) -> None:
        await self._released.wait()

    async def release(self) -> None:
        self._released.set()
