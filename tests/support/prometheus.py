"""A real Prometheus (Debian's `prometheus` binary) on loopback, scraping a tiny exporter the test controls.

`MetricsExporter` serves `/metrics` in the text exposition format from a stdlib HTTP server on a free
loopback port; the test sets counters and Prometheus scrapes them every second. `PrometheusServer`
starts the binary with a temporary config and storage directory, waits (bounded) for `/-/ready`, and
stops it. Fixtures: `metrics_exporter` and `prometheus_server` (one per test module, returned once the
first scrape happened) and `lone_prometheus` (one per test, scraping nothing, for tests that stop it).
They skip only when the binary is absent (`make test` installs it through scripts/services.sh).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

SCRAPE_INTERVAL = "1s"
READY_TIMEOUT = 20.0
FIRST_SCRAPE_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0


class MetricsExporter:
    """Counters (and gauges) a test sets; served as `/metrics` to whoever scrapes."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._series: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        self._types: dict[str, str] = {}
        self.scrapes = 0
        exporter = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.split("?")[0] != "/metrics":
                    self.send_error(404)
                    return
                body = exporter.render().encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="metrics-exporter", daemon=True
        )

    @property
    def address(self) -> str:
        host, port = self._server.server_address[:2]
        return f"{host!s}:{port}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=STOP_TIMEOUT)

    def set(self, name: str, value: float, *, kind: str = "counter", **labels: str) -> None:
        """Set one series; several `set`s under `update()` reach a scrape together."""
        with self._lock:
            self._types[name] = kind
            self._series[(name, tuple(sorted(labels.items())))] = value

    def add(self, name: str, amount: float, **labels: str) -> None:
        with self._lock:
            key = (name, tuple(sorted(labels.items())))
            self._series[key] = self._series.get(key, 0.0) + amount

    def update(self) -> AbstractContextManager[object]:
        """`with exporter.update(): ...` makes several changes atomic with respect to scrapes."""
        return self._lock

    def render(self) -> str:
        with self._lock:
            self.scrapes += 1
            lines: list[str] = []
            for name in sorted(self._types):
                lines.append(f"# TYPE {name} {self._types[name]}")
                for (series, labels), value in sorted(self._series.items()):
                    if series == name:
                        text = ",".join(f'{key}="{val}"' for key, val in labels)
                        lines.append(f"{name}{{{text}}} {value:g}" if text else f"{name} {value:g}")
            return "\n".join(lines) + "\n"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PrometheusServer:
    def __init__(self, binary: str, workdir: Path, targets: list[str]) -> None:
        self._binary = binary
        self._workdir = workdir
        self._targets = targets
        self._process: subprocess.Popen[bytes] | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        config = self._workdir / "prometheus.yml"
        targets = ", ".join(f"'{target}'" for target in self._targets)
        config.write_text(
            "global:\n"
            f"  scrape_interval: {SCRAPE_INTERVAL}\n"
            f"  evaluation_interval: {SCRAPE_INTERVAL}\n"
            "scrape_configs:\n"
            "  - job_name: app\n"
            f"    scrape_interval: {SCRAPE_INTERVAL}\n"
            f"    scrape_timeout: {SCRAPE_INTERVAL}\n"
            f"    static_configs:\n      - targets: [{targets}]\n"
        )
        for _attempt in range(3):  # a free port can be taken between probing it and binding it
            self.port = free_port()
            log = (self._workdir / "prometheus.log").open("ab")
            self._process = subprocess.Popen(
                [
                    self._binary,
                    f"--config.file={config}",
                    f"--storage.tsdb.path={self._workdir / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--log.level=warn",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            log.close()
            if self._wait_ready():
                return
            self.stop()
        raise RuntimeError(f"prometheus did not become ready; log:\n{self.log()[-3000:]}")

    def _wait_ready(self) -> bool:
        deadline = time.monotonic() + READY_TIMEOUT
        with httpx.Client(timeout=1.0) as client:
            while time.monotonic() < deadline:
                assert self._process is not None
                if self._process.poll() is not None:
                    return False
                try:
                    if client.get(f"{self.url}/-/ready").status_code == 200:
                        return True
                except httpx.HTTPError:
                    pass
                time.sleep(0.05)
        return False

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=STOP_TIMEOUT)

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def log(self) -> str:
        path = self._workdir / "prometheus.log"
        return path.read_text(errors="replace") if path.exists() else ""


def prometheus_binary() -> str | None:
    return shutil.which("prometheus") or (
        "/usr/bin/prometheus" if Path("/usr/bin/prometheus").exists() else None
    )


def require_binary() -> str:
    binary = prometheus_binary()
    if binary is None:
        pytest.skip(
            "the `prometheus` binary is not installed (scripts/services.sh installs Debian's package)"
        )
    return binary


# Prometheus 2.42 hands new targets to its scrapers at most every 5 s, so the first scrape comes about
# 5 s after start: the scraping server is shared by a module, and its tests use metric names of their own.


@pytest.fixture(scope="module")
def metrics_exporter() -> Iterator[MetricsExporter]:
    exporter = MetricsExporter()
    exporter.start()
    try:
        yield exporter
    finally:
        exporter.stop()


@pytest.fixture(scope="module")
def prometheus_server(
    metrics_exporter: MetricsExporter, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PrometheusServer]:
    """A Prometheus scraping `metrics_exporter` every second, returned once it has scraped it."""
    server = PrometheusServer(
        require_binary(), tmp_path_factory.mktemp("prometheus"), [metrics_exporter.address]
    )
    server.start()
    try:
        deadline = time.monotonic() + FIRST_SCRAPE_TIMEOUT
        while metrics_exporter.scrapes == 0:
            if time.monotonic() > deadline or not server.running:
                raise RuntimeError(f"prometheus never scraped the exporter; log:\n{server.log()[-3000:]}")
            time.sleep(0.05)
        yield server
    finally:
        server.stop()


@pytest.fixture
def lone_prometheus(tmp_path: Path) -> Iterator[PrometheusServer]:
    """A Prometheus of the test's own, scraping nothing: for tests that stop it."""
    server = PrometheusServer(require_binary(), tmp_path, [])
    server.start()
    try:
        yield server
    finally:
        server.stop()
