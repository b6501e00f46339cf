"""The service as a real process, for tests that kill it, restart it or drive it over HTTP."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path

import httpx

from tests.support.pg import eventually


def run_key() -> str:
    return str(uuid.uuid4())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@asynccontextmanager
async def service_process(
    dsn: str, state_dir: Path, port: int, extra_env: Mapping[str, str] | None = None
) -> AsyncIterator[subprocess.Popen[bytes]]:
    """`osctl serve` as a real process (target `app`, SQLite state in `state_dir`), once it is ready."""
    env = {
        **os.environ,
        "OSCTL_TARGET_APP": dsn,
        "OSCTL_STATE_URL": f"sqlite+aiosqlite:///{state_dir / 'state.db'}",
        "OSCTL_PORT": str(port),
        **(extra_env or {}),
    }
    osctl = Path(sys.executable).parent / "osctl"
    log = (state_dir / "service.log").open("ab")
    process = subprocess.Popen([str(osctl), "serve"], env=env, stdout=log, stderr=log)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:

            async def ready() -> bool:
                if process.poll() is not None:
                    raise AssertionError(f"service exited with {process.returncode}")
                try:
                    return (await client.get("/readyz")).status_code == 200
                except httpx.TransportError:
                    return False

            await eventually(ready, timeout=30, what="the service to be ready")
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=30)
        log.close()
