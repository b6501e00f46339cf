"""Bearer tokens: who calls (middleware, 401) and whether they may (per-route dependency, 403).

Identity is settled in a middleware so that everything after it (idempotency keys are kept per
caller, the audit line names the caller) knows who it is; the scope each route needs is declared on
the route, where it also documents itself in the OpenAPI description.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

import structlog
from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.types import ASGIApp, Receive, Scope, Send

from orchestrator.access import ANONYMOUS, Principal, TokenBook, permits
from orchestrator.access import Scope as AccessScope
from orchestrator.api import problems

log = structlog.get_logger(__name__)

# Paths anyone may call: probes, metrics scrapes and the API description.
# /slack/interactivity authenticates by Slack's request signature instead of a bearer token.
OPEN_PATHS = frozenset(
    {"/healthz", "/readyz", "/metrics", "/openapi.json", "/docs", "/redoc", "/slack/interactivity"}
)

bearer = HTTPBearer(
    auto_error=False,
    description="An osctl token (`osctl token new`); its scopes decide what it may call.",
)


class ForbiddenError(Exception):
    def __init__(self, principal: Principal, needed: tuple[AccessScope, ...]) -> None:
        self.principal = principal
        self.needed = needed
        super().__init__(
            f"token {principal.name!r} has scopes {', '.join(sorted(principal.scopes)) or 'none'}; "
            f"this call needs one of: {', '.join(needed)}"
        )


def principal_of(scope: Scope) -> Principal:
    state = scope.get("state") or {}
    principal = state.get("principal")
    return principal if isinstance(principal, Principal) else ANONYMOUS


class AuthMiddleware:
    """Resolves the bearer token to a principal; 401 for a missing or unknown one on /v1/ paths."""

    def __init__(self, app: ASGIApp, tokens: TokenBook) -> None:
        self.app = app
        self.tokens = tokens

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        principal: Principal | None = ANONYMOUS
        if self.tokens.enabled:
            principal = self._authenticate(scope)
            if principal is None:
                response = problems.problem(
                    401, "Unauthorized", "send a valid token as 'Authorization: Bearer <token>'"
                )
                response.headers["WWW-Authenticate"] = 'Bearer realm="osctl"'
                await response(scope, receive, send)
                return
        scope.setdefault("state", {})["principal"] = principal
        await self.app(scope, receive, send)

    def _authenticate(self, scope: Scope) -> Principal | None:
        for name, value in scope.get("headers", []):
            if name == b"authorization":
                scheme, _, token = value.decode("latin-1").partition(" ")
                if scheme.lower() == "bearer" and token.strip():
                    return self.tokens.authenticate(token.strip())
        return None


def requires(*scopes: AccessScope) -> Callable[..., Principal]:
    """A route dependency: the caller, if one of its scopes allows one of `scopes`; 403 otherwise."""

    def dependency(
        request: Request,
        _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)] = None,
    ) -> Principal:
        principal = principal_of(request.scope)
        if not permits(principal.scopes, scopes):
            raise ForbiddenError(principal, scopes)
        return principal

    return dependency


def install(app: FastAPI, tokens: TokenBook) -> None:
    if not tokens.enabled:
        log.warning(
            "api_open",
            detail="no tokens configured (OSCTL_TOKENS_FILE): every caller may do everything; "
            "fine on a laptop, never in a cluster",
        )
    app.add_middleware(AuthMiddleware, tokens=tokens)

    @app.exception_handler(ForbiddenError)
    async def _forbidden(_request: Request, error: ForbiddenError) -> JSONResponse:
        return problems.problem(403, "Forbidden", str(error), required_scopes=list(error.needed))
