"""One place that records an event, tells the notifier and wakes long-polls."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import structlog

from orchestrator.domain.plan import Stage
from orchestrator.domain.run import EventType, MigrationEvent, Run
from orchestrator.ports import Notifier, StateStore

log = structlog.get_logger(__name__)


def new_event(
    run_id: str,
    type: EventType,
    message: str,
    *,
    stage: Stage | None = None,
    step_id: str | None = None,
    data: dict[str, Any] | None = None,
) -> MigrationEvent:
    return MigrationEvent(
        migration_id=run_id,
        at=datetime.now(UTC),
        type=type,
        stage=stage,
        step_id=step_id,
        message=message,
        data=data or {},
    )


class EventSink:
    def __init__(self, store: StateStore, notifier: Notifier, on_change: Callable[[str], None]) -> None:
        self._store = store
        self._notifier = notifier
        self._on_change = on_change

    async def emit(
        self,
        run_id: str,
        type: EventType,
        message: str,
        *,
        stage: Stage | None = None,
        step_id: str | None = None,
        data: dict[str, Any] | None = None,
    ) -> MigrationEvent:
        event = await self._store.append_event(
            new_event(run_id, type, message, stage=stage, step_id=step_id, data=data)
        )
        log.info(type.value, message=message, stage=stage, step_id=step_id, data=data or None)
        await self.published(await self._store.get_run(run_id), event)
        return event

    async def published(self, run: Run, event: MigrationEvent) -> None:
        """After an event is stored (by emit, or with a transition): notify and wake waiters."""
        await self._notifier.notify(run, event)
        self._on_change(run.id)

    def changed(self, run_id: str) -> None:
        self._on_change(run_id)
