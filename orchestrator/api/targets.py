"""/v1/targets: what the throttler reads on each target (with recent history) and a manual hold.

The throttler is the service's (`MigrationService.throttler`); a service without one, or a target it
does not know, answers 404. A manual hold expires by itself after `seconds` (or lasts until lifted).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from orchestrator.access import Principal, Scope
from orchestrator.api import auth, problems
from orchestrator.domain.errors import NotFoundError
from orchestrator.domain.throttle import Threshold
from orchestrator.engine.throttler import Throttler
from orchestrator.service import MigrationService

TargetName = Annotated[str, Path(pattern=r"^[A-Za-z0-9_.-]{1,120}$")]
Reader = Annotated[Principal, Depends(auth.requires(Scope.READ))]
Oncall = Annotated[Principal, Depends(auth.requires(Scope.ONCALL))]

READ_ERRORS = problems.responses(401, 403, 404, 422)
ACTION_ERRORS = problems.responses(401, 403, 404, 422)


class SignalView(BaseModel):
    unit: str
    value: float | None
    age_s: float | None
    error: str | None
    detail: str
    threshold: dict[str, Any]


class ManualHoldView(BaseModel):
    reason: str
    until_in_s: float | None


class TargetSignals(BaseModel):
    target: str
    reason: str | None = Field(description="Why work on the target holds now; null when it may proceed.")
    critical: list[str] = Field(default_factory=list)
    manual: ManualHoldView | None = None
    held_for_s: float = 0.0
    signals: dict[str, SignalView] = Field(default_factory=dict)
    history: dict[str, list[tuple[float, float | None]]] = Field(
        default_factory=dict,
        description="Per signal, recent readings as [seconds ago, value] pairs, oldest first.",
    )


class TargetList(BaseModel):
    targets: list[TargetSignals]


class ThrottleRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=200, description="Shown as the hold's reason.")
    seconds: float | None = Field(
        default=600, gt=0, le=86_400, description="The hold lifts itself after this long; null: until lifted."
    )


def throttler_of(request: Request) -> Throttler | None:
    service: MigrationService = request.app.state.service
    throttle = service.throttler
    return throttle if isinstance(throttle, Throttler) else None


def view(throttler: Throttler, target: str) -> TargetSignals:
    return TargetSignals.model_validate({"target": target, **throttler.snapshot(target)})


def _known(request: Request, target: str) -> Throttler:
    throttler = throttler_of(request)
    if throttler is None:
        raise NotFoundError("signals of target (this service has no throttler)", target)
    if target not in throttler.targets():
        raise NotFoundError("signals of target", target)
    return throttler


router = APIRouter(tags=["targets"])


@router.get("/v1/targets", response_model=TargetList, responses=problems.responses(401, 403))
async def list_targets(request: Request, _caller: Reader) -> TargetList:
    throttler = throttler_of(request)
    names = throttler.targets() if throttler is not None else []
    return TargetList(targets=[view(throttler, name) for name in names] if throttler else [])


@router.get("/v1/targets/{target}/signals", response_model=TargetSignals, responses=READ_ERRORS)
async def signals(request: Request, target: TargetName, _caller: Reader) -> TargetSignals:
    return view(_known(request, target), target)


@router.post("/v1/targets/{target}/throttle", response_model=TargetSignals, responses=ACTION_ERRORS)
async def hold(request: Request, target: TargetName, body: ThrottleRequest, caller: Oncall) -> TargetSignals:
    """Hold all throttled work on the target (backfills wait between chunks) until lifted or expired."""
    throttler = _known(request, target)
    throttler.hold(target, f"{body.reason} (by {caller.name})", body.seconds)
    return view(throttler, target)


@router.delete(
    "/v1/targets/{target}/throttle",
    status_code=204,
    response_class=Response,
    responses=ACTION_ERRORS,
)
async def release(request: Request, target: TargetName, _caller: Oncall) -> Response:
    _known(request, target).release(target)
    return Response(status_code=204)


@router.put(
    "/v1/targets/{target}/signals/{signal}/threshold", response_model=TargetSignals, responses=ACTION_ERRORS
)
async def set_threshold(
    request: Request,
    target: TargetName,
    signal: Annotated[str, Path(pattern=r"^[a-z][a-z0-9-]{0,60}$")],
    body: Threshold,
    _caller: Oncall,
) -> TargetSignals:
    """Change when one signal holds work (e.g. tolerate more lag off-peak); takes effect at the next
    decision, and lasts until the service restarts (the configuration file stays the reference)."""
    throttler = _known(request, target)
    try:
        throttler.set_threshold(target, signal, body)
    except KeyError:
        raise NotFoundError("signal of target", f"{target}/{signal}") from None
    return view(throttler, target)
