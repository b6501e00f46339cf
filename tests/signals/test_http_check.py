"""HttpCheckSource against a loopback server the test controls: 200, then 503, then too slow."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from adapters.signals.http_check import HttpCheckSource

HANG_LIMIT = 10.0  # a hanging handler gives up after this long even if the test never releases it


class HealthServer:
    def __init__(self) -> None:
        self.status = 200
        self.release = threading.Event()
        self.hang = False
        health = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/moved":
                    self.send_response(302)
                    self.send_header("Location", "/health")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if health.hang:
                    health.release.wait(HANG_LIMIT)
                try:
                    self.send_response(health.status)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the check gave up waiting: that is the point of the slow case

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def url(self, path: str = "/health") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def stop(self) -> None:
        self.release.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


@pytest.fixture
def health() -> Iterator[HealthServer]:
    server = HealthServer()
    try:
        yield server
    finally:
        server.stop()


async def test_2xx_passes_and_503_fails(health: HealthServer) -> None:
    source = HttpCheckSource(health.url())
    try:
        ok = await source.sample()
        assert ok.value == 0.0 and ok.error is None, ok
        assert ok.detail == f"GET {health.url()} -> HTTP 200 OK"
        assert (source.name, source.unit) == ("http-check", "failing")
        health.status = 503
        failing = await source.sample()
        assert failing.value == 1.0 and failing.error is None, failing
        assert failing.detail.endswith("-> HTTP 503 Service Unavailable")
        health.status = 204
        assert (await source.sample()).value == 0.0
    finally:
        await source.close()


async def test_a_redirect_is_followed(health: HealthServer) -> None:
    source = HttpCheckSource(health.url("/moved"))
    try:
        assert (await source.sample()).value == 0.0
        health.status = 500
        assert (await source.sample()).value == 1.0
    finally:
        await source.close()


async def test_a_slow_answer_fails(health: HealthServer) -> None:
    health.hang = True
    source = HttpCheckSource(health.url(), timeout=0.3)
    try:
        sample = await source.sample()
    finally:
        health.release.set()
        await source.close()
    assert sample.value == 1.0, sample
    assert sample.detail.endswith("-> timed out after 0.3s"), sample


async def test_an_unreachable_server_fails_without_showing_credentials(health: HealthServer) -> None:
    port = health.port
    health.stop()
    source = HttpCheckSource(f"http://probe:sw0rdfish@127.0.0.1:{port}/health?token=sw0rdfish", timeout=1.0)
    try:
        sample = await source.sample()
    finally:
        await source.close()
    assert sample.value == 1.0, sample
    assert "ConnectError" in sample.detail, sample
    assert "sw0rdfish" not in f"{sample.error} {sample.detail}"
    assert sample.detail.startswith(f"GET http://127.0.0.1:{port}/health -> ")
