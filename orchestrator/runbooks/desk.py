"""The service's side of runbooks before anything runs: read what a run did, choose and plan its
runbook (the dry run), and check the caller's confirmation. Reads only; the executor acts."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog

from orchestrator.domain.run import MigrationEvent, Run
from orchestrator.ports import StateStore, StepCheckpoint, TargetDatabase, Throttle
from orchestrator.runbooks.confirm import (
    Confirmation,
    ConfirmationRequiredError,
    RunbookRefusedError,
    how_confirmed,
)
from orchestrator.runbooks.loader import RunbookCatalogue
from orchestrator.runbooks.planner import LiveFindings, RunbookPlan, builtin_runbook, plan_runbook
from orchestrator.runbooks.replicas import replica_readings
from orchestrator.runbooks.select import run_facts, select_runbook
from orchestrator.runbooks.statements import copy_work_tables, shadow_work_tables

log = structlog.get_logger(__name__)

EVENT_PAGE = 1000


@dataclass(frozen=True)
class History:
    checkpoints: dict[str, StepCheckpoint]
    events: list[MigrationEvent]


async def read_history(store: StateStore, run_id: str) -> History:
    checkpoints = await store.step_checkpoints(run_id)
    events: list[MigrationEvent] = []
    while True:  # every event: a long copy writes thousands, and the tool it chose may be early on
        page = await store.list_events(run_id, after_id=events[-1].id if events else 0, limit=EVENT_PAGE)
        events.extend(page)
        if len(page) < EVENT_PAGE:
            return History(checkpoints, events)


class RunbookDesk:
    def __init__(self, catalogue: RunbookCatalogue, throttle: Throttle | None) -> None:
        self.catalogue = catalogue
        self._throttle = throttle

    def plan(self, run: Run, history: History, live: LiveFindings | None = None) -> RunbookPlan:
        facts = run_facts(run, history.checkpoints, history.events)
        runbook = select_runbook(self.catalogue, facts, history.events) or builtin_runbook(run.engine)
        return plan_runbook(runbook, run, history.checkpoints, facts, live)

    async def live_findings(self, run: Run, target: TargetDatabase) -> LiveFindings:
        """INVALID indexes on the migration's tables and the work tables that exist now. A target that
        cannot be read leaves the findings empty: the plan still runs every idempotent cleanup."""
        invalid: dict[str, str] = {}
        present: list[str] = []
        try:
            for table in run.plan.tables():
                info = await target.describe_table(table)
                if info is not None:
                    invalid.update({name: table for name, index in info.indexes.items() if not index.valid})
                names = copy_work_tables(table) if run.engine == "mysql" else shadow_work_tables(table)
                present.extend([name for name in names if await target.relation_exists(name)])
        except Exception as error:  # a dry run must answer even when the target is unreachable
            log.warning(
                "runbook_live_findings_failed", migration_id=run.id, error=f"{type(error).__name__}: {error}"
            )
        readings = replica_readings(self._throttle, run.target)
        return LiveFindings(
            invalid_indexes=invalid,
            work_tables=present,
            replica_signals=sorted(readings) if readings else [],
        )

    async def dry_run(
        self, run: Run, store: StateStore, open_target: Callable[[str], TargetDatabase]
    ) -> RunbookPlan:
        history = await read_history(store, run.id)
        target = open_target(run.target)
        try:
            live = await self.live_findings(run, target)
        finally:
            await target.close()
        return self.plan(run, history, live)

    async def recorded_plan(self, run: Run, store: StateStore) -> RunbookPlan:
        """The plan a rollback starting now runs, from the recorded history alone (no target round
        trip): the confirmation token must not depend on what the database shows this instant."""
        return self.plan(run, await read_history(store, run.id))

    @staticmethod
    def refuse_unless_runnable(run: Run, plan: RunbookPlan) -> None:
        if plan.refused:
            raise RunbookRefusedError(run.status.value, run.allowed_actions, plan)

    @staticmethod
    def confirmed(run: Run, plan: RunbookPlan, confirmation: Confirmation | None) -> str | None:
        """How the caller confirmed (None: not asked); 409 with the plan when it must and did not."""
        try:
            return how_confirmed(plan, confirmation)
        except ValueError as error:
            raise ConfirmationRequiredError(run.status.value, run.allowed_actions, plan, str(error)) from None


def started_data(plan: RunbookPlan, actor: str | None, confirmed: str | None) -> dict[str, Any]:
    """The data of the event that records which runbook a rollback runs, and who confirmed it how."""
    data: dict[str, Any] = {
        "phase": "started",
        "runbook": plan.runbook,
        "digest": plan.digest,
        "token": plan.token,
        "facts": plan.facts,
    }
    if actor:
        data["actor"] = actor
    if confirmed:
        data["confirmed"] = confirmed
    return data
