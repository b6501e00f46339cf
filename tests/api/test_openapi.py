"""The served OpenAPI 3.1 document, and schemathesis against a running service: no 5xx, no answer
outside what the document promises."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from adapters.postgres.workload import create_accounts
from tests.api.conftest import running_api
from tests.support.pg import PgPair, build_service, connect, require_env, with_database

pytestmark = pytest.mark.integration

OSCTL = str(Path(sys.executable).parent / "osctl")
EXAMPLES = 30
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


async def test_the_document_is_openapi_3_1_and_describes_auth_errors_and_bodies(
    pair: PgPair, tmp_path: Path
) -> None:
    async with running_api(lambda: build_service(pair, tmp_path)) as client:
        document: dict[str, Any] = (await client.get("/openapi.json")).json()
    assert document["openapi"].startswith("3.1.")
    paths = document["paths"]
    assert {
        "/v1/migrations",
        "/v1/migrations/{migration_id}",
        "/v1/migrations/{migration_id}/stages/{stage}",
        "/v1/migrations/{migration_id}/deploy-gate",
        "/v1/migrations/{migration_id}/rollback",
        "/v1/migrations/{migration_id}/pause",
        "/v1/migrations/{migration_id}/resume",
        "/v1/migrations/{migration_id}/cancel",
        "/v1/migrations/{migration_id}/backfill",
        "/v1/migrations/{migration_id}/events",
        "/v1/migrations/{migration_id}/wait",
        "/v1/leadership",
    } <= set(paths)
    assert "/metrics" not in paths
    schemes = document["components"]["securitySchemes"]
    assert schemes == {
        "HTTPBearer": {
            "type": "http",
            "scheme": "bearer",
            "description": schemes["HTTPBearer"]["description"],
        }
    }
    for path, operations in paths.items():
        for method, operation in operations.items():
            if path.startswith("/v1/"):
                assert operation["security"] == [{"HTTPBearer": []}], (method, path)
                assert {"401", "403"} <= set(operation["responses"]), (method, path)
            for code, response in operation["responses"].items():
                if int(code) >= 400:
                    assert response["content"] == {
                        "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
                    }, (method, path, code)
            if method == "post" and path.startswith("/v1/migrations"):
                keys = [p for p in operation["parameters"] if p["name"] == "Idempotency-Key"]
                assert len(keys) == 1 and keys[0]["in"] == "header", path
                assert keys[0]["required"] is (path == "/v1/migrations")
    create = paths["/v1/migrations"]["post"]
    body = create["requestBody"]["content"]
    assert set(body) == {"application/json", "application/yaml"}
    operations = body["application/json"]["schema"]["properties"]["operations"]["items"]["oneOf"]
    assert {next(iter(entry["properties"])) for entry in operations} >= {
        "add_column",
        "backfill",
        "drop_column",
    }
    schemas = document["components"]["schemas"]
    for entry in operations:
        (ref,) = (prop["$ref"] for prop in entry["properties"].values())
        assert ref.removeprefix("#/components/schemas/") in schemas  # every reference resolves
    assert create["responses"]["201"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/CreateResult"
    }
    run_view = schemas["RunView"]["properties"]
    assert {"waiting", "queued", "queue_position"} <= set(run_view)


# --- schemathesis ------------------------------------------------------------------------------------


def _run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


async def _seed(primary: str, database: str) -> None:
    admin_dsn = primary
    async with connect(admin_dsn) as admin:
        await admin.execute(f'CREATE DATABASE "{database}"')
    async with connect(with_database(primary, database)) as conn:
        await create_accounts(conn, rows=50)


async def _drop(primary: str, database: str) -> None:
    async with connect(primary) as admin:
        await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


@pytest.fixture
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`osctl serve` in its own process on a fresh target database; its base URL."""
    primary = require_env("PG_PRIMARY_DSN")
    database = f"t_{uuid.uuid4().hex[:12]}"
    _run(_seed(primary, database))
    state = tmp_path_factory.mktemp("schemathesis")
    port = _free_port()
    env = {
        **os.environ,
        "OSCTL_TARGET_APP": with_database(primary, database),
        "OSCTL_STATE_URL": f"sqlite+aiosqlite:///{state / 'state.db'}",
        "OSCTL_PORT": str(port),
        "OSCTL_LOG_LEVEL": "warning",
    }
    log = (state / "service.log").open("wb")
    process = subprocess.Popen([OSCTL, "serve"], env=env, stdout=log, stderr=log)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(process, base)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()
        _run(_drop(primary, database))


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_ready(process: subprocess.Popen[bytes], base: str) -> None:
    with httpx.Client(base_url=base) as client:
        for _ in range(300):
            if process.poll() is not None:
                raise AssertionError(f"osctl serve exited with {process.returncode}")
            try:
                if client.get("/readyz").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            # Polling a process's readiness: there is no event to wait on across processes.
            import time

            time.sleep(0.1)
    raise AssertionError("osctl serve did not become ready")


def test_no_server_errors_and_no_answer_outside_the_document(served: str) -> None:
    """Every operation, examples generated from the document: bounded so the run stays short."""
    schema = schemathesis.openapi.from_url(f"{served}/openapi.json")
    exercised = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result
        operation = result.ok()
        exercised.append(f"{operation.method.upper()} {operation.path}")

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            derandomize=True,
            database=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        def exercise(case: Any) -> None:
            case.call_and_validate(base_url=served, checks=CHECKS, timeout=30)

        exercise()
    assert "POST /v1/migrations" in exercised and len(exercised) >= 12
