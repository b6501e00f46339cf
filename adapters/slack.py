"""Stage notifications to Slack: one message per migration kept up to date, stage events in its thread.

Notifiers never raise into the engine and never make it wait on Slack: `notify` only queues work, and
one background task per notifier makes the HTTP calls, logging and dropping whatever fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import structlog
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse
from slack_sdk.webhook.async_client import AsyncWebhookClient

from adapters.slack_blocks import message_blocks
from orchestrator.domain.run import BackfillProgress, EventType, MigrationEvent, Run
from orchestrator.domain.states import RunStatus
from orchestrator.ports import Clock, Notifier

log = structlog.get_logger(__name__)

T = TypeVar("T")
SaveRef = Callable[[str, dict[str, Any]], Awaitable[None]]
Job = Callable[[], Awaitable[None]]

# Events worth a line of their own (a thread reply, or a webhook message). Step chatter and backfill
# progress only refresh the main message: a thread of hundreds of lines is read by nobody.
THREADED_EVENTS = frozenset(
    {
        EventType.CREATED,
        EventType.STAGE_STARTED,
        EventType.STAGE_FINISHED,
        EventType.STAGE_FAILED,
        EventType.STEP_RETRY,
        EventType.TRANSITION,
        EventType.THROTTLED,
        EventType.UNTHROTTLED,
        EventType.POLICY,
        # Emergency runbooks: each step before and after it runs, a runbook's notify lines, and who
        # stopped the whole target. On-call follows a rollback here.
        EventType.RUNBOOK,
        EventType.NOTICE,
        EventType.EMERGENCY_STOP,
    }
)
DEFAULT_PROGRESS_INTERVAL = 10.0
# Slack may answer a 429 with a long Retry-After; one notifier must not sit on its queue for minutes.
MAX_RETRY_AFTER_SECONDS = 30.0
RATE_LIMIT_ATTEMPTS = 3
DEFAULT_QUEUE_SIZE = 1000
DEFAULT_CLOSE_TIMEOUT = 5.0
HTTP_TIMEOUT_SECONDS = 10
PROGRESS_BAR_WIDTH = 20

_EVENT_ICONS = {
    EventType.CREATED: ":memo:",
    EventType.TRANSITION: ":arrow_right:",
    EventType.STAGE_STARTED: ":arrow_forward:",
    EventType.STAGE_FINISHED: ":white_check_mark:",
    EventType.STAGE_FAILED: ":x:",
    EventType.STEP_RETRY: ":repeat:",
    EventType.STEP_FAILED: ":x:",
    EventType.RUNBOOK: ":ambulance:",
    EventType.NOTICE: ":loudspeaker:",
    EventType.EMERGENCY_STOP: ":rotating_light:",
}

# `scheme://user:password@` -> `scheme://user:***@`. Greedy up to the last `@` of the token: an
# unencoded `@` in a password must not leak its tail; over-redacting a host is the cheaper mistake.
_URL_CREDENTIALS = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*://[^\s:/@]*):\S*@")
# libpq keyword DSNs (`host=h password=x`) carry passwords too.
_KEYWORD_PASSWORD = re.compile(r"\b(password|passwd|pwd)(\s*=\s*)('[^']*'|\"[^\"]*\"|\S+)", re.IGNORECASE)


def redact(text: str) -> str:
    """Strip credentials from anything about to leave the process, whatever its origin."""
    text = _URL_CREDENTIALS.sub(r"\1:***@", text)
    return _KEYWORD_PASSWORD.sub(r"\1\2***", text)


# ---------------------------------------------------------------------------------------------------
# Rendering (pure)
# ---------------------------------------------------------------------------------------------------


def _escape(text: str) -> str:
    # Slack treats <, > and & as control characters in message text.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def format_duration(seconds: float) -> str:
    total = max(0, round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


def render_backfill(backfill: BackfillProgress) -> str:
    if backfill.rows_total_estimate <= 0:
        return f"Backfill: {backfill.rows_done:,} rows (no estimate)"
    # Estimates come from planner statistics and can be low: cap the bar, keep the real counts.
    fraction = min(1.0, backfill.rows_done / backfill.rows_total_estimate)
    filled = round(fraction * PROGRESS_BAR_WIDTH)
    bar = "█" * filled + "░" * (PROGRESS_BAR_WIDTH - filled)
    parts = [
        f"Backfill: `{bar}` {fraction:.0%}",
        f"{backfill.rows_done:,} / ~{backfill.rows_total_estimate:,} rows",
    ]
    if backfill.rows_per_second > 0:
        parts.append(f"{backfill.rows_per_second:,.0f} rows/s")
    if backfill.eta_seconds is not None:
        parts.append(f"ETA {format_duration(backfill.eta_seconds)}")
    return " · ".join(parts)


def _status_line(run: Run) -> str:
    status = run.status.value
    if run.status is RunStatus.PAUSED and run.paused_from is not None:
        status = f"{status} (from {run.paused_from.value})"
    line = f"Status: *{status}*"
    if run.stage is not None:
        line += f" · stage: *{run.stage.value}*"
    if run.progress.steps_total:
        line += f" · steps {run.progress.steps_done}/{run.progress.steps_total}"
    return line


def render_status(run: Run) -> str:
    """The main message: what the migration is and where it stands now."""
    lines = [f"*{_escape(run.name)}* `{run.id}` on `{_escape(run.target)}`", _status_line(run)]
    if run.progress.backfill is not None:
        lines.append(render_backfill(run.progress.backfill))
    if run.error:
        lines.append(f"Error: {_escape(run.error)}")
    return redact("\n".join(lines))


def render_event(event: MigrationEvent) -> str:
    """One line for a stage-level event (a thread reply)."""
    icon = _EVENT_ICONS.get(event.type, ":information_source:")
    stage = f" · {event.stage.value}" if event.stage is not None else ""
    return redact(f"{icon} *{event.type.value}*{stage}: {_escape(event.message)}")


def render_standalone(run: Run, event: MigrationEvent) -> str:
    """A webhook message: no thread to hang off, so it carries the migration's status with it."""
    return redact(f"{render_event(event)}\n{render_status(run)}")


# ---------------------------------------------------------------------------------------------------
# Delivery: a queue and one worker, Slack's rate limits honoured
# ---------------------------------------------------------------------------------------------------


class _SystemClock:
    def now(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class RateLimitedError(Exception):
    """Slack answered 429; `retry_after` is already capped."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"rate limited, retry after {retry_after:g}s")
        self.retry_after = retry_after


class WebhookError(Exception):
    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"webhook answered {status}: {body[:200]}")
        self.status = status


def retry_after_seconds(headers: Mapping[str, Any] | None) -> float:
    """Retry-After as seconds in [0, MAX_RETRY_AFTER_SECONDS]; 1s when absent or unreadable."""
    value: Any = None
    for name, header in (headers or {}).items():
        if name.lower() == "retry-after":
            value = header
            break
    if isinstance(value, list | tuple):
        value = value[0] if value else None
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = 1.0
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_SECONDS)


async def with_rate_limit(call: Callable[[], Awaitable[T]], clock: Clock, migration_id: str) -> T:
    """Run `call`, waiting out and retrying each 429 a few times before giving up on it."""
    attempt = 1
    while True:
        try:
            return await call()
        except RateLimitedError as limited:
            if attempt >= RATE_LIMIT_ATTEMPTS:
                raise
            log.info(
                "slack_rate_limited",
                migration_id=migration_id,
                retry_after=limited.retry_after,
                attempt=attempt,
            )
            await clock.sleep(limited.retry_after)
            attempt += 1


class _Worker:
    """Serves queued jobs one at a time on a background task started on first use.

    One task per notifier keeps each migration's calls in order: its message is posted before it is
    updated. Serving every migration from one task also means a 429 pauses them all, which is what
    Slack asks: its limits are per method and workspace, not per message. The queue is bounded so a
    Slack outage costs dropped messages, not unbounded memory.
    """

    def __init__(self, *, max_queue: int, close_timeout: float) -> None:
        self._queue: asyncio.Queue[tuple[str, Job]] = asyncio.Queue(maxsize=max_queue)
        self._task: asyncio.Task[None] | None = None
        self._close_timeout = close_timeout
        self._closed = False

    def submit(self, migration_id: str, job: Job) -> None:
        if self._closed:
            log.debug("slack_notify_after_close", migration_id=migration_id)
            return
        try:
            self._queue.put_nowait((migration_id, job))
        except asyncio.QueueFull:
            log.warning("slack_queue_full", migration_id=migration_id, queued=self._queue.qsize())
            return
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._serve(), name="slack-notifier")

    async def _serve(self) -> None:
        while True:
            migration_id, job = await self._queue.get()
            try:
                await job()
            except Exception as error:
                log.warning(
                    "slack_post_failed",
                    migration_id=migration_id,
                    error_type=type(error).__name__,
                    error=redact(str(error)),
                )
            finally:
                self._queue.task_done()

    async def drain(self) -> None:
        await self._queue.join()

    async def close(self) -> None:
        self._closed = True
        try:
            await asyncio.wait_for(self._queue.join(), self._close_timeout)
        except TimeoutError:
            log.warning("slack_close_timeout", dropped=self._queue.qsize())
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._discard_pending()

    def _discard_pending(self) -> None:
        # Nothing serves the queue any more: empty it so a later drain() returns instead of hanging.
        while not self._queue.empty():
            self._queue.get_nowait()
            self._queue.task_done()


def _stored_ref(ref: Mapping[str, Any]) -> dict[str, Any] | None:
    channel, ts = ref.get("channel"), ref.get("ts")
    if isinstance(channel, str) and isinstance(ts, str) and channel and ts:
        return {"channel": channel, "ts": ts}
    return None


# ---------------------------------------------------------------------------------------------------
# Notifiers
# ---------------------------------------------------------------------------------------------------


class SlackNotifier:
    """Bot-token notifier: one message per migration, updated in place, stage events in its thread.

    `save_ref(run_id, {"channel", "ts"})` persists the message handle; it comes back after a restart
    as `run.notification_ref`, so the same message keeps being updated.
    """

    def __init__(
        self,
        client: AsyncWebClient,
        channel: str,
        save_ref: SaveRef,
        *,
        progress_interval: float = DEFAULT_PROGRESS_INTERVAL,
        clock: Clock | None = None,
        max_queue: int = DEFAULT_QUEUE_SIZE,
        close_timeout: float = DEFAULT_CLOSE_TIMEOUT,
    ) -> None:
        self._client = client
        self._channel = channel
        self._save_ref = save_ref
        self._progress_interval = progress_interval
        self._clock: Clock = clock or _SystemClock()
        self._worker = _Worker(max_queue=max_queue, close_timeout=close_timeout)
        # Handles known in this process; they win over a run's notification_ref, which the engine
        # may hand us before the store has the handle we just saved.
        self._refs: dict[str, dict[str, Any]] = {}
        self._last_progress: dict[str, float] = {}
        # The latest action a person took, shown under the status ("approved by ..."), per migration.
        self._last_action: dict[str, str] = {}

    async def notify(self, run: Run, event: MigrationEvent) -> None:
        try:
            if event.type is EventType.BACKFILL_PROGRESS and not self._progress_due(run.id):
                return
            actor = (event.data or {}).get("actor")
            if actor:
                self._last_action[run.id] = redact(
                    f":bust_in_silhouette: {_escape(event.message)} by {_escape(str(actor))}"
                )
            self._worker.submit(run.id, lambda: self._refresh(run))
            if event.type in THREADED_EVENTS:
                self._worker.submit(run.id, lambda: self._reply(run, event))
        except Exception as error:  # a notifier must never fail the migration it reports on
            log.warning("slack_notify_failed", migration_id=run.id, error=redact(str(error)))

    async def drain(self) -> None:
        """Wait until everything queued so far has been sent (or given up on)."""
        await self._worker.drain()

    async def close(self) -> None:
        await self._worker.close()

    def _progress_due(self, run_id: str) -> bool:
        now = self._clock.now()
        last = self._last_progress.get(run_id)
        if last is not None and now - last < self._progress_interval:
            return False
        self._last_progress[run_id] = now
        return True

    def _known_ref(self, run: Run) -> dict[str, Any] | None:
        return self._refs.get(run.id) or _stored_ref(run.notification_ref)

    async def _refresh(self, run: Run) -> None:
        text = render_status(run)
        blocks = message_blocks(run, text, self._last_action.get(run.id), redact)
        ref = self._known_ref(run)
        if ref is None:
            await self._post_main(run, text, blocks)
            return
        await self._api(
            run.id,
            lambda: self._client.chat_update(channel=ref["channel"], ts=ref["ts"], text=text, blocks=blocks),
        )

    async def _post_main(self, run: Run, text: str, blocks: list[dict[str, Any]]) -> None:
        response = await self._api(
            run.id, lambda: self._client.chat_postMessage(channel=self._channel, text=text, blocks=blocks)
        )
        # chat.update needs the channel id Slack answers with, not the name we may have configured.
        ref = {"channel": str(response["channel"]), "ts": str(response["ts"])}
        self._refs[run.id] = ref
        try:
            await self._save_ref(run.id, ref)
        except Exception as error:  # the message is up; only a restart would lose track of it
            log.warning("slack_ref_save_failed", migration_id=run.id, error=redact(str(error)))

    async def _reply(self, run: Run, event: MigrationEvent) -> None:
        ref = self._known_ref(run)
        if ref is None:
            log.warning("slack_reply_skipped", migration_id=run.id, reason="main message was not posted")
            return
        text = render_event(event)
        await self._api(
            run.id,
            lambda: self._client.chat_postMessage(channel=ref["channel"], thread_ts=ref["ts"], text=text),
        )

    async def _api(
        self, migration_id: str, call: Callable[[], Awaitable[AsyncSlackResponse]]
    ) -> AsyncSlackResponse:
        async def once() -> AsyncSlackResponse:
            try:
                return await call()
            except SlackApiError as error:
                response = error.response
                if getattr(response, "status_code", None) == 429:
                    raise RateLimitedError(retry_after_seconds(response.headers)) from error
                raise

        return await with_rate_limit(once, self._clock, migration_id)


class WebhookNotifier:
    """Incoming-webhook fallback (no bot token): one message per stage-level event, no threads."""

    def __init__(
        self,
        client: AsyncWebhookClient,
        *,
        clock: Clock | None = None,
        max_queue: int = DEFAULT_QUEUE_SIZE,
        close_timeout: float = DEFAULT_CLOSE_TIMEOUT,
    ) -> None:
        self._client = client
        self._clock: Clock = clock or _SystemClock()
        self._worker = _Worker(max_queue=max_queue, close_timeout=close_timeout)

    async def notify(self, run: Run, event: MigrationEvent) -> None:
        try:
            if event.type in THREADED_EVENTS:
                text = render_standalone(run, event)
                self._worker.submit(run.id, lambda: self._send(run.id, text))
        except Exception as error:  # a notifier must never fail the migration it reports on
            log.warning("slack_notify_failed", migration_id=run.id, error=redact(str(error)))

    async def drain(self) -> None:
        await self._worker.drain()

    async def close(self) -> None:
        await self._worker.close()

    async def _send(self, migration_id: str, text: str) -> None:
        async def once() -> None:
            # The webhook client does not raise on HTTP errors; turn them into ones we can log.
            response = await self._client.send(text=text)
            if response.status_code == 429:
                raise RateLimitedError(retry_after_seconds(response.headers))
            if response.status_code != 200:
                raise WebhookError(response.status_code, response.body)

        await with_rate_limit(once, self._clock, migration_id)


class NullNotifier:
    """Slack not configured: notifications go nowhere."""

    async def notify(self, run: Run, event: MigrationEvent) -> None:
        return None

    async def drain(self) -> None:
        return None

    async def close(self) -> None:
        return None


def build_notifier(
    bot_token: str | None,
    channel: str | None,
    webhook_url: str | None,
    base_url: str | None,
    save_ref: SaveRef,
) -> Notifier:
    """A bot token and channel give the threaded notifier; a webhook URL the fallback; else nothing."""
    if bot_token and channel:
        client = AsyncWebClient(
            token=bot_token, base_url=base_url or AsyncWebClient.BASE_URL, timeout=HTTP_TIMEOUT_SECONDS
        )
        return SlackNotifier(client, channel, save_ref)
    if bot_token:
        log.warning("slack_channel_missing", detail="a bot token needs a channel; falling back")
    if webhook_url:
        return WebhookNotifier(AsyncWebhookClient(webhook_url, timeout=HTTP_TIMEOUT_SECONDS))
    return NullNotifier()
