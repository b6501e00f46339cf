"""API latency into /metrics, and one audit line per mutating call naming the caller."""

from __future__ import annotations

import time

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from orchestrator import metrics
from orchestrator.api.auth import principal_of

log = structlog.get_logger(__name__)

MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class ObservabilityMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def record(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, record)
        finally:
            # The route template, not the path: one series per endpoint, not one per migration id.
            route = getattr(scope.get("route"), "path", "unmatched")
            metrics.api_request(scope["method"], route, status, time.perf_counter() - started)
            if scope["method"] in MUTATING:
                log.info(
                    "api_audit",
                    actor=principal_of(scope).name,
                    method=scope["method"],
                    path=scope["path"],
                    status=status,
                )
