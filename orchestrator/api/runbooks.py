"""Runbooks over HTTP: what the service loaded, the dry run of a migration's rollback, the emergency
stop of a target, and the 409 answers that carry the plan a rollback was refused with.

    GET  /v1/runbooks                          every runbook loaded at start-up
    GET  /v1/runbooks/{id}                     one runbook, its steps as written
    GET  /v1/migrations/{id}/runbook           the dry run: the runbook a rollback would run now,
                                               every statement it would run, and its token
    POST /v1/targets/{target}/emergency-stop   hold the target, pause everything on it (oncall)
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Path, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from orchestrator.access import Principal, Scope
from orchestrator.api import auth, problems
from orchestrator.domain.errors import NotFoundError
from orchestrator.runbooks.confirm import ConfirmationRequiredError, RunbookRefusedError
from orchestrator.runbooks.emergency import EmergencyStopReport
from orchestrator.runbooks.model import Runbook
from orchestrator.runbooks.planner import RunbookPlan
from orchestrator.service import MigrationService

Reader = Annotated[Principal, Depends(auth.requires(Scope.READ))]
Oncall = Annotated[Principal, Depends(auth.requires(Scope.ONCALL))]
MigrationId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_.-]{1,120}$")]
TargetName = Annotated[str, Path(pattern=r"^[A-Za-z0-9_.-]{1,120}$")]
RunbookId = Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9-]{1,62}$")]

READ_ERRORS = problems.responses(401, 403, 404, 422)


class RunbookView(BaseModel):
    id: str
    description: str
    source: str
    digest: str
    applies_to: dict[str, Any]
    confirmation: str | None = Field(description="What the runbook asks to confirm; null when it does not.")
    steps: list[dict[str, Any]]

    @classmethod
    def of(cls, runbook: Runbook) -> RunbookView:
        confirmation = runbook.confirmation
        return cls(
            id=runbook.id,
            description=runbook.description,
            source=runbook.source,
            digest=runbook.digest(),
            applies_to=runbook.applies_to.model_dump(mode="json"),
            confirmation=confirmation.message if confirmation else None,
            steps=[step.model_dump(mode="json") for step in runbook.steps],
        )


class RunbookList(BaseModel):
    configured: bool = Field(description="False: no runbooks were loaded; a rollback runs the inverse steps.")
    runbooks: list[RunbookView]


class EmergencyStopRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=200, description="Why: shown on every migration stopped.")
    hold_seconds: float | None = Field(
        default=3600, gt=0, le=86_400, description="How long the throttle holds; null: until lifted."
    )


def _service(request: Request) -> MigrationService:
    service: MigrationService = request.app.state.service
    return service


router = APIRouter(tags=["runbooks"])


@router.get("/v1/runbooks", response_model=RunbookList, responses=problems.responses(401, 403))
async def list_runbooks(request: Request, _caller: Reader) -> RunbookList:
    catalogue = _service(request).runbooks
    runbooks = catalogue.runbooks if catalogue is not None else ()
    return RunbookList(configured=catalogue is not None, runbooks=[RunbookView.of(r) for r in runbooks])


@router.get("/v1/runbooks/{runbook_id}", response_model=RunbookView, responses=READ_ERRORS)
async def show_runbook(request: Request, runbook_id: RunbookId, _caller: Reader) -> RunbookView:
    catalogue = _service(request).runbooks
    if catalogue is None:
        raise NotFoundError("runbook (no runbooks are configured)", runbook_id)
    return RunbookView.of(catalogue.get(runbook_id))


@router.get("/v1/migrations/{migration_id}/runbook", response_model=RunbookPlan, responses=READ_ERRORS)
async def runbook_plan(request: Request, migration_id: MigrationId, _caller: Reader) -> RunbookPlan:
    """The dry run of a rollback now: the runbook chosen and why, every step with the statements it
    runs, whether it asks for a confirmation, and the token that confirms exactly this plan."""
    return await _service(request).runbook_plan(migration_id)


@router.post(
    "/v1/targets/{target}/emergency-stop",
    response_model=EmergencyStopReport,
    responses=problems.responses(401, 403, 404, 422, 503),
)
async def emergency_stop(
    request: Request, target: TargetName, body: EmergencyStopRequest, caller: Oncall
) -> EmergencyStopReport:
    """Hold the target's throttle, pause every running migration on it at its next safe point, and
    drop its held stage starts; rollbacks in progress finish. Lift with DELETE .../throttle, then
    resume each migration."""
    return await _service(request).emergency_stop(
        target, reason=body.reason, actor=caller.name, hold_seconds=body.hold_seconds
    )


def _refusal(error: ConfirmationRequiredError | RunbookRefusedError, title: str) -> JSONResponse:
    return problems.problem(
        409,
        title,
        str(error),
        current_state=error.current,
        allowed_actions=error.allowed,
        runbook=error.plan.model_dump(mode="json"),
        token=error.plan.token,
    )


def install(app: FastAPI) -> None:
    app.include_router(router)

    @app.exception_handler(ConfirmationRequiredError)
    async def _confirm(_request: Request, error: ConfirmationRequiredError) -> JSONResponse:
        return _refusal(error, "The rollback runbook asks for a confirmation")

    @app.exception_handler(RunbookRefusedError)
    async def _refused(_request: Request, error: RunbookRefusedError) -> JSONResponse:
        return _refusal(error, "The rollback runbook cannot run on this migration")
