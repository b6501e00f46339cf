"""A small Chrome DevTools Protocol driver for headless Debian Chromium, over aiohttp's websocket.

Enough to load a page, read the DOM, click like a person (real mouse events at the element's
centre), accept confirm() dialogs and take a screenshot. No npm, no browser download.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import re
import shutil
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp

# Flags needed here: as root (no sandbox), without a GPU, and without Chromium's own network traffic
# (this machine refuses it, and every start would wait on Google's hosts).
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--remote-debugging-port=0",
)
LISTENING = re.compile(r"DevTools listening on (ws://\S+)")


def chromium_binary() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


class CdpError(Exception):
    pass


class Browser:
    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._ws = ws
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.dialogs: list[str] = []  # the messages of the dialogs accepted so far
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for message in self._ws:
            if message.type != aiohttp.WSMsgType.TEXT:
                continue
            data = json.loads(message.data)
            if "id" in data:
                future = self._pending.pop(data["id"], None)
                if future is not None and not future.done():
                    future.set_result(data)
            elif data.get("method") == "Page.javascriptDialogOpening":
                # A confirm() blocks the click that opened it: answer from here, not from the caller.
                self.dialogs.append(data["params"].get("message", ""))
                asyncio.get_running_loop().create_task(
                    self.send("Page.handleJavaScriptDialog", {"accept": True}, session=data.get("sessionId"))
                )
        for future in self._pending.values():
            if not future.done():
                future.set_exception(CdpError("the browser closed the connection"))

    async def send(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        *,
        session: str | None = None,
        timeout: float = 30,
    ) -> dict[str, Any]:
        call_id = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[call_id] = future
        message: dict[str, Any] = {"id": call_id, "method": method, "params": params or {}}
        if session is not None:
            message["sessionId"] = session
        await self._ws.send_str(json.dumps(message))
        answer = await asyncio.wait_for(future, timeout)
        if "error" in answer:
            raise CdpError(f"{method}: {answer['error']}")
        result: dict[str, Any] = answer.get("result", {})
        return result

    async def new_page(self, width: int = 1200, height: int = 800) -> Page:
        target = await self.send("Target.createTarget", {"url": "about:blank"})
        attached = await self.send("Target.attachToTarget", {"targetId": target["targetId"], "flatten": True})
        page = Page(self, attached["sessionId"])
        await page.send("Page.enable")
        await page.send("Runtime.enable")
        await page.resize(width, height)
        return page

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.send("Browser.close", timeout=5)
        await self._ws.close()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._reader


class Page:
    def __init__(self, browser: Browser, session: str) -> None:
        self.browser = browser
        self.session = session

    async def send(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        return await self.browser.send(method, params, session=self.session)

    async def resize(self, width: int, height: int) -> None:
        await self.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
        )

    async def goto(self, url: str, timeout: float = 15) -> None:
        await self.send("Page.navigate", {"url": url})
        await self.wait_for(
            f"location.href === {json.dumps(url)} && document.readyState === 'complete'",
            timeout=timeout,
            what=f"{url} to load",
        )

    async def evaluate(self, expression: str) -> Any:
        answer = await self.send(
            "Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True}
        )
        if "exceptionDetails" in answer:
            raise CdpError(f"{expression}: {answer['exceptionDetails']}")
        return answer["result"].get("value")

    async def wait_for(self, expression: str, *, timeout: float = 10, what: str = "") -> Any:
        """Poll the page until `expression` is truthy; its value. Bounded by `timeout`."""
        deadline = time.monotonic() + timeout
        last: Any = None
        while True:
            with contextlib.suppress(CdpError):  # e.g. evaluated while the page navigates
                last = await self.evaluate(expression)
                if last:
                    return last
            if time.monotonic() > deadline:
                raise AssertionError(f"waited {timeout} s for {what or expression}; last value {last!r}")
            await asyncio.sleep(0.1)

    async def click(self, selector: str) -> None:
        """Move the mouse to the element's centre and press and release the left button there."""
        box = await self.evaluate(
            f"""(() => {{
              const el = document.querySelector({json.dumps(selector)});
              if (!el || !el.getClientRects().length) return null;
              el.scrollIntoView({{block: "center"}});
              const r = el.getBoundingClientRect();
              return {{x: r.left + r.width / 2, y: r.top + r.height / 2}};
            }})()"""
        )
        if box is None:
            raise AssertionError(f"no visible element matches {selector}")
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            await self.send(
                "Input.dispatchMouseEvent",
                {"type": kind, "x": box["x"], "y": box["y"], "button": "left", "clickCount": 1},
            )

    async def screenshot(self, path: Path, *, width: int = 1200, max_height: int = 1000) -> None:
        await self.resize(width, 200)  # measure the content, not the viewport
        height = int(await self.evaluate("document.documentElement.scrollHeight"))
        await self.resize(width, min(max(height, 300), max_height))
        shot = await self.send("Page.captureScreenshot", {"format": "png"})
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(shot["data"]))


@asynccontextmanager
async def chromium(binary: str, profile: Path, timeout: float = 30) -> AsyncIterator[Browser]:
    """Headless Chromium with an empty profile, and a connection to it; both closed afterwards."""
    process = await asyncio.create_subprocess_exec(
        binary,
        *FLAGS,
        f"--user-data-dir={profile}",
        "about:blank",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stderr is not None
    try:
        url = None
        seen: list[str] = []
        async with asyncio.timeout(timeout):
            while url is None:
                line = (await process.stderr.readline()).decode(errors="replace")
                if not line:
                    raise AssertionError(f"chromium exited before listening: {''.join(seen)[-2000:]}")
                seen.append(line)
                match = LISTENING.search(line)
                url = match.group(1) if match else None
        # Keep draining its stderr, or a chatty Chromium blocks on a full pipe.
        drain = asyncio.create_task(_drain(process.stderr))
        async with aiohttp.ClientSession() as session:
            ws = await session.ws_connect(url, max_msg_size=0)
            browser = Browser(ws)
            try:
                yield browser
            finally:
                await browser.close()
                drain.cancel()
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                process.kill()
                await process.wait()


async def _drain(stream: asyncio.StreamReader) -> None:
    while await stream.read(65536):
        pass
