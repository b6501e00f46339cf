"""The container image: built from the Dockerfile, then started read-only as it runs in Kubernetes.

`make test` runs `scripts/docker-engine.sh start` first: it starts dockerd where it can (its state in
.services/, `--iptables=false --bridge=none`), builds the base image and writes .services/docker.env
with DOCKER_HOST and OSCTL_TEST_BASE_IMAGE; where no engine can run it writes the reason as
OSCTL_TEST_DOCKER_UNAVAILABLE and this module skips with it. By hand:

    bash scripts/docker-engine.sh start && . .services/docker.env
    pytest tests/deploy/test_image.py

No registry is reachable on these machines, so the base image is local: OSCTL_TEST_BASE_IMAGE names a
Debian bookworm image with python3 (3.11) and python3-venv; the script imports one from a debootstrap
root filesystem (`--variant=minbase --include=python3,python3-venv,ca-certificates`), with the host's
extra CAs trusted inside it when egress goes through a TLS-intercepting proxy.

The build itself fetches the Python dependencies from PyPI and percona-toolkit from Debian, through
the network named by OSCTL_TEST_DOCKER_NETWORK (default `host`: dockerd here runs with
--bridge=none). OSCTL_TEST_BUILD_ARGS adds build arguments (space-separated KEY=VALUE), e.g.
`PIP_CERT=/etc/ssl/certs/ca-certificates.crt` (the script sets it behind such a proxy: pip trusts
certifi's bundle, not the system one). The service is reached on the host network at a free port.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.deploy.conftest import ROOT

pytestmark = pytest.mark.timeout(1800)  # a cold build downloads every dependency

NETWORK = os.environ.get("OSCTL_TEST_DOCKER_NETWORK", "host")
EXTRA_BUILD_ARGS = os.environ.get("OSCTL_TEST_BUILD_ARGS", "").split()
CONTEXT_FILES = ["Dockerfile", ".dockerignore", "pyproject.toml", "README.md"]
CONTEXT_DIRS = ["orchestrator", "adapters", "runbooks"]
FAKE_GH_OST = "#!/bin/sh\necho 'gh-ost stand-in 0.0.0'\n"


def docker(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        output = (result.stdout + result.stderr)[-4000:]
        raise AssertionError(f"docker {' '.join(args)} failed ({result.returncode}):\n{output}")
    return result


@pytest.fixture(scope="module")
def base_image() -> str:
    unavailable = os.environ.get("OSCTL_TEST_DOCKER_UNAVAILABLE")
    if unavailable:
        pytest.skip(f"no Docker engine on this machine (scripts/docker-engine.sh): {unavailable}")
    if shutil.which("docker") is None:
        pytest.skip(
            "no docker CLI on this machine: run `bash scripts/docker-engine.sh start` "
            "(installs docker.io) and source .services/docker.env"
        )
    host = os.environ.get("DOCKER_HOST", "the default socket")
    info = docker("info", "--format", "{{.ServerVersion}}", timeout=30, check=False)
    if info.returncode != 0:
        pytest.skip(
            f"no Docker engine answers on {host} (`docker info`: {info.stderr.strip()[-300:]}): "
            "run `bash scripts/docker-engine.sh start` and source .services/docker.env"
        )
    image = os.environ.get("OSCTL_TEST_BASE_IMAGE")
    if not image:
        pytest.skip(
            "OSCTL_TEST_BASE_IMAGE is unset: no registry to pull python:3.11-slim-bookworm from; "
            "`bash scripts/docker-engine.sh start` builds a local one and names it in .services/docker.env"
        )
    if docker("image", "inspect", image, check=False).returncode != 0:
        pytest.skip(
            f"OSCTL_TEST_BASE_IMAGE={image} is not an image the engine on {host} has: "
            "`bash scripts/docker-engine.sh start` builds local/bookworm-python:osctl"
        )
    return image


def build(context: Path, tag: str, base_image: str, *build_args: str) -> None:
    args = ["build", "--force-rm", "--network", NETWORK, "--tag", tag]
    for build_arg in [f"BASE_IMAGE={base_image}", *EXTRA_BUILD_ARGS, *build_args]:
        args += ["--build-arg", build_arg]
    docker(*args, str(context), timeout=1500)


@pytest.fixture(scope="module")
def build_context(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The files the image needs, plus a stand-in gh-ost, apart from the working tree."""
    context = tmp_path_factory.mktemp("image-context")
    for name in CONTEXT_FILES:
        shutil.copy2(ROOT / name, context / name)
    for name in CONTEXT_DIRS:
        shutil.copytree(ROOT / name, context / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    vendor = context / "vendor"
    vendor.mkdir()
    (vendor / "gh-ost").write_text(FAKE_GH_OST)
    return context


@pytest.fixture(scope="module")
def image(base_image: str, build_context: Path) -> Iterator[str]:
    """Built with a gh-ost binary from the build context (GH_OST_BIN_PATH)."""
    tag = f"osctl-test:{uuid.uuid4().hex[:12]}"
    build(build_context, tag, base_image, "GH_OST_BIN_PATH=vendor/gh-ost")
    yield tag
    docker("image", "rm", "--force", tag, check=False)


def run_shell(image: str, script: str) -> str:
    result = docker(
        "run", "--rm", "--read-only", "--network", NETWORK, "--entrypoint", "sh", image, "-c", script
    )
    return result.stdout


def test_runs_as_uid_10001_with_pt_osc_and_the_baked_in_gh_ost(image: str) -> None:
    lines = run_shell(
        image,
        'id -u; id -g; echo "GH_OST_BIN=$GH_OST_BIN"; "$GH_OST_BIN"; '
        "pt-online-schema-change --version; perl -MDBI -MDBD::mysql -e 'print qq(dbd-mysql ok\\n)'; "
        "osctl schema > /dev/null && echo osctl ok",
    ).splitlines()
    assert lines[:4] == ["10001", "10001", "GH_OST_BIN=/opt/gh-ost/gh-ost", "gh-ost stand-in 0.0.0"]
    assert lines[4].startswith("pt-online-schema-change ")
    assert lines[5:] == ["dbd-mysql ok", "osctl ok"]


def test_root_filesystem_read_only_but_tmp_and_state_writable(image: str) -> None:
    lines = run_shell(
        image,
        "touch /opt/osctl/x 2>/dev/null && echo root-writable || echo root-read-only; "
        "touch /tmp/x && echo tmp-writable; touch /var/lib/osctl/x && echo state-writable",
    ).splitlines()
    assert lines == ["root-read-only", "tmp-writable", "state-writable"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_serves_healthz_turns_healthy_and_stops_cleanly_on_sigterm(image: str) -> None:
    port = free_port()
    name = f"osctl-test-{uuid.uuid4().hex[:8]}"
    docker(
        "run", "--detach", "--name", name, "--read-only", "--network", NETWORK,
        "--env", f"OSCTL_PORT={port}", "--health-interval", "1s", "--health-start-period", "60s",
        image,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        health = ""
        while time.monotonic() < deadline:
            state = json.loads(docker("inspect", "--format", "{{json .State}}", name).stdout)
            assert state["Running"], docker("logs", name).stderr
            health = state.get("Health", {}).get("Status", "")
            if health == "healthy":
                break
            time.sleep(0.5)
        assert health == "healthy", docker("logs", name).stderr
        base = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{base}/healthz", timeout=5).json()["status"] == "ok"
        assert httpx.get(f"{base}/readyz", timeout=5).json()["status"] == "ready"
        assert (
            docker("exec", name, "sh", "-c", "test -s /var/lib/osctl/state.db && echo stored").stdout
            == "stored\n"
        )
        docker("stop", "--time", "30", name, timeout=60)
        state = json.loads(docker("inspect", "--format", "{{json .State}}", name).stdout)
        logs = docker("logs", name)
        assert state["ExitCode"] == 0, logs.stdout + logs.stderr
        assert "Traceback" not in logs.stdout + logs.stderr
    finally:
        docker("rm", "--force", name, check=False)


def test_without_gh_ost_the_slot_stays_empty(base_image: str, build_context: Path, image: str) -> None:
    tag = f"osctl-test:{uuid.uuid4().hex[:12]}"
    build(build_context, tag, base_image)  # every layer but the gh-ost one comes from the cache
    try:
        output = run_shell(tag, 'echo "GH_OST_BIN=[$GH_OST_BIN]"; ls -A /opt/gh-ost | wc -l')
        assert output.split() == ["GH_OST_BIN=[]", "0"]
    finally:
        docker("image", "rm", "--force", tag, check=False)
