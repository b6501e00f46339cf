"""FastAPI application: /v1/migrations, leadership, health, metrics.

Middleware, outermost first: latency and audit -> bearer token (401) -> Idempotency-Key -> the routes,
each declaring the scope it needs (403).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any

import yaml
from fastapi import Body, Depends, FastAPI, Header, Path, Query, Request, Response
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse

from orchestrator import metrics
from orchestrator.access import Principal, Scope, TokenBook
from orchestrator.api import auth, problems
from orchestrator.api import runbooks as runbooks_api
from orchestrator.api import slack as slack_api
from orchestrator.api.idempotency import IdempotencyMiddleware
from orchestrator.api.observability import ObservabilityMiddleware
from orchestrator.api.openapi import finish_openapi
from orchestrator.api.schemas import (
    CreateResult,
    EventList,
    Health,
    LeadershipInfo,
    RunList,
    RunView,
    StageRequest,
    WaitResult,
)
from orchestrator.api.status_page import install_status_page
from orchestrator.domain.errors import SpecError
from orchestrator.domain.plan import Stage
from orchestrator.domain.states import RunStatus
from orchestrator.engine.planner import render_plan_text
from orchestrator.runbooks.confirm import Confirmation
from orchestrator.service import SETTLED, MigrationService

MAX_SPEC_BYTES = 1_000_000
MigrationId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_.-]{1,120}$")]
Reader = Annotated[Principal, Depends(auth.requires(Scope.READ))]
Pipeline = Annotated[Principal, Depends(auth.requires(Scope.PIPELINE))]
Oncall = Annotated[Principal, Depends(auth.requires(Scope.ONCALL))]
Tuner = Annotated[Principal, Depends(auth.requires(Scope.PIPELINE, Scope.ONCALL))]
KEY_DESCRIPTION = "A fresh UUID per intended action; a retry with the same key gets the first answer."
OptionalKey = Annotated[
    str | None, Header(alias="Idempotency-Key", max_length=200, description=KEY_DESCRIPTION)
]
RequiredKey = Annotated[str, Header(alias="Idempotency-Key", max_length=200, description=KEY_DESCRIPTION)]

READ_ERRORS = problems.responses(401, 403, 404, 422)
ACTION_ERRORS = problems.responses(400, 401, 403, 404, 409, 422, 503)


def create_app(
    service_factory: Callable[[], MigrationService],
    *,
    tokens: TokenBook | None = None,
    slack: slack_api.SlackInteractivity | None = None,
) -> FastAPI:
    """`service_factory` is called once at start-up, so tests and `serve` wire their own service.

    Without `tokens` (or with an empty book) the API is open: fine on a laptop, logged as a warning.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service = service_factory()
        await service.start()
        app.state.service = service
        app.state.ready = True
        try:
            yield
        finally:
            app.state.ready = False
            await service.stop()

    app = FastAPI(
        title="osctl",
        version="0.1.0",
        description="Zero-downtime schema changes in stages a release pipeline drives.",
        lifespan=lifespan,
    )
    problems.install(app)
    # add_middleware wraps what is there: the last added runs first.
    app.add_middleware(IdempotencyMiddleware)
    auth.install(app, tokens or TokenBook([]))
    app.add_middleware(ObservabilityMiddleware)
    install_status_page(app)  # the page at / and /v1/targets; its cookie sign-in runs outermost
    slack_api.install(app, slack)  # Slack's buttons: signed by Slack, not by a bearer token
    runbooks_api.install(app)  # runbooks, their dry runs, emergency stop; 409s that carry the plan

    def svc(request: Request) -> MigrationService:
        service: MigrationService = request.app.state.service
        return service

    @app.get("/healthz", response_model=Health)
    async def healthz() -> Health:
        return Health(status="ok")

    @app.get("/readyz", response_model=Health, responses=problems.responses(503))
    async def readyz(request: Request) -> Response:
        service: MigrationService | None = getattr(request.app.state, "service", None)
        if getattr(request.app.state, "ready", False) and service is not None and not service.draining:
            return JSONResponse(Health(status="ready", detail={"leader": service.leading}).model_dump())
        return problems.problem(503, "Not ready", "the service is starting or draining")

    @app.get("/metrics", include_in_schema=False)
    async def prometheus(request: Request) -> Response:
        await svc(request).refresh_metrics()
        return Response(metrics.render(), media_type=metrics.CONTENT_TYPE)

    @app.get("/v1/leadership", response_model=LeadershipInfo, responses=READ_ERRORS)
    async def leadership(request: Request, _caller: Reader) -> LeadershipInfo:
        view = await svc(request).leadership()
        return LeadershipInfo(**vars(view))

    @app.post(
        "/v1/migrations",
        status_code=201,
        responses={201: {"model": CreateResult, "description": "Planned and stored"}, **ACTION_ERRORS},
        openapi_extra={"requestBody": {"required": True, "content": {}}},  # filled in by finish_openapi
    )
    async def create_migration(request: Request, caller: Pipeline, _key: RequiredKey) -> JSONResponse:
        data = await _read_spec(request)
        run = await svc(request).create(data, actor=caller.name)
        body = CreateResult(migration=RunView.of(run), plan_text=render_plan_text(run.plan))
        return JSONResponse(
            body.model_dump(mode="json"), status_code=201, headers={"Location": f"/v1/migrations/{run.id}"}
        )

    @app.get("/v1/migrations", response_model=RunList, responses=READ_ERRORS)
    async def list_migrations(
        request: Request, _caller: Reader, limit: Annotated[int, Query(ge=1, le=1000)] = 100
    ) -> RunList:
        runs = await svc(request).list_runs(limit)
        return RunList(migrations=[RunView.of(run, with_plan=False) for run in runs])

    @app.get("/v1/migrations/{migration_id}", response_model=RunView, responses=READ_ERRORS)
    async def get_migration(request: Request, migration_id: MigrationId, _caller: Reader) -> RunView:
        return RunView.of(await svc(request).get(migration_id))

    @app.post(
        "/v1/migrations/{migration_id}/stages/{stage}",
        status_code=202,
        response_model=RunView,
        responses=ACTION_ERRORS,
    )
    async def start_stage(
        request: Request,
        migration_id: MigrationId,
        stage: Stage,
        caller: Pipeline,
        _key: OptionalKey = None,
        body: Annotated[StageRequest | None, Body()] = None,
    ) -> RunView:
        """Start a stage now; or hold it until `at`, or until the target's maintenance window opens
        (the run's `waiting` says which, and an event is written). Contract first proves that nothing
        used what it drops since the deploy gate: a use is `409` with the `evidence`, unless
        `override_usage.reason` says why to go on (recorded with the caller)."""
        at = body.at if body is not None else None
        usage = body.override_usage if body is not None else None
        override = usage.reason if usage is not None else None
        run = await svc(request).start_stage(
            migration_id, stage, at=at, actor=caller.name, override_usage=override
        )
        return RunView.of(run)

    @app.post("/v1/migrations/{migration_id}/deploy-gate", response_model=RunView, responses=ACTION_ERRORS)
    async def approve_deploy(
        request: Request, migration_id: MigrationId, caller: Pipeline, _key: OptionalKey = None
    ) -> RunView:
        return RunView.of(await svc(request).approve_deploy(migration_id, actor=caller.name))

    @app.post(
        "/v1/migrations/{migration_id}/rollback",
        status_code=202,
        response_model=RunView,
        responses=ACTION_ERRORS,
    )
    async def rollback(
        request: Request,
        migration_id: MigrationId,
        caller: Oncall,
        _key: OptionalKey = None,
        body: Annotated[Confirmation | None, Body()] = None,
    ) -> RunView:
        """Run the migration's rollback runbook (dry run: GET .../runbook). A runbook that asks for a
        confirmation needs `{"confirm": true}` or the dry run's `{"token": ...}`; without it, `409`
        with the plan and its token."""
        return RunView.of(await svc(request).rollback(migration_id, actor=caller.name, confirmation=body))

    @app.post("/v1/migrations/{migration_id}/pause", response_model=RunView, responses=ACTION_ERRORS)
    async def pause(
        request: Request, migration_id: MigrationId, caller: Oncall, _key: OptionalKey = None
    ) -> RunView:
        return RunView.of(await svc(request).pause(migration_id, actor=caller.name))

    @app.post(
        "/v1/migrations/{migration_id}/resume",
        status_code=202,
        response_model=RunView,
        responses=ACTION_ERRORS,
    )
    async def resume(
        request: Request, migration_id: MigrationId, caller: Oncall, _key: OptionalKey = None
    ) -> RunView:
        return RunView.of(await svc(request).resume(migration_id, actor=caller.name))

    @app.patch(
        "/v1/migrations/{migration_id}/backfill",
        response_model=RunView,
        responses=ACTION_ERRORS,
        openapi_extra={"requestBody": {"required": True, "content": {}}},  # filled in by finish_openapi
    )
    async def tune_backfill(request: Request, migration_id: MigrationId, caller: Tuner) -> RunView:
        """Change chunk_target_ms, batch_size (null: adaptive again) or pause_ms while it runs."""
        try:
            changes = json.loads(await request.body() or b"{}")
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise SpecError([("(body)", f"the body is not valid JSON: {error}")]) from error
        if not isinstance(changes, dict):
            raise SpecError([("(body)", 'send an object such as {"chunk_target_ms": 100}')])
        return RunView.of(await svc(request).tune(migration_id, changes, actor=caller.name))

    @app.post("/v1/migrations/{migration_id}/cancel", response_model=RunView, responses=ACTION_ERRORS)
    async def cancel(
        request: Request, migration_id: MigrationId, caller: Oncall, _key: OptionalKey = None
    ) -> RunView:
        return RunView.of(await svc(request).cancel(migration_id, actor=caller.name))

    @app.get("/v1/migrations/{migration_id}/events", response_model=EventList, responses=READ_ERRORS)
    async def events(
        request: Request, migration_id: MigrationId, _caller: Reader, after: Annotated[int, Query(ge=0)] = 0
    ) -> EventList:
        return EventList(events=await svc(request).list_events(migration_id, after))

    @app.get("/v1/migrations/{migration_id}/wait", response_model=WaitResult, responses=READ_ERRORS)
    async def wait(
        request: Request,
        migration_id: MigrationId,
        _caller: Reader,
        until: Annotated[str, Query(description="Comma-separated statuses, e.g. awaiting_deploy")],
        timeout: Annotated[float, Query(ge=0, le=300)] = 30.0,
    ) -> WaitResult:
        wanted = _statuses(until)
        run, reached = await svc(request).wait(migration_id, wanted, timeout)
        timed_out = not reached and run.status not in SETTLED
        return WaitResult(reached=reached, timed_out=timed_out, migration=RunView.of(run, with_plan=False))

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title, version=app.version, description=app.description, routes=app.routes
            )
            app.openapi_schema = finish_openapi(schema)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def _statuses(until: str) -> list[RunStatus]:
    wanted = []
    for raw in until.split(","):
        name = raw.strip()
        try:
            wanted.append(RunStatus(name))
        except ValueError:
            known = ", ".join(status.value for status in RunStatus)
            raise SpecError([("until", f"unknown status {name!r}; one of {known}")]) from None
    return wanted


async def _read_spec(request: Request) -> Any:
    body = await request.body()
    if len(body) > MAX_SPEC_BYTES:
        raise SpecError([("(body)", f"the spec is larger than {MAX_SPEC_BYTES} bytes")])
    content_type = request.headers.get("content-type", "application/json").split(";")[0].strip()
    try:
        if content_type in ("application/yaml", "application/x-yaml", "text/yaml"):
            return yaml.safe_load(body)
        return json.loads(body or b"null")
    except (json.JSONDecodeError, yaml.YAMLError, UnicodeDecodeError) as error:
        raise SpecError([("(body)", f"the body is not valid {content_type}: {error}")]) from error
