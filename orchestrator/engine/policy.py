"""Acts on the throttle policy while the service leads: pause migrations held too long, roll back on
a sustained critical breach before contract, page a human from contract on. The decision is
`policy_action` (pure); this only polls and carries it out, once per breach."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from typing import Protocol

import structlog

from orchestrator.domain.errors import OrchestratorError
from orchestrator.domain.run import EventType, Run
from orchestrator.domain.states import RunStatus
from orchestrator.domain.throttle import ThrottlePolicy, policy_action
from orchestrator.engine.events import EventSink
from orchestrator.engine.throttler import Throttler

log = structlog.get_logger(__name__)

CHECK_SECONDS = 1.0
ACTOR = "throttle-policy"
_WATCHED = (
    RunStatus.EXPANDING,
    RunStatus.AWAITING_DEPLOY,
    RunStatus.AWAITING_BACKFILL,
    RunStatus.BACKFILLING,
    RunStatus.AWAITING_CONTRACT,
    RunStatus.CONTRACTING,
    RunStatus.PAUSED,
)


class PolicyTarget(Protocol):
    """What the enforcer needs of the service."""

    @property
    def leading(self) -> bool: ...

    events: EventSink

    async def runs_in_status(self, statuses: tuple[RunStatus, ...]) -> list[Run]: ...

    async def pause(self, run_id: str, *, actor: str | None = None) -> Run: ...

    async def rollback(self, run_id: str, *, actor: str | None = None) -> Run: ...


class PolicyEnforcer:
    def __init__(
        self,
        service: PolicyTarget,
        throttler: Throttler,
        policies: Mapping[str, ThrottlePolicy],
        *,
        check_seconds: float = CHECK_SECONDS,
    ) -> None:
        self._service = service
        self._throttler = throttler
        self._policies = dict(policies)
        self._check = check_seconds
        self._task: asyncio.Task[None] | None = None
        # (run id, action) already carried out: a breach pages once, not every second.
        self._done: set[tuple[str, str]] = set()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="throttle-policy")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._check)
            if self._service.leading:
                try:
                    await self.check_once()
                except Exception:  # the policy must outlive any one failed check
                    log.exception("throttle_policy_check_failed")

    async def check_once(self) -> None:
        for run in await self._service.runs_in_status(_WATCHED):
            policy = self._policies.get(run.target)
            if policy is None:
                continue
            decision = self._throttler.decide(run.target)
            critical = decision.critical if decision is not None else []
            held_for = self._throttler.held_for(run.target)
            if held_for == 0:
                self._done.discard((run.id, "pause"))  # a new hold after a resume may pause again
            action = policy_action(run.status.value, held_for, critical, policy)
            if action is None or (run.id, action.action) in self._done:
                continue
            self._done.add((run.id, action.action))
            log.warning(
                "throttle_policy_action", migration_id=run.id, action=action.action, reason=action.reason
            )
            await self._service.events.emit(
                run.id,
                EventType.POLICY,
                f"{action.action}: {action.reason}",
                stage=run.stage,
                data={"action": action.action, "reason": action.reason},
            )
            try:
                if action.action == "pause":
                    await self._service.pause(run.id, actor=ACTOR)
                elif action.action == "rollback":
                    await self._service.rollback(run.id, actor=ACTOR)
            except OrchestratorError as error:
                # Refused (moved on meanwhile, or irreversible): a human must look.
                await self._service.events.emit(
                    run.id, EventType.POLICY, f"page: {action.action} refused: {error}", stage=run.stage
                )
