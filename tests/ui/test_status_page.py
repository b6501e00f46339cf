"""The status page in real headless Chromium, against a running service with a real backfill.

What a person at the page sees: the gate approved from its button, the progress bar growing, the
replica-lag throttle reason appearing while WAL replay is paused on the real replica (and going away
after), and the Pause button pausing the migration (checked through the API). The screenshot in the
README is taken here, while the backfill is held.
"""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from adapters.postgres.target import PostgresTarget
from adapters.postgres.workload import create_accounts
from adapters.signals.pg_replica_lag import PgReplicaLagSource
from adapters.slack import NullNotifier
from adapters.statestore.store import SqlStateStore
from orchestrator.api.app import create_app
from orchestrator.domain.throttle import Threshold
from orchestrator.engine.clock import SystemClock
from orchestrator.engine.throttler import Throttler
from orchestrator.service import MigrationService, TargetRegistry
from tests.support.pg import PgPair, connect, fresh_database
from tests.ui.cdp import Page, chromium, chromium_binary

pytestmark = pytest.mark.integration

SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "status-page.png"
ROWS = 40_000
SPEC: dict[str, Any] = {
    "name": "accounts-band",
    "target": "app",
    "operations": [
        {"add_column": {"table": "accounts", "column": {"name": "band", "type": "text"}}},
        {
            "backfill": {
                "table": "accounts",
                "column": "band",
                "expression": "CASE WHEN score >= 50 THEN 'high' ELSE 'low' END",
                # Small fixed chunks with a pause: it runs for about 20 s, long enough to watch.
                "batch_size": 100,
                "adaptive": False,
                "pause_ms": 40,
            }
        },
    ],
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@asynccontextmanager
async def served(pair: PgPair, state: Path) -> AsyncIterator[str]:
    """The app under uvicorn on a free loopback port, with a throttler reading the real replica."""
    throttler = Throttler(SystemClock())
    throttler.add_signal(
        "app", PgReplicaLagSource(pair.primary, pair.replica), Threshold(hold_at=0.5, resume_below=0.3)
    )
    await throttler.start()

    def service() -> MigrationService:
        store = SqlStateStore(f"sqlite+aiosqlite:///{state / 'state.db'}")
        targets = TargetRegistry({"app": ("postgres", lambda: PostgresTarget(pair.primary))})
        return MigrationService(store, targets, NullNotifier(), throttle=throttler)

    port = _free_port()
    config = uvicorn.Config(
        create_app(service), host="127.0.0.1", port=port, log_level="warning", log_config=None, lifespan="on"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        deadline = time.monotonic() + 20
        while not server.started:
            assert not task.done(), "uvicorn stopped while starting"
            assert time.monotonic() < deadline, "uvicorn did not start within 20 s"
            await asyncio.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)
        await throttler.stop()


async def api_until(client: httpx.AsyncClient, path: str, check: Any, *, timeout: float, what: str) -> Any:
    """GET `path` until `check(body)` holds; the body. Bounded by `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        body = (await client.get(path)).json()
        if check(body):
            return body
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {timeout} s for {what}; last answer {body}")
        await asyncio.sleep(0.1)


def row(run_id: str, inner: str = "") -> str:
    return f'tr.run[data-id="{run_id}"] {inner}'.strip()


def visible(selector: str) -> str:
    return f"(() => {{ const el = document.querySelector({selector!r}); return !!el && el.getClientRects().length > 0; }})()"


def text(selector: str) -> str:
    return f"(document.querySelector({selector!r}) || {{}}).textContent || ''"


async def settled_width(page: Page, run_id: str, *, above: float) -> float:
    """The progress bar's rendered width in px once it shows rows and is not mid-transition, and is
    wider than `above`."""
    fill = row(run_id, "[data-field=fill]")
    progress = row(run_id, "[data-field=progress]")
    width = await page.wait_for(
        f"""(() => {{
          const el = document.querySelector({fill!r});
          if (!({text(progress)}).includes('rows') || el.getAnimations().length) return 0;
          const width = el.getBoundingClientRect().width;
          return width > {above} ? width : 0;
        }})()""",
        timeout=15,
        what=f"the progress bar to be wider than {above:.0f} px",
    )
    return float(width)


async def test_status_page_shows_progress_throttle_and_pauses(tmp_path: Path) -> None:
    binary = chromium_binary()
    if binary is None:
        pytest.skip("Debian chromium is not installed (scripts/services.sh start installs it)")
    async with fresh_database() as pair:
        async with connect(pair.primary) as conn:
            await create_accounts(conn, rows=ROWS)
        async with (
            served(pair, tmp_path) as base,
            httpx.AsyncClient(base_url=base, timeout=30) as client,
            chromium(binary, tmp_path / "profile") as browser,
        ):
            created = await client.post(
                "/v1/migrations", json=SPEC, headers={"Idempotency-Key": str(uuid.uuid4())}
            )
            assert created.status_code == 201, created.text
            run_id = created.json()["migration"]["id"]
            await client.post(f"/v1/migrations/{run_id}/stages/expand")
            await api_until(
                client,
                f"/v1/migrations/{run_id}",
                lambda run: run["status"] == "awaiting_deploy",
                timeout=30,
                what="the expand stage to finish",
            )

            page = await browser.new_page()
            await page.goto(f"{base}/")
            assert await page.evaluate(text(row(run_id, '[data-field="status"]'))) == "awaiting_deploy"

            # The gate, approved from its button on the page.
            await page.click(row(run_id, 'button[data-action="approve_deploy"]'))
            await api_until(
                client,
                f"/v1/migrations/{run_id}",
                lambda run: run["status"] == "awaiting_backfill",
                timeout=10,
                what="the approve button to open the gate",
            )
            await api_until(
                client,
                "/v1/targets/app/signals",
                lambda snap: snap["reason"] is None,
                timeout=30,
                what="the replica to be in step before the backfill",
            )
            started = await client.post(f"/v1/migrations/{run_id}/stages/backfill")
            assert started.status_code == 202, started.text

            # The progress bar moves: its rendered width (once its transition has settled) grows.
            await page.wait_for(
                f"({text(row(run_id, '[data-field=status]'))}) === 'backfilling'",
                timeout=15,
                what="the backfill to start on the page",
            )
            first = await settled_width(page, run_id, above=0.0)
            await settled_width(page, run_id, above=first + 2)
            assert "ETA" in await page.evaluate(text(row(run_id, '[data-field="progress"]')))

            # WAL replay paused on the real replica: the throttle reason appears on the page.
            target = 'section.target[data-target="app"]'
            async with connect(pair.replica) as replica:
                await replica.execute("SELECT pg_wal_replay_pause()")
                try:
                    await page.wait_for(
                        f"{visible(target + ' [data-field=reason]')} && "
                        f"({text(target + ' [data-field=reason]')}).startsWith('replica-lag')",
                        timeout=20,
                        what="the throttle reason on the target",
                    )
                    await page.wait_for(
                        f"{visible(row(run_id, '[data-field=throttled]'))}",
                        timeout=20,
                        what="the migration row to say it is throttled",
                    )
                    assert await page.evaluate(text(target + " [data-field=state]")) == "holding"
                    assert "replica-lag" in await page.evaluate(text(row(run_id, "[data-field=throttled]")))
                    # The lag chart has a line to show.
                    await page.wait_for(
                        f"document.querySelectorAll({target + ' svg.chart polyline'!r}).length > 0",
                        timeout=5,
                        what="the replica-lag chart",
                    )
                    if await page.evaluate(visible("#flash")):
                        await page.click("#flash")  # the toast from the approval, out of the picture
                    await page.screenshot(SCREENSHOT)
                finally:
                    await replica.execute("SELECT pg_wal_replay_resume()")
            await page.wait_for(
                f"({text(target + ' [data-field=state]')}) === 'proceeding' && "
                f"!{visible(row(run_id, '[data-field=throttled]'))}",
                timeout=30,
                what="the throttle to lift once the replica catches up",
            )

            # Pause, from its button: the API says paused, and the page offers Resume instead.
            pause = row(run_id, 'button[data-action="pause"]')
            await page.wait_for(visible(pause), timeout=5, what="the Pause button")
            await page.click(pause)
            paused = await api_until(
                client,
                f"/v1/migrations/{run_id}",
                lambda run: run["status"] == "paused",
                timeout=10,
                what="the Pause button to pause the migration",
            )
            assert paused["paused_from"] == "backfilling"
            await page.wait_for(
                f"({text(row(run_id, '[data-field=status]'))}) === 'paused' && "
                f"{visible(row(run_id, 'button[data-action=resume]'))} && "
                f"!{visible(pause)}",
                timeout=5,
                what="the page to show the migration paused",
            )
            backfill = paused["progress"]["backfill"]
            assert 0 < backfill["rows_done"] < ROWS, "paused part-way"

            # The migration's own page: its timeline, newest first, tells the story.
            await page.click(row(run_id, "a"))
            await page.wait_for(
                f"document.body.dataset.page === 'migration' && {visible('#timeline li')}",
                timeout=10,
                what="the migration page with its timeline",
            )
            kinds = await page.evaluate(
                "Array.from(document.querySelectorAll('#timeline li'), li => li.dataset.type)"
            )
            assert {"created", "throttled", "unthrottled", "transition"} <= set(kinds), kinds
            assert kinds[0] == "transition" and "paused" in await page.evaluate(text("#timeline li"))
    assert SCREENSHOT.stat().st_size < 400_000
