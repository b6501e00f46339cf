"""Outgoing webhooks for stage events, signed (HMAC-SHA256 over timestamp and body), and a fan-out.

Like every notifier, it never raises into the engine and never makes it wait: `notify` queues, one
background task delivers, retrying a failed delivery a few times with backoff, then gives up and
logs. Receivers check deliveries with orchestrator.webhook_signature.verify.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import Sequence
from urllib.parse import urlsplit

import httpx
import structlog

from orchestrator import metrics
from orchestrator.domain.run import EventType, MigrationEvent, Run
from orchestrator.ports import Notifier
from orchestrator.webhook_signature import DELIVERY_HEADER, EVENT_HEADER, signed_headers

log = structlog.get_logger(__name__)

# Stage-level events; step and progress chatter stays in the event log and Slack's main message.
WEBHOOK_EVENTS = frozenset(
    {
        EventType.CREATED,
        EventType.TRANSITION,
        EventType.STAGE_STARTED,
        EventType.STAGE_FINISHED,
        EventType.STAGE_FAILED,
        EventType.WAITING,
        EventType.RUNBOOK,
        EventType.NOTICE,
        EventType.EMERGENCY_STOP,
    }
)
ATTEMPTS = 4
BACKOFF_SECONDS = 0.5
TIMEOUT_SECONDS = 10.0
QUEUE_SIZE = 1000
CLOSE_TIMEOUT = 5.0


def payload(run: Run, event: MigrationEvent) -> bytes:
    body = {
        "event": event.model_dump(mode="json"),
        "migration": {
            "id": run.id,
            "name": run.name,
            "target": run.target,
            "status": run.status.value,
            "stage": run.stage.value if run.stage else None,
        },
    }
    return json.dumps(body, separators=(",", ":"), sort_keys=True).encode()


class SignedWebhookNotifier:
    def __init__(
        self,
        urls: Sequence[str],
        secret: str,
        *,
        client: httpx.AsyncClient | None = None,
        backoff_seconds: float = BACKOFF_SECONDS,
    ) -> None:
        self._urls = list(urls)
        self._secret = secret
        self._client = client or httpx.AsyncClient(timeout=TIMEOUT_SECONDS)
        self._backoff = backoff_seconds
        self._queue: asyncio.Queue[tuple[str, str, bytes]] = asyncio.Queue(maxsize=QUEUE_SIZE)
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    async def notify(self, run: Run, event: MigrationEvent) -> None:
        if self._closed or event.type not in WEBHOOK_EVENTS:
            return
        try:
            body = payload(run, event)
            for url in self._urls:
                self._queue.put_nowait((url, event.type.value, body))
        except asyncio.QueueFull:
            metrics.webhook_delivery("dropped")
            log.warning("webhook_queue_full", migration_id=run.id)
            return
        except Exception as error:  # a notifier must never fail the migration it reports on
            log.warning("webhook_notify_failed", migration_id=run.id, error=type(error).__name__)
            return
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._serve(), name="webhooks")

    async def drain(self) -> None:
        await self._queue.join()

    async def close(self) -> None:
        self._closed = True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._queue.join(), CLOSE_TIMEOUT)
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        while not self._queue.empty():
            self._queue.get_nowait()
            self._queue.task_done()
        await self._client.aclose()

    async def _serve(self) -> None:
        while True:
            url, event_type, body = await self._queue.get()
            try:
                await self._deliver(url, event_type, body)
            except Exception as error:  # the worker must outlive any one delivery
                metrics.webhook_delivery("failed")
                log.warning("webhook_delivery_failed", event_type=event_type, error=type(error).__name__)
            finally:
                self._queue.task_done()

    async def _deliver(self, url: str, event_type: str, body: bytes) -> None:
        delivery = str(uuid.uuid4())  # the same id on every attempt: receivers can deduplicate
        host = urlsplit(url).netloc.rpartition("@")[2]  # never log the URL: it may carry a token
        for attempt in range(1, ATTEMPTS + 1):
            headers = {
                "Content-Type": "application/json",
                EVENT_HEADER: event_type,
                DELIVERY_HEADER: delivery,
                # Signed afresh per attempt: the timestamp is the attempt's, so a retry is not a replay.
                **signed_headers(self._secret, body, time.time()),
            }
            try:
                response = await self._client.post(url, content=body, headers=headers)
                if response.status_code < 300:
                    metrics.webhook_delivery("delivered")
                    return
                problem = f"HTTP {response.status_code}"
                if 400 <= response.status_code < 500 and response.status_code not in (408, 429):
                    break  # the receiver refuses it; sending it again will not change its mind
            except httpx.HTTPError as error:
                problem = type(error).__name__
            if attempt < ATTEMPTS:
                await asyncio.sleep(self._backoff * 2 ** (attempt - 1))
        metrics.webhook_delivery("failed")
        log.warning(
            "webhook_delivery_failed", host=host, event_type=event_type, delivery=delivery, error=problem
        )


class FanOutNotifier:
    """Tells several notifiers (Slack and webhooks); one failing never stops the others."""

    def __init__(self, notifiers: Sequence[Notifier]) -> None:
        self._notifiers = list(notifiers)

    async def notify(self, run: Run, event: MigrationEvent) -> None:
        for notifier in self._notifiers:
            try:
                await notifier.notify(run, event)
            except Exception as error:
                log.warning("notifier_failed", notifier=type(notifier).__name__, error=type(error).__name__)

    async def close(self) -> None:
        for notifier in self._notifiers:
            with contextlib.suppress(Exception):
                await notifier.close()
