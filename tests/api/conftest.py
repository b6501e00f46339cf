"""Fixtures for the HTTP API tests: a fresh PostgreSQL database with `accounts`, and the app in-process."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from adapters.postgres.workload import create_accounts
from orchestrator.access import TokenBook
from orchestrator.api.app import create_app
from orchestrator.api.slack import SlackInteractivity
from orchestrator.service import MigrationService
from tests.support.pg import PgPair, build_service, connect, fresh_database
from tests.support.slack_recorder import slack_recorder

__all__ = ["slack_recorder"]  # the fixture, re-exported so pytest finds it for this package

ACCOUNT_ROWS = 300


async def with_idempotency_key(request: httpx.Request) -> None:
    """Every POST carries an Idempotency-Key, as the osctl client verbs send one (a create needs it)."""
    if request.method == "POST" and "idempotency-key" not in request.headers:
        request.headers["Idempotency-Key"] = str(uuid.uuid4())


@asynccontextmanager
async def running_api(
    service_factory: Callable[[], MigrationService],
    *,
    tokens: TokenBook | None = None,
    keys: bool = True,
    slack: SlackInteractivity | None = None,
) -> AsyncIterator[httpx.AsyncClient]:
    """The app with its lifespan run (ASGITransport does not run it) and a client talking to it.

    With `keys` every POST gets an Idempotency-Key unless it carries one.
    """
    app = create_app(service_factory, tokens=tokens, slack=slack)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://test",
            event_hooks={"request": [with_idempotency_key] if keys else []},
        ) as client,
    ):
        yield client


@dataclass(frozen=True)
class Api:
    client: httpx.AsyncClient
    pair: PgPair


@pytest.fixture
async def pair() -> AsyncIterator[PgPair]:
    async with fresh_database() as fresh:
        async with connect(fresh.primary) as conn:
            await create_accounts(conn, rows=ACCOUNT_ROWS)
        yield fresh


@pytest.fixture
async def api(pair: PgPair, tmp_path: Path) -> AsyncIterator[Api]:
    async with running_api(lambda: build_service(pair, tmp_path)) as client:
        yield Api(client, pair)
