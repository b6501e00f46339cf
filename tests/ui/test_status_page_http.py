"""The status page and /v1/targets over HTTP, without a browser or database servers: the manual hold,
escaping, the chart history, and who sees which button (cookie sign-in when tokens are configured)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest

from adapters.slack import NullNotifier
from adapters.statestore.store import SqlStateStore
from orchestrator.access import TokenBook, hash_token, new_token, parse_tokens
from orchestrator.api.app import create_app
from orchestrator.domain.throttle import Sample, Threshold
from orchestrator.engine.clock import SystemClock
from orchestrator.engine.throttler import Throttler
from orchestrator.service import MigrationService, TargetRegistry

SCOPES = {"viewer": ["read"], "pager": ["oncall"], "release": ["pipeline"]}


class SteadyLag:
    name = "replica-lag"
    unit = "s"

    async def sample(self) -> Sample:
        return Sample(value=0.1, at=time.monotonic(), detail="replica <b>r1</b>")

    async def close(self) -> None:
        return None


@asynccontextmanager
async def page_client(tmp_path: Path, tokens: TokenBook | None = None) -> AsyncIterator[httpx.AsyncClient]:
    throttler = Throttler(SystemClock(), poll_seconds=0.01)
    throttler.add_signal("app", SteadyLag(), Threshold(hold_at=0.5))
    await throttler.start()

    def service() -> MigrationService:
        store = SqlStateStore(f"sqlite+aiosqlite:///{tmp_path / 'state.db'}")
        return MigrationService(store, TargetRegistry({}), NullNotifier(), throttle=throttler)

    app = create_app(service, tokens=tokens)
    try:
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client,
        ):
            deadline = time.monotonic() + 5
            while len(throttler.history("app", "replica-lag")) < 3:
                assert time.monotonic() < deadline, "the throttler took no readings"
                await asyncio.sleep(0.01)
            yield client
    finally:
        await throttler.stop()


async def test_page_renders_targets_history_and_an_escaped_manual_hold(tmp_path: Path) -> None:
    async with page_client(tmp_path) as client:
        page = await client.get("/")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert 'data-target="app"' in page.text and "No migrations yet." in page.text
        assert "replica &lt;b&gt;r1&lt;/b&gt;" in page.text and "<b>r1</b>" not in page.text
        assert "<polyline" in page.text  # the chart, server-rendered from the history

        signals = (await client.get("/v1/targets/app/signals")).json()
        assert signals["reason"] is None and signals["signals"]["replica-lag"]["value"] == 0.1
        history = signals["history"]["replica-lag"]
        assert len(history) >= 3 and all(value == 0.1 for _ago, value in history)
        assert [ago for ago, _v in history] == sorted((ago for ago, _v in history), reverse=True)

        nasty = "<script>alert(1)</script>"
        held = await client.post("/v1/targets/app/throttle", json={"reason": nasty, "seconds": 60})
        assert held.status_code == 200, held.text
        assert held.json()["reason"].startswith(f"manual: {nasty}")
        assert 0 < held.json()["manual"]["until_in_s"] <= 60
        page = await client.get("/")
        assert nasty not in page.text and "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
        assert 'data-state="holding"' in page.text

        assert (await client.delete("/v1/targets/app/throttle")).status_code == 204
        assert (await client.get("/v1/targets/app/signals")).json()["reason"] is None
        assert (await client.get("/v1/targets")).json()["targets"][0]["target"] == "app"

        missing = await client.get("/v1/targets/nope/signals")
        assert missing.status_code == 404 and missing.headers["content-type"] == "application/problem+json"
        bad = await client.post("/v1/targets/app/throttle", json={"reason": "", "seconds": -1})
        assert bad.status_code == 422
        assert (await client.get("/migrations/nope")).status_code == 404
        script = await client.get("/ui/status.js")
        assert script.status_code == 200 and script.headers["content-type"].startswith("text/javascript")
        assert "innerHTML" not in script.text


@pytest.fixture
def tokens() -> dict[str, str]:
    return {name: new_token() for name in SCOPES}


def cookie(token: str) -> dict[str, str]:
    return {"Cookie": f"osctl_token={token}"}


async def test_cookie_sign_in_and_buttons_by_scope(tmp_path: Path, tokens: dict[str, str]) -> None:
    book = TokenBook(
        parse_tokens(
            {name: {"hash": hash_token(token), "scopes": SCOPES[name]} for name, token in tokens.items()}
        )
    )
    async with page_client(tmp_path, book) as client:
        anonymous = await client.get("/")
        assert anonymous.status_code == 303 and anonymous.headers["location"] == "/ui/login"
        form = await client.get("/ui/login")
        assert form.status_code == 200 and 'name="token"' in form.text
        signed = await client.post("/ui/login", data={"token": tokens["viewer"]})
        assert signed.status_code == 303 and signed.headers["location"] == "/"
        set_cookie = signed.headers["set-cookie"]
        assert f"osctl_token={tokens['viewer']}" in set_cookie
        assert "HttpOnly" in set_cookie and "SameSite=Strict" in set_cookie

        viewer = await client.get("/", headers=cookie(tokens["viewer"]))
        assert viewer.status_code == 200 and "signed in as <b>viewer</b>" in viewer.text
        assert 'data-can=""' in viewer.text and 'form class="hold"' not in viewer.text
        pager = await client.get("/", headers=cookie(tokens["pager"]))
        assert 'data-can="pause resume rollback"' in pager.text and 'form class="hold"' in pager.text
        release = await client.get("/", headers=cookie(tokens["release"]))
        assert 'data-can="approve_deploy"' in release.text and 'form class="hold"' not in release.text
        wrong = await client.get("/", headers=cookie("osctl_not-a-token"))
        assert wrong.status_code == 303

        # The cookie reads; it acts only together with the page's header (no cross-site form can).
        hold = {"reason": "incident", "seconds": 60}
        assert (
            await client.get("/v1/targets/app/signals", headers=cookie(tokens["viewer"]))
        ).status_code == 200
        only_cookie = await client.post(
            "/v1/targets/app/throttle", json=hold, headers=cookie(tokens["pager"])
        )
        assert only_cookie.status_code == 401
        ui = {**cookie(tokens["pager"]), "X-Osctl-Ui": "1"}
        assert (await client.post("/v1/targets/app/throttle", json=hold, headers=ui)).status_code == 200
        as_viewer = {**cookie(tokens["viewer"]), "X-Osctl-Ui": "1"}
        assert (await client.delete("/v1/targets/app/throttle", headers=as_viewer)).status_code == 403
        assert (await client.delete("/v1/targets/app/throttle", headers=ui)).status_code == 204
        # A bearer header still works as everywhere else, and wins over a cookie.
        bearer = {"Authorization": f"Bearer {tokens['pager']}", **cookie(tokens["viewer"])}
        assert (await client.delete("/v1/targets/app/throttle", headers=bearer)).status_code == 204


async def test_a_threshold_changed_at_run_time_decides_the_next_hold(tmp_path: Path) -> None:
    async with page_client(tmp_path) as client:
        assert (await client.get("/v1/targets/app/signals")).json()["reason"] is None  # 0.1 s < 0.5 s
        tightened = await client.put(
            "/v1/targets/app/signals/replica-lag/threshold", json={"hold_at": 0.05, "resume_below": 0.02}
        )
        assert tightened.status_code == 200, tightened.text
        assert tightened.json()["reason"] == "replica-lag 0.1s >= 0.05s"
        assert tightened.json()["signals"]["replica-lag"]["threshold"]["hold_at"] == 0.05

        unknown = await client.put("/v1/targets/app/signals/error-rate/threshold", json={"hold_at": 1})
        assert unknown.status_code == 404
        inverted = await client.put(
            "/v1/targets/app/signals/replica-lag/threshold", json={"hold_at": 1, "resume_below": 2}
        )
        assert inverted.status_code == 422
        assert "resume_below" in inverted.text
        assert (await client.get("/v1/targets/app/signals")).json()["signals"]["replica-lag"]["threshold"][
            "hold_at"
        ] == 0.05, "a refused change changes nothing"
