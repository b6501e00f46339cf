"""`Idempotency-Key` on every POST: a retried request gets the first answer instead of a second effect.

The first answer is kept in the state store, so a retry that lands on another replica gets it too.
Same key and same request: the stored answer, with `Idempotent-Replayed: true`. Same key, another
request: 422. Same key while the first is still being answered: 409. No key on `POST /v1/migrations`:
400, since creating a migration twice is the one mistake a retry would make unnoticed. Answers of 5xx
are not kept: the client may retry them with the same key.
"""

from __future__ import annotations

import hashlib
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from orchestrator.api import problems
from orchestrator.api.auth import principal_of
from orchestrator.ports import StoredResponse

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
# Where a key is required, not just honoured.
REQUIRED_PATHS = frozenset({"/v1/migrations"})
MAX_KEY_LENGTH = 200
MAX_STORED_BODY = 2_000_000


def fingerprint(method: str, path: str, query: bytes, content_type: str, body: bytes) -> str:
    digest = hashlib.sha256()
    for part in (method.encode(), path.encode(), query, content_type.encode(), body):
        digest.update(len(part).to_bytes(8, "big"))  # length-prefixed: no two requests collide by joining
        digest.update(part)
    return digest.hexdigest()


class IdempotencyMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or not scope["path"].startswith("/v1/"):
            await self.app(scope, receive, send)
            return
        headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]}
        key = headers.get(HEADER.lower(), "").strip()
        if not key:
            if scope["path"] in REQUIRED_PATHS:
                await _answer(
                    scope,
                    receive,
                    send,
                    400,
                    "Idempotency-Key required",
                    f"send an {HEADER} header (a fresh UUID per intended action) with this POST",
                )
                return
            await self.app(scope, receive, send)
            return
        if len(key) > MAX_KEY_LENGTH or not key.isprintable():
            await _answer(
                scope,
                receive,
                send,
                400,
                "Invalid Idempotency-Key",
                f"{HEADER} must be printable and at most {MAX_KEY_LENGTH} characters",
            )
            return

        body = await _read_body(receive)
        service = scope["app"].state.service
        principal = principal_of(scope).name
        content_type = headers.get("content-type", "")
        claim = await service.claim_request(
            principal,
            key,
            fingerprint(scope["method"], scope["path"], scope["query_string"], content_type, body),
        )
        if claim.outcome == "replay":
            await _replay(claim.response, send)
            return
        if claim.outcome == "mismatch":
            await _answer(
                scope,
                receive,
                send,
                422,
                "Idempotency-Key reused",
                f"this {HEADER} was first used with another request; use a new key for a new request",
            )
            return
        if claim.outcome == "in_progress":
            await _answer(
                scope,
                receive,
                send,
                409,
                "Request in progress",
                f"a request with this {HEADER} is still being answered; retry shortly",
            )
            return

        captured: dict[str, Any] = {"status": 500, "headers": [], "body": bytearray()}

        async def replay_body() -> Message:
            nonlocal body
            chunk, body = body, b""
            return {"type": "http.request", "body": chunk, "more_body": False}

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                captured["status"] = message["status"]
                captured["headers"] = message.get("headers", [])
            elif message["type"] == "http.response.body":
                captured["body"] += message.get("body", b"")
            await send(message)

        try:
            await self.app(scope, replay_body, capture)
        except BaseException:
            await service.release_request(principal, key)
            raise
        status = int(captured["status"])
        if status >= 500 or len(captured["body"]) > MAX_STORED_BODY:
            await service.release_request(principal, key)
            return
        response_headers = {
            name.decode("latin-1").lower(): value.decode("latin-1") for name, value in captured["headers"]
        }
        await service.complete_request(
            principal,
            key,
            StoredResponse(
                status=status,
                body=bytes(captured["body"]),
                content_type=response_headers.get("content-type", "application/json"),
                location=response_headers.get("location"),
            ),
        )


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


async def _replay(stored: StoredResponse | None, send: Send) -> None:
    assert stored is not None
    headers = [
        (b"content-type", stored.content_type.encode("latin-1")),
        (b"content-length", str(len(stored.body)).encode()),
        (REPLAYED_HEADER.lower().encode(), b"true"),
    ]
    if stored.location:
        headers.append((b"location", stored.location.encode("latin-1")))
    await send({"type": "http.response.start", "status": stored.status, "headers": headers})
    await send({"type": "http.response.body", "body": stored.body})


async def _answer(scope: Scope, receive: Receive, send: Send, status: int, title: str, detail: str) -> None:
    await problems.problem(status, title, detail)(scope, receive, send)
