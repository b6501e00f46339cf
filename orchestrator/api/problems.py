"""Every error the API returns is RFC 9457 problem+json, mapped from the error hierarchy in one place."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from orchestrator.domain.errors import (
    ConflictError,
    IllegalTransitionError,
    NotFoundError,
    OrchestratorError,
    SpecError,
)
from orchestrator.domain.spec import format_location
from orchestrator.domain.usage import ContractBlockedError

PROBLEM_JSON = "application/problem+json"


def problem(status: int, title: str, detail: str, **extra: Any) -> JSONResponse:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON)


DESCRIPTIONS = {
    400: "Bad request (e.g. no Idempotency-Key on a create)",
    401: "No valid bearer token",
    403: "The token's scopes do not allow this call",
    404: "Unknown migration",
    409: "Not allowed in the current state, or a conflicting request",
    422: "Invalid spec, parameters or body; `errors` names each field",
    503: "Starting, draining, or a retryable failure: retry (on another replica)",
}


def responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the problem answers a route can give (their schema is set in openapi.py)."""
    return {code: {"description": DESCRIPTIONS[code]} for code in codes}


def spec_problem(error: SpecError) -> JSONResponse:
    return problem(
        422,
        "Invalid migration spec",
        str(error),
        errors=[{"field": field, "message": message} for field, message in error.problems],
    )


def install(app: FastAPI) -> None:
    @app.exception_handler(SpecError)
    async def _spec(_request: Request, error: SpecError) -> JSONResponse:
        return spec_problem(error)

    @app.exception_handler(NotFoundError)
    async def _not_found(_request: Request, error: NotFoundError) -> JSONResponse:
        return problem(404, "Not found", str(error))

    @app.exception_handler(ContractBlockedError)
    async def _contract_blocked(_request: Request, error: ContractBlockedError) -> JSONResponse:
        return problem(
            409,
            "Contract refused: what it drops was used since the deploy gate",
            str(error),
            current_state=error.current,
            allowed_actions=error.allowed,
            evidence=error.proof.model_dump(mode="json"),
            override='start contract again with {"override_usage": {"reason": "..."}} to drop it anyway',
        )

    @app.exception_handler(IllegalTransitionError)
    async def _illegal(_request: Request, error: IllegalTransitionError) -> JSONResponse:
        return problem(
            409,
            "Action not allowed in the current state",
            str(error),
            current_state=error.current,
            allowed_actions=error.allowed,
        )

    @app.exception_handler(ConflictError)
    async def _conflict(_request: Request, error: ConflictError) -> JSONResponse:
        return problem(409, "Conflict", str(error))

    @app.exception_handler(OrchestratorError)
    async def _other(_request: Request, error: OrchestratorError) -> JSONResponse:
        return problem(503 if error.retryable else 500, "Orchestrator error", str(error))

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, error: RequestValidationError) -> JSONResponse:
        errors = [
            {"field": format_location(tuple(item["loc"])), "message": item["msg"]} for item in error.errors()
        ]
        detail = "; ".join(f"{item['field']}: {item['message']}" for item in errors)
        return problem(422, "Invalid request", detail, errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, error: StarletteHTTPException) -> JSONResponse:
        return problem(error.status_code, str(error.detail), str(error.detail))
