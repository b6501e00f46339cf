"""How the service asks a running stage to stop at its next safe point (between steps or chunks)."""

from __future__ import annotations

import asyncio

from orchestrator.domain.errors import StageInterruptedError


class StopSignal:
    def __init__(self) -> None:
        self._event = asyncio.Event()
        self.reason = ""

    def request(self, reason: str) -> None:
        if not self._event.is_set():
            self.reason = reason
            self._event.set()

    @property
    def requested(self) -> bool:
        return self._event.is_set()

    def check(self) -> None:
        if self._event.is_set():
            raise StageInterruptedError(self.reason)

    async def wait(self, seconds: float) -> None:
        """Sleep up to `seconds`, returning early (and raising) if a stop is requested meanwhile."""
        self.check()
        if seconds <= 0:
            return
        try:
            await asyncio.wait_for(self._event.wait(), timeout=seconds)
        except TimeoutError:
            return
        self.check()
