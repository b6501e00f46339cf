"""The Slack notifiers against a local Slack stand-in, through the real slack_sdk clients."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient
from structlog.testing import capture_logs

from adapters.slack import (
    MAX_RETRY_AFTER_SECONDS,
    NullNotifier,
    SlackNotifier,
    WebhookNotifier,
    build_notifier,
    redact,
    render_backfill,
)
from orchestrator.domain.plan import Plan, Stage
from orchestrator.domain.run import BackfillProgress, EventType, MigrationEvent, Progress, Run
from orchestrator.domain.spec import parse_spec
from orchestrator.domain.states import RunStatus
from tests.support.slack_recorder import RecordedRequest, SlackRecorder, slack_recorder

__all__ = ["slack_recorder"]  # the fixture, re-exported so pytest finds it here

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
SPEC = {
    "name": "demo",
    "target": "app",
    "operations": [{"add_column": {"table": "users", "column": {"name": "x", "type": "text"}}}],
}
# Bound for "the engine-side call returns promptly": notify only queues, so it is far below this.
PROMPT = 1.0


def make_run(run_id: str = "mig-1", **changes: Any) -> Run:
    spec = parse_spec(SPEC)
    plan = Plan(migration=spec.name, engine="postgres", lock_timeout_ms=1000, ddl_attempts=3, stages=[])
    run = Run(
        id=run_id,
        name=spec.name,
        target="app",
        engine="postgres",
        status=RunStatus.PENDING,
        spec=spec,
        plan=plan,
        created_at=NOW,
        updated_at=NOW,
    )
    return run.model_copy(update=changes)


def make_event(
    run: Run, event_type: EventType, message: str = "", stage: Stage | None = None
) -> MigrationEvent:
    return MigrationEvent(
        migration_id=run.id, at=NOW, type=event_type, stage=stage, message=message or event_type.value
    )


def backfill_progress(rows_done: int) -> Progress:
    backfill = BackfillProgress(
        step_id="backfill-1",
        rows_done=rows_done,
        rows_total_estimate=1000,
        rows_per_second=50,
        eta_seconds=90,
    )
    return Progress(steps_done=1, steps_total=3, backfill=backfill)


class FakeClock:
    """Time moves only when a test says so; sleeps are recorded and return at once."""

    def __init__(self) -> None:
        self.time = 0.0
        self.sleeps: list[float] = []

    def now(self) -> float:
        return self.time

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        await asyncio.sleep(0)


class SavedRefs:
    def __init__(self) -> None:
        self.refs: dict[str, dict[str, Any]] = {}

    async def __call__(self, run_id: str, ref: dict[str, Any]) -> None:
        self.refs[run_id] = ref


def top_level_posts(recorder: SlackRecorder) -> list[RecordedRequest]:
    return [r for r in recorder.calls("chat.postMessage") if "thread_ts" not in r.body]


def thread_replies(recorder: SlackRecorder) -> list[RecordedRequest]:
    return [r for r in recorder.calls("chat.postMessage") if "thread_ts" in r.body]


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def web_client(base_url: str) -> AsyncWebClient:
    return AsyncWebClient(token="xoxb-test-token", base_url=base_url)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def saved() -> SavedRefs:
    return SavedRefs()


@pytest.fixture
async def notifier(
    slack_recorder: SlackRecorder, clock: FakeClock, saved: SavedRefs
) -> AsyncIterator[SlackNotifier]:
    notifier = SlackNotifier(web_client(slack_recorder.api_url), "C0123", saved, clock=clock)
    yield notifier
    await notifier.close()


@pytest.fixture
async def webhook(slack_recorder: SlackRecorder, clock: FakeClock) -> AsyncIterator[WebhookNotifier]:
    notifier = WebhookNotifier(AsyncWebhookClient(slack_recorder.webhook_url), clock=clock)
    yield notifier
    await notifier.close()


async def test_first_event_posts_one_message_and_saves_its_handle(
    notifier: SlackNotifier, slack_recorder: SlackRecorder, saved: SavedRefs
) -> None:
    run = make_run()

    await notifier.notify(run, make_event(run, EventType.CREATED, "planned 3 steps"))
    await notifier.drain()

    [main] = top_level_posts(slack_recorder)
    assert main.body["channel"] == "C0123"
    for expected in ("demo", "mig-1", "app", "pending"):
        assert expected in main.body["text"]
    ts = saved.refs["mig-1"]["ts"]
    assert saved.refs["mig-1"] == {"channel": "C0123", "ts": ts}
    [reply] = thread_replies(slack_recorder)
    assert reply.body["thread_ts"] == ts
    assert "planned 3 steps" in reply.body["text"]
    assert slack_recorder.calls("chat.update") == []


async def test_later_events_update_that_message_and_reply_in_its_thread(
    notifier: SlackNotifier, slack_recorder: SlackRecorder, saved: SavedRefs
) -> None:
    run = make_run()
    await notifier.notify(run, make_event(run, EventType.CREATED))
    expanding = run.model_copy(update={"status": RunStatus.EXPANDING, "stage": Stage.EXPAND})
    for event_type in (
        EventType.TRANSITION,
        EventType.STAGE_STARTED,
        EventType.STEP_STARTED,
        EventType.STEP_RETRY,
        EventType.STEP_FINISHED,
        EventType.STAGE_FINISHED,
    ):
        await notifier.notify(expanding, make_event(run, event_type, stage=Stage.EXPAND))
    await notifier.drain()

    ts = saved.refs["mig-1"]["ts"]
    assert len(top_level_posts(slack_recorder)) == 1
    updates = slack_recorder.calls("chat.update")
    assert len(updates) == 6
    assert {(u.body["channel"], u.body["ts"]) for u in updates} == {("C0123", ts)}
    assert "expanding" in updates[-1].body["text"]
    assert "expand" in updates[-1].body["text"]
    replies = thread_replies(slack_recorder)
    assert {r.body["thread_ts"] for r in replies} == {ts}
    # No reply for step_started / step_finished: they only refresh the message.
    kinds = ["created", "transition", "stage_started", "step_retry", "stage_finished"]
    assert len(replies) == len(kinds)
    assert all(f"*{kind}*" in reply.body["text"] for kind, reply in zip(kinds, replies, strict=True))


async def test_progress_updates_the_message_only_and_at_most_once_per_interval(
    notifier: SlackNotifier, slack_recorder: SlackRecorder, clock: FakeClock
) -> None:
    run = make_run(status=RunStatus.BACKFILLING, stage=Stage.BACKFILL)
    await notifier.notify(run, make_event(run, EventType.CREATED))
    await notifier.drain()
    posts_before = len(slack_recorder.calls("chat.postMessage"))

    for at, rows in ((0.0, 100), (3.0, 200), (9.9, 300), (10.0, 400), (15.0, 500)):
        clock.time = at
        progressed = run.model_copy(update={"progress": backfill_progress(rows)})
        await notifier.notify(progressed, make_event(run, EventType.BACKFILL_PROGRESS))
    await notifier.drain()

    updates = slack_recorder.calls("chat.update")
    assert len(updates) == 2
    assert "100 / ~1,000 rows" in updates[0].body["text"]
    assert "400 / ~1,000 rows" in updates[1].body["text"]
    assert "40%" in updates[1].body["text"]
    assert "ETA 1m 30s" in updates[1].body["text"]
    assert len(slack_recorder.calls("chat.postMessage")) == posts_before


async def test_progress_interval_is_kept_per_run(
    notifier: SlackNotifier, slack_recorder: SlackRecorder
) -> None:
    first, second = make_run("mig-1"), make_run("mig-2")
    for run in (first, second):
        progressed = run.model_copy(update={"progress": backfill_progress(10)})
        await notifier.notify(progressed, make_event(run, EventType.BACKFILL_PROGRESS))
    await notifier.drain()

    # No earlier event for either run: each progress event posts that run's message.
    assert len(top_level_posts(slack_recorder)) == 2


async def test_after_a_restart_the_stored_message_keeps_being_updated(
    slack_recorder: SlackRecorder, clock: FakeClock, saved: SavedRefs
) -> None:
    run = make_run()
    before = SlackNotifier(web_client(slack_recorder.api_url), "C0123", saved, clock=clock)
    await before.notify(run, make_event(run, EventType.CREATED))
    await before.close()
    ref = saved.refs["mig-1"]

    after = SlackNotifier(web_client(slack_recorder.api_url), "C0123", saved, clock=clock)
    resumed = run.model_copy(
        update={"status": RunStatus.BACKFILLING, "stage": Stage.BACKFILL, "notification_ref": ref}
    )
    await after.notify(resumed, make_event(run, EventType.STAGE_STARTED, stage=Stage.BACKFILL))
    await after.drain()
    await after.close()

    assert len(top_level_posts(slack_recorder)) == 1
    [update] = slack_recorder.calls("chat.update")
    assert update.body["ts"] == ref["ts"]
    assert "backfilling" in update.body["text"]
    assert thread_replies(slack_recorder)[-1].body["thread_ts"] == ref["ts"]


async def test_a_429_is_waited_out_and_the_message_still_arrives(
    notifier: SlackNotifier, slack_recorder: SlackRecorder, clock: FakeClock
) -> None:
    slack_recorder.fail_next_with_429(1, retry_after=1)
    run = make_run()

    await notifier.notify(run, make_event(run, EventType.CREATED))
    await notifier.drain()

    assert clock.sleeps == [1.0]
    assert [r.status for r in slack_recorder.requests][:2] == [429, 200]
    assert len(top_level_posts(slack_recorder)) == 1
    assert len(thread_replies(slack_recorder)) == 1


async def test_a_long_retry_after_is_capped(
    notifier: SlackNotifier, slack_recorder: SlackRecorder, clock: FakeClock
) -> None:
    slack_recorder.fail_next_with_429(1, retry_after=3600)
    run = make_run()

    await notifier.notify(run, make_event(run, EventType.CREATED))
    await notifier.drain()

    assert clock.sleeps == [MAX_RETRY_AFTER_SECONDS]
    assert len(top_level_posts(slack_recorder)) == 1


async def test_a_real_retry_after_wait_with_the_default_clock(slack_recorder: SlackRecorder) -> None:
    slack_recorder.fail_next_with_429(1, retry_after=0)
    notifier = SlackNotifier(web_client(slack_recorder.api_url), "C0123", SavedRefs())
    run = make_run()

    await notifier.notify(run, make_event(run, EventType.TRANSITION))
    await notifier.close()

    assert len(top_level_posts(slack_recorder)) == 1


async def test_endless_429s_are_given_up_on_and_logged(
    notifier: SlackNotifier, slack_recorder: SlackRecorder, clock: FakeClock
) -> None:
    slack_recorder.fail_next_with_429(100, retry_after=1)
    run = make_run()

    with capture_logs() as logs:
        await notifier.notify(run, make_event(run, EventType.CREATED))
        await notifier.drain()

    assert clock.sleeps == [1.0, 1.0]  # three attempts, then the post is given up on
    assert top_level_posts(slack_recorder) == []
    events = [entry["event"] for entry in logs]
    assert "slack_post_failed" in events
    assert "slack_reply_skipped" in events  # nothing to reply to


@pytest.mark.parametrize("kind", ["bot", "webhook"])
async def test_a_server_that_is_down_never_raises_nor_blocks(kind: str, clock: FakeClock) -> None:
    url = closed_port_url()
    notifier: SlackNotifier | WebhookNotifier
    if kind == "bot":
        notifier = SlackNotifier(web_client(f"{url}/api/"), "C0123", SavedRefs(), clock=clock)
    else:
        notifier = WebhookNotifier(AsyncWebhookClient(f"{url}/webhook/x"), clock=clock)
    run = make_run()

    with capture_logs() as logs:
        for event_type in (EventType.CREATED, EventType.STAGE_STARTED):
            await asyncio.wait_for(notifier.notify(run, make_event(run, event_type)), PROMPT)
        await notifier.drain()
        await notifier.close()

    failures = [entry for entry in logs if entry["event"] == "slack_post_failed"]
    assert failures
    assert all(entry["migration_id"] == "mig-1" and entry["log_level"] == "warning" for entry in failures)


async def test_server_errors_never_raise(
    notifier: SlackNotifier, webhook: WebhookNotifier, slack_recorder: SlackRecorder
) -> None:
    slack_recorder.fail_next(100, status=500)
    run = make_run()

    with capture_logs() as logs:
        for sink in (notifier, webhook):
            await asyncio.wait_for(sink.notify(run, make_event(run, EventType.CREATED)), PROMPT)
            await sink.drain()

    assert [r.status for r in slack_recorder.requests] == [500, 500]
    assert sum(entry["event"] == "slack_post_failed" for entry in logs) == 2
    # The reply could not hang off a message that was never posted.
    assert any(entry["event"] == "slack_reply_skipped" for entry in logs)


async def test_a_failing_save_ref_is_logged_and_the_message_still_updates(
    slack_recorder: SlackRecorder, clock: FakeClock
) -> None:
    async def broken_store(run_id: str, ref: dict[str, Any]) -> None:
        raise RuntimeError("state store unavailable")

    notifier = SlackNotifier(web_client(slack_recorder.api_url), "C0123", broken_store, clock=clock)
    run = make_run()
    with capture_logs() as logs:
        await notifier.notify(run, make_event(run, EventType.CREATED))
        await notifier.notify(run, make_event(run, EventType.STEP_STARTED))
        await notifier.close()

    assert any(entry["event"] == "slack_ref_save_failed" for entry in logs)
    assert len(top_level_posts(slack_recorder)) == 1
    assert len(slack_recorder.calls("chat.update")) == 1


async def test_webhook_posts_one_message_per_stage_level_event_without_threads(
    webhook: WebhookNotifier, slack_recorder: SlackRecorder
) -> None:
    run = make_run(status=RunStatus.BACKFILLING, stage=Stage.BACKFILL, progress=backfill_progress(10))
    for event_type in (
        EventType.CREATED,
        EventType.STAGE_STARTED,
        EventType.STEP_STARTED,
        EventType.BACKFILL_PROGRESS,
        EventType.STEP_FINISHED,
        EventType.STAGE_FINISHED,
    ):
        await webhook.notify(run, make_event(run, event_type, stage=Stage.BACKFILL))
    await webhook.drain()

    posts = slack_recorder.webhook_calls()
    assert len(posts) == 3
    assert all("thread_ts" not in post.body and "demo" in post.body["text"] for post in posts)
    assert "stage_finished" in posts[-1].body["text"]
    assert all(r.api_method is None for r in slack_recorder.requests)


async def test_webhook_honours_a_429(
    webhook: WebhookNotifier, slack_recorder: SlackRecorder, clock: FakeClock
) -> None:
    slack_recorder.fail_next_with_429(1, retry_after=1)
    run = make_run()

    await webhook.notify(run, make_event(run, EventType.STAGE_STARTED))
    await webhook.drain()

    assert clock.sleeps == [1.0]
    assert len(slack_recorder.webhook_calls()) == 1


async def test_no_payload_carries_a_password(
    notifier: SlackNotifier, webhook: WebhookNotifier, slack_recorder: SlackRecorder
) -> None:
    dsn = "postgresql://u:s3cret@h/db"
    run = make_run(
        target=dsn, status=RunStatus.FAILED, stage=Stage.EXPAND, error=f"could not connect to {dsn}"
    )
    events = [
        make_event(run, EventType.CREATED, f"created for {dsn}"),
        make_event(run, EventType.STAGE_FAILED, f"host=h user=u password=s3cret via {dsn}", Stage.EXPAND),
        make_event(run, EventType.STEP_STARTED, dsn),
    ]
    for sink in (notifier, webhook):
        for event in events:
            await sink.notify(run, event)
        await sink.drain()

    # Bot: post + reply, update + reply, update. Webhook: the two stage-level events.
    assert len(slack_recorder.requests) == 7
    assert all("s3cret" not in request.raw for request in slack_recorder.requests)
    assert "postgresql://u:***@h/db" in top_level_posts(slack_recorder)[0].body["text"]


async def test_close_sends_what_is_queued_and_later_notifications_are_dropped(
    notifier: SlackNotifier, slack_recorder: SlackRecorder
) -> None:
    run = make_run()
    await notifier.notify(run, make_event(run, EventType.CREATED))
    await notifier.close()
    assert len(slack_recorder.calls("chat.postMessage")) == 2

    await notifier.notify(run, make_event(run, EventType.STAGE_STARTED))
    await notifier.drain()
    assert len(slack_recorder.requests) == 2


class StuckClock(FakeClock):
    """A Retry-After wait that never ends: the worker is stuck until it is cancelled."""

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        await asyncio.Event().wait()


async def test_close_gives_up_on_a_stuck_worker_after_its_timeout(slack_recorder: SlackRecorder) -> None:
    slack_recorder.fail_next_with_429(1)
    clock = StuckClock()
    notifier = SlackNotifier(
        web_client(slack_recorder.api_url), "C0123", SavedRefs(), clock=clock, close_timeout=0.05
    )
    run = make_run()

    with capture_logs() as logs:
        await notifier.notify(run, make_event(run, EventType.CREATED))
        await asyncio.wait_for(notifier.close(), PROMPT)
        await asyncio.wait_for(notifier.drain(), PROMPT)

    assert clock.sleeps == [1.0]
    assert any(entry["event"] == "slack_close_timeout" for entry in logs)
    assert top_level_posts(slack_recorder) == []


async def test_a_full_queue_drops_rather_than_waits(slack_recorder: SlackRecorder, clock: FakeClock) -> None:
    notifier = SlackNotifier(
        web_client(slack_recorder.api_url), "C0123", SavedRefs(), clock=clock, max_queue=1
    )
    run = make_run()

    with capture_logs() as logs:
        # CREATED queues two jobs (the message, then its reply); the reply does not fit.
        await notifier.notify(run, make_event(run, EventType.CREATED))
        await notifier.close()

    assert any(entry["event"] == "slack_queue_full" for entry in logs)
    assert len(top_level_posts(slack_recorder)) == 1
    assert thread_replies(slack_recorder) == []


def test_build_notifier_prefers_the_bot_then_the_webhook(saved: SavedRefs) -> None:
    assert isinstance(build_notifier("xoxb-1", "C1", "http://w", None, saved), SlackNotifier)
    assert isinstance(build_notifier(None, None, "http://w", None, saved), WebhookNotifier)
    assert isinstance(build_notifier("xoxb-1", None, "http://w", None, saved), WebhookNotifier)
    assert isinstance(build_notifier(None, "C1", None, "http://b/api/", saved), NullNotifier)


async def test_null_notifier_does_nothing() -> None:
    notifier = NullNotifier()
    run = make_run()
    await notifier.notify(run, make_event(run, EventType.CREATED))
    await notifier.close()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("postgresql://u:s3cret@h/db", "postgresql://u:***@h/db"),
        ("mysql+pymysql://root:p@ss:w/rd@db:3306/x", "mysql+pymysql://root:***@db:3306/x"),
        ("failed: postgres://:pw@h and more", "failed: postgres://:***@h and more"),
        ("host=h password=s3cret dbname=x", "host=h password=*** dbname=x"),
        ("PASSWORD = 's3 cret' user=u", "PASSWORD = *** user=u"),
        ("postgresql://u@h/db", "postgresql://u@h/db"),
        ("app", "app"),
    ],
)
def test_redact(text: str, expected: str) -> None:
    assert redact(text) == expected


@pytest.mark.parametrize(
    ("rows_done", "estimate", "expected"),
    [
        (0, 1000, "0%"),
        (2500, 1000, "100% · 2,500 / ~1,000 rows"),  # a low estimate caps the bar, not the count
        (42, 0, "Backfill: 42 rows (no estimate)"),
    ],
)
def test_render_backfill(rows_done: int, estimate: int, expected: str) -> None:
    progress = BackfillProgress(step_id="s", rows_done=rows_done, rows_total_estimate=estimate)
    assert expected in render_backfill(progress)
