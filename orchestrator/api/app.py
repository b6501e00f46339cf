"""FastAPI application: /v1/migrations and the health endpoints."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any

import yaml
from fastapi import FastAPI, Path, Query, Request, Response
from fastapi.responses import JSONResponse

from orchestrator.api import problems
from orchestrator.api.schemas import EventList, Health, RunList, RunView, WaitResult
from orchestrator.domain.errors import SpecError
from orchestrator.domain.plan import Stage
from orchestrator.domain.states import RunStatus
from orchestrator.engine.planner import render_plan_text
from orchestrator.service import SETTLED, MigrationService

MAX_SPEC_BYTES = 1_000_000
MigrationId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_.-]{1,120}$")]


def create_app(service_factory: Callable[[], MigrationService]) -> FastAPI:
    """`service_factory` is called once at start-up, so tests and `serve` wire their own service."""

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

    app = FastAPI(title="osctl", version="0.1.0", lifespan=lifespan)
    problems.install(app)

    def svc(request: Request) -> MigrationService:
        service: MigrationService = request.app.state.service
        return service

    @app.get("/healthz", response_model=Health)
    async def healthz() -> Health:
        return Health(status="ok")

    @app.get("/readyz", response_model=Health)
    async def readyz(request: Request) -> Response:
        if getattr(request.app.state, "ready", False):
            return JSONResponse(Health(status="ready").model_dump())
        return problems.problem(503, "Not ready", "the service is starting or draining")

    @app.post("/v1/migrations", status_code=201)
    async def create_migration(request: Request) -> JSONResponse:
        data = await _read_spec(request)
        run = await svc(request).create(data)
        body = {"migration": RunView.of(run).model_dump(mode="json"), "plan_text": render_plan_text(run.plan)}
        return JSONResponse(body, status_code=201, headers={"Location": f"/v1/migrations/{run.id}"})

    @app.get("/v1/migrations", response_model=RunList)
    async def list_migrations(request: Request, limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> RunList:
        runs = await svc(request).list_runs(limit)
        return RunList(migrations=[RunView.of(run, with_plan=False) for run in runs])

    @app.get("/v1/migrations/{migration_id}", response_model=RunView)
    async def get_migration(request: Request, migration_id: MigrationId) -> RunView:
        return RunView.of(await svc(request).get(migration_id))

    @app.post("/v1/migrations/{migration_id}/stages/{stage}", status_code=202, response_model=RunView)
    async def start_stage(request: Request, migration_id: MigrationId, stage: Stage) -> RunView:
        return RunView.of(await svc(request).start_stage(migration_id, stage))

    @app.post("/v1/migrations/{migration_id}/deploy-gate", response_model=RunView)
    async def approve_deploy(request: Request, migration_id: MigrationId) -> RunView:
        return RunView.of(await svc(request).approve_deploy(migration_id))

    @app.post("/v1/migrations/{migration_id}/rollback", status_code=202, response_model=RunView)
    async def rollback(request: Request, migration_id: MigrationId) -> RunView:
        return RunView.of(await svc(request).rollback(migration_id))

    @app.post("/v1/migrations/{migration_id}/pause", response_model=RunView)
    async def pause(request: Request, migration_id: MigrationId) -> RunView:
        return RunView.of(await svc(request).pause(migration_id))

    @app.post("/v1/migrations/{migration_id}/resume", status_code=202, response_model=RunView)
    async def resume(request: Request, migration_id: MigrationId) -> RunView:
        return RunView.of(await svc(request).resume(migration_id))

    @app.patch("/v1/migrations/{migration_id}/backfill", response_model=RunView)
    async def tune_backfill(request: Request, migration_id: MigrationId) -> RunView:
        """Change chunk_target_ms, batch_size (null: adaptive again) or pause_ms while it runs."""
        try:
            changes = json.loads(await request.body() or b"{}")
        except json.JSONDecodeError as error:
            raise SpecError([("(body)", f"the body is not valid JSON: {error}")]) from error
        if not isinstance(changes, dict):
            raise SpecError([("(body)", 'send an object such as {"chunk_target_ms": 100}')])
        return RunView.of(await svc(request).tune(migration_id, changes))

    @app.post("/v1/migrations/{migration_id}/cancel", response_model=RunView)
    async def cancel(request: Request, migration_id: MigrationId) -> RunView:
        return RunView.of(await svc(request).cancel(migration_id))

    @app.get("/v1/migrations/{migration_id}/events", response_model=EventList)
    async def events(
        request: Request, migration_id: MigrationId, after: Annotated[int, Query(ge=0)] = 0
    ) -> EventList:
        return EventList(events=await svc(request).list_events(migration_id, after))

    @app.get("/v1/migrations/{migration_id}/wait", response_model=WaitResult)
    async def wait(
        request: Request,
        migration_id: MigrationId,
        until: Annotated[str, Query(description="Comma-separated statuses, e.g. awaiting_deploy")],
        timeout: Annotated[float, Query(ge=0, le=300)] = 30.0,
    ) -> WaitResult:
        wanted = _statuses(until)
        run, reached = await svc(request).wait(migration_id, wanted, timeout)
        timed_out = not reached and run.status not in SETTLED
        return WaitResult(reached=reached, timed_out=timed_out, migration=RunView.of(run, with_plan=False))

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
