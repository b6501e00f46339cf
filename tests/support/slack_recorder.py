"""A local stand-in for Slack's Web API and incoming webhooks that records every request.

A real HTTP server on 127.0.0.1 (stdlib, in a thread), so the real slack_sdk clients are exercised end
to end: their encoding, their error handling, their view of 429s.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast
from urllib.parse import parse_qs

import pytest

WEBHOOK_PATH = "/webhook/T000/B000/XXXXXXXX"


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any]  # the parsed JSON or form body; {} when neither
    raw: str
    status: int  # what the recorder answered

    @property
    def api_method(self) -> str | None:
        return self.path.removeprefix("/api/") if self.path.startswith("/api/") else None


@dataclass(frozen=True)
class _Answer:
    status: int
    body: bytes
    content_type: str
    headers: dict[str, str]


def _parse_body(raw: str, content_type: str) -> dict[str, Any]:
    if not raw:
        return {}
    if "json" in content_type:
        parsed = json.loads(raw)
        return parsed if isinstance(parsed, dict) else {"_": parsed}
    if "x-www-form-urlencoded" in content_type:
        return {key: values[-1] for key, values in parse_qs(raw, keep_blank_values=True).items()}
    return {}


def _json_answer(status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> _Answer:
    return _Answer(status, json.dumps(payload).encode(), "application/json; charset=utf-8", headers or {})


def _text_answer(status: int, text: str, headers: dict[str, str] | None = None) -> _Answer:
    return _Answer(status, text.encode(), "text/plain; charset=utf-8", headers or {})


class SlackRecorder:
    """Answers like Slack and keeps every request; can be scripted to fail the next requests."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self._failures: deque[tuple[int, int]] = deque()  # (status, retry_after)
        self._posted = 0
        self._server = _RecorderServer(self)
        self._thread = threading.Thread(target=self._serve, name="slack-recorder", daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def api_url(self) -> str:
        """What AsyncWebClient(base_url=...) takes."""
        return f"{self.base_url}/api/"

    @property
    def webhook_url(self) -> str:
        return f"{self.base_url}{WEBHOOK_PATH}"

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def calls(self, api_method: str) -> list[RecordedRequest]:
        """Successful calls of one Web API method, e.g. "chat.postMessage"."""
        return [r for r in self.requests if r.api_method == api_method and r.status == 200]

    def webhook_calls(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path.startswith("/webhook/") and r.status == 200]

    def fail_next_with_429(self, count: int, retry_after: int = 1) -> None:
        self.fail_next(count, status=429, retry_after=retry_after)

    def fail_next(self, count: int, *, status: int, retry_after: int = 1) -> None:
        with self._lock:
            self._failures.extend([(status, retry_after)] * count)

    def start(self) -> None:
        self._thread.start()

    def _serve(self) -> None:
        # shutdown() waits for the next poll: a short interval keeps fixture teardown fast.
        self._server.serve_forever(poll_interval=0.05)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def handle(self, method: str, path: str, headers: dict[str, str], raw: str) -> _Answer:
        body = _parse_body(raw, headers.get("content-type", ""))
        with self._lock:
            answer = self._answer(path, body)
            self._requests.append(RecordedRequest(method, path, headers, body, raw, answer.status))
        return answer

    def _answer(self, path: str, body: dict[str, Any]) -> _Answer:
        if self._failures:
            status, retry_after = self._failures.popleft()
            return _failure(path, status, retry_after)
        if path.startswith("/webhook/"):
            return _text_answer(200, "ok")
        if path == "/api/chat.postMessage":
            self._posted += 1
            ts = f"{1_700_000_000 + self._posted}.{self._posted:06d}"
            return _json_answer(200, {"ok": True, "channel": body.get("channel"), "ts": ts})
        if path == "/api/chat.update":
            return _json_answer(200, {"ok": True, "channel": body.get("channel"), "ts": body.get("ts")})
        if path.startswith("/api/"):
            return _json_answer(200, {"ok": True})
        return _text_answer(404, "not found")


def _failure(path: str, status: int, retry_after: int) -> _Answer:
    headers = {"Retry-After": str(retry_after)} if status == 429 else {}
    error = "ratelimited" if status == 429 else "internal_error"
    if path.startswith("/api/"):
        return _json_answer(status, {"ok": False, "error": error}, headers)
    return _text_answer(status, error, headers)


class _RecorderServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, recorder: SlackRecorder) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.recorder = recorder


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        self._serve("POST")

    def do_GET(self) -> None:
        self._serve("GET")

    def _serve(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length).decode("utf-8", errors="replace") if length else ""
        headers = {name.lower(): value for name, value in self.headers.items()}
        answer = cast(_RecorderServer, self.server).recorder.handle(method, self.path, headers, raw)
        self.send_response(answer.status)
        self.send_header("Content-Type", answer.content_type)
        self.send_header("Content-Length", str(len(answer.body)))
        for name, value in answer.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(answer.body)

    def log_message(self, format: str, *args: Any) -> None:
        return  # keep test output clean; the recorder keeps everything worth seeing


@pytest.fixture
def slack_recorder() -> Iterator[SlackRecorder]:
    recorder = SlackRecorder()
    recorder.start()
    try:
        yield recorder
    finally:
        recorder.stop()
