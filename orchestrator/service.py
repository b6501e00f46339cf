"""MigrationService: the one facade the API, the CLI and (later) Slack actions call.

Every replica serves the commands and queries; only the leader runs stages. Each state change is
written to the store (compare-and-set on status) before it is acted on, so a new leader finds the
running stages in the store and resumes them from their checkpoints.

The leader holds a fencing epoch for its term: the stage tasks, the scheduler and the reconciler
write through a store fenced with it, so once another replica has taken over, whatever the old one
still tries to write is refused. A command taken by a replica that does not lead is only written to
the store; the leader's reconciler notices it within a second and starts (or stops) the stage.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import structlog
from pydantic import ValidationError

from orchestrator import metrics
from orchestrator.admission import CopySlots
from orchestrator.contract_guard import ContractGuard, UsageReaders, UsageUnreadableError
from orchestrator.domain.direct_ddl import DirectLimits
from orchestrator.domain.errors import (
    ConflictError,
    FencedError,
    IllegalTransitionError,
    IrreversibleError,
    NotFoundError,
    OrchestratorError,
    SpecError,
)
from orchestrator.domain.plan import Stage
from orchestrator.domain.run import BackfillTuning, EventType, MigrationEvent, Run, Waiting, WaitKind
from orchestrator.domain.spec import MigrationSpec, parse_spec, spec_problems
from orchestrator.domain.states import (
    RUNNING,
    STAGE_START,
    TERMINAL,
    Action,
    RunStatus,
    next_status,
)
from orchestrator.domain.usage import MIN_OVERRIDE_REASON, ContractBlockedError
from orchestrator.engine.clock import SystemClock
from orchestrator.engine.events import EventSink, new_event
from orchestrator.engine.retention import PurgeReport, purge_every_target
from orchestrator.engine.rollback import rollback_steps
from orchestrator.engine.runner import RetryPolicy
from orchestrator.intake import take_in, target_of
from orchestrator.leadership import SingleReplicaLeadership
from orchestrator.ports import (
    Clock,
    IdempotencyClaim,
    Leadership,
    Notifier,
    ServiceStore,
    StoredResponse,
    TargetDatabase,
    Throttle,
)
from orchestrator.runbooks.confirm import Confirmation
from orchestrator.runbooks.desk import RunbookDesk, started_data
from orchestrator.runbooks.emergency import EmergencyStopReport, emergency_stop
from orchestrator.runbooks.executor import RunbookExecutor
from orchestrator.runbooks.loader import RunbookCatalogue
from orchestrator.runbooks.planner import RunbookPlan
from orchestrator.schedules import StageScheduler
from orchestrator.stages import StageTasks, Term, resume_order
from orchestrator.windows import DEFAULT_WINDOWED_STAGES, Hold, MaintenanceWindow, decide_start

log = structlog.get_logger(__name__)

TargetFactory = Callable[[str], TargetDatabase]

# Statuses a long-poll stops waiting at: nothing will move the run on without a human.
SETTLED = TERMINAL | {RunStatus.FAILED}

# How long shutdown waits for running stages to reach a safe point before cancelling them.
DRAIN_SECONDS = 20.0
DEFAULT_MAX_COPYING = 2
# How often the leader looks for commands taken by other replicas (stages to start or stop).
RECONCILE_SECONDS = 1.0
# A claimed Idempotency-Key whose request never finished (its replica died) may be claimed again.
IDEMPOTENCY_STALE_SECONDS = 60.0
IDEMPOTENCY_KEEP = timedelta(hours=24)
# How often the leader drops the tables drop_table set aside once their retention has run out.
PURGE_DROPPED_SECONDS = 600.0


class ServiceDrainingError(OrchestratorError):
    """This replica is shutting down and takes no new work; another replica (or the restart) will."""

    retryable = True


class TargetRegistry:
    """Configured targets by name. Only the engine name and a factory are kept; DSNs stay inside."""

    def __init__(self, targets: dict[str, tuple[str, Callable[[], TargetDatabase]]]) -> None:
        self._targets = targets

    def names(self) -> list[str]:
        return sorted(self._targets)

    def engine(self, name: str) -> str:
        return self._targets[name][0]

    def open(self, name: str) -> TargetDatabase:
        return self._targets[name][1]()

    def __contains__(self, name: object) -> bool:
        return name in self._targets


@dataclass(frozen=True)
class LeadershipView:
    replica: str
    leader: bool
    epoch: int | None  # this replica's epoch while it leads
    current_epoch: int
    current_holder: str | None
    draining: bool


class Companion(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class MigrationService:
    def __init__(
        self,
        store: ServiceStore,
        targets: TargetRegistry,
        notifier: Notifier,
        *,
        clock: Clock | None = None,
        retry: RetryPolicy | None = None,
        run_stages: bool = True,
        throttle: Throttle | None = None,
        leadership: Leadership | None = None,
        windows: Mapping[str, Sequence[MaintenanceWindow]] | None = None,
        windowed_stages: Collection[Stage] = DEFAULT_WINDOWED_STAGES,
        max_copying: int | Mapping[str, int] = DEFAULT_MAX_COPYING,
        reconcile_seconds: float = RECONCILE_SECONDS,
        direct_limits: DirectLimits | None = None,
        usage_readers: UsageReaders | None = None,
        runbooks: RunbookCatalogue | None = None,
    ) -> None:
        self._store = store
        self._direct_limits = direct_limits  # None: the planner's defaults
        self._contract_guard = ContractGuard(usage_readers)
        self._throttle = throttle
        self._targets = targets
        self._notifier = notifier
        self._clock = clock or SystemClock()
        self._retry = retry
        # False for a replica that only serves the API and never stands for leader.
        self._run_stages = run_stages
        self._leadership: Leadership = leadership or SingleReplicaLeadership(store)
        self._windows = dict(windows or {})
        self._windowed_stages = frozenset(windowed_stages)
        self._max_copying = max_copying
        self._reconcile_seconds = reconcile_seconds
        self._tuning: dict[str, BackfillTuning] = {}
        self._companions: list[Companion] = []
        # Without runbooks a rollback runs the plain inverse steps; the dry run shows those too.
        self.runbooks = runbooks
        self._desk = RunbookDesk(runbooks or RunbookCatalogue([]), throttle)
        executor = RunbookExecutor(self._desk, throttle, self._clock) if runbooks is not None else None
        self._stages = StageTasks(
            store,
            targets,
            clock=self._clock,
            retry=retry,
            throttle=throttle,
            slots=CopySlots(self._copy_limit),
            copy_limit=self._copy_limit,
            tuning=self.tuning,
            set_tuning=self._tuning.__setitem__,
            transition=self._transition,
            wake=self._wake,
            runbooks=executor,
        )
        self._changed: dict[str, asyncio.Event] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._term: Term | None = None
        self._leading: asyncio.Task[None] | None = None
        self._draining = False
        self._drained: asyncio.Task[None] | None = None
        # Events of commands taken through the API: not fenced, any replica may write them.
        self.events = EventSink(store, notifier, self._wake)

    # -- lifecycle ----------------------------------------------------------------------------------

    async def start(self) -> None:
        await self._store.initialize()
        for companion in self._companions:
            await companion.start()
        if not self._run_stages:
            return
        # One attempt inline, so a replica that can lead at once (always, on SQLite) does so before
        # it serves its first request; the campaign goes on in the background otherwise.
        epoch = await self._leadership.acquire(wait=False)
        if epoch is not None:
            await self._begin_term(epoch)
        self._leading = asyncio.create_task(self._campaign(leading=epoch is not None), name="leadership")

    def begin_drain(self) -> None:
        """Stop taking new work: stages stop at their next safe point, long-polls answer, leadership
        is released as soon as the stages have stopped. Called on SIGTERM, before the HTTP server
        waits for its open requests."""
        if self._draining:
            return
        self._draining = True
        log.info("service_draining")
        self._stages.stop_all("service shutting down")
        for event in self._changed.values():
            event.set()
        self._drained = asyncio.ensure_future(self._drain())

    async def stop(self) -> None:
        """Drain, release leadership, close. A stopped stage keeps its running status for the next leader."""
        self.begin_drain()
        assert self._drained is not None
        await self._drained
        if self._leading is not None:
            self._leading.cancel()
            await asyncio.gather(self._leading, return_exceptions=True)
        for companion in reversed(self._companions):
            await companion.stop()
        await self._notifier.close()
        await self._store.close()

    async def _drain(self) -> None:
        await self._end_term("service shutting down")
        await self._leadership.release()

    @property
    def draining(self) -> bool:
        return self._draining

    @property
    def leading(self) -> bool:
        return self._term is not None

    @property
    def throttler(self) -> Throttle | None:
        """The throttle this service holds work with (read-only): the status page shows its state."""
        return self._throttle

    async def leadership(self) -> LeadershipView:
        record = await self._store.leader()
        return LeadershipView(
            replica=self._leadership.identity,
            leader=self._term is not None,
            epoch=self._term.epoch if self._term is not None else None,
            current_epoch=record.epoch,
            current_holder=record.holder,
            draining=self._draining,
        )

    # -- queries ------------------------------------------------------------------------------------

    async def get(self, run_id: str) -> Run:
        return await self._store.get_run(run_id)

    async def runs_in_status(self, statuses: tuple[RunStatus, ...]) -> list[Run]:
        return await self._store.runs_in_status(statuses)

    def add_companion(self, companion: Companion) -> None:
        """Something that runs beside the service (signal polling, the throttle policy): started
        after the service, stopped before its store closes."""
        self._companions.append(companion)

    async def list_runs(self, limit: int = 100) -> list[Run]:
        return await self._store.list_runs(limit=limit)

    async def list_events(self, run_id: str, after_id: int = 0) -> list[MigrationEvent]:
        events = await self._store.list_events(run_id, after_id=after_id)
        if not events:
            await self._store.get_run(run_id)  # 404 for an unknown id rather than an empty list
        return events

    async def wait(self, run_id: str, until: Iterable[RunStatus], timeout: float) -> tuple[Run, bool]:
        """Long-poll: return when the run reaches one of `until`, settles elsewhere, or time runs out."""
        wanted = set(until)
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            changed = self._changed.setdefault(run_id, asyncio.Event())
            changed.clear()
            run = await self._store.get_run(run_id)
            if run.status in wanted:
                return run, True
            if run.status in SETTLED:
                return run, False
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0 or self._draining:  # draining: answer now, the client asks another replica
                return run, False
            # Wake on a change made here, and poll now and then for one made by another replica.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), timeout=min(remaining, 1.0))

    async def refresh_metrics(self) -> None:
        metrics.migrations_by_state(await self._store.count_by_status())

    # -- idempotency (the API's record of first answers) ----------------------------------------------

    async def claim_request(self, principal: str, key: str, fingerprint: str) -> IdempotencyClaim:
        return await self._store.claim_request(
            principal, key, fingerprint, stale_after_seconds=IDEMPOTENCY_STALE_SECONDS
        )

    async def complete_request(self, principal: str, key: str, response: StoredResponse) -> None:
        await self._store.complete_request(principal, key, response)

    async def release_request(self, principal: str, key: str) -> None:
        await self._store.release_request(principal, key)

    # -- commands -----------------------------------------------------------------------------------

    async def create(self, data: Any, *, target_override: str | None = None, actor: str | None = None) -> Run:
        self._refuse_when_draining()
        spec = data if isinstance(data, MigrationSpec) else parse_spec(data)
        target = target_of(spec, target_override, self._targets.names())
        engine = self._targets.engine(target)
        intake = await take_in(
            spec, target, engine, lambda: self._targets.open(target), direct_limits=self._direct_limits
        )
        now = datetime.now(UTC)
        run = Run(
            id=_new_id(spec.name),
            name=spec.name,
            target=target,
            engine=engine,
            status=RunStatus.PENDING,
            spec=spec,
            plan=intake.plan,
            created_at=now,
            updated_at=now,
        )
        preflight = {"preflight": intake.preflight} if intake.preflight else {}
        event = new_event(run.id, EventType.CREATED, intake.message, data={**_actor(actor), **preflight})
        await self._store.create_run(run, event)
        log.info("migration_created", migration_id=run.id, target=target, actor=actor)
        await self.events.published(run, event)
        return run

    async def start_stage(
        self,
        run_id: str,
        stage: Stage,
        *,
        at: datetime | None = None,
        actor: str | None = None,
        override_usage: str | None = None,
    ) -> Run:
        """Start a stage now, or hold it (visibly) until `at` or the target's next maintenance window.

        Contract first proves that nothing used what it drops since the deploy gate; usage refuses it
        (ContractBlockedError, the run stays awaiting_contract) unless `override_usage` gives a reason."""
        self._refuse_when_draining()
        if override_usage is not None and stage is not Stage.CONTRACT:
            raise SpecError([("override_usage", "only contract has a usage proof to override; leave it out")])
        if override_usage is not None and len(override_usage.strip()) < MIN_OVERRIDE_REASON:
            message = f"say why contract may drop what is in use ({MIN_OVERRIDE_REASON} characters or more)"
            raise SpecError([("override_usage.reason", message)])
        if stage not in STAGE_START:
            run = await self._store.get_run(run_id)
            raise IllegalTransitionError(
                run.status.value,
                f"start stage {stage.value}",
                run.allowed_actions,
                "the deploy gate is approved with POST /v1/migrations/{id}/deploy-gate, not started",
            )
        async with self._lock(run_id):
            run = await self._store.get_run(run_id)
            action = STAGE_START[stage]
            next_status(run.status, action, stage=run.stage, paused_from=run.paused_from)  # 409 early
            if stage is Stage.CONTRACT:
                run = await self._contract_guard.check(
                    self._store, self.events, run, override_reason=override_usage, actor=actor
                )
            decision = decide_start(
                stage,
                datetime.now(UTC),
                at=at,
                windows=self._windows.get(run.target, ()),
                windowed_stages=self._windowed_stages,
            )
            if isinstance(decision, Hold):
                return await self._hold(run, stage, decision, actor=actor, override_usage=override_usage)
            run = await self._transition(run, action, stage=stage, error=None, actor=actor)
            self._spawn(run)
            return run

    async def approve_deploy(self, run_id: str, *, actor: str | None = None) -> Run:
        self._refuse_when_draining()
        async with self._lock(run_id):
            run = await self._store.get_run(run_id)
            # Refuse before reading the target; then the usage counters of what contract will drop,
            # as of now: the contract proof's baseline.
            next_status(run.status, Action.APPROVE_DEPLOY, stage=run.stage)
            record = await self._contract_guard.at_gate(run)
            changes: dict[str, Any] = {"contract_proof": record} if record is not None else {}
            run = await self._transition(
                run, Action.APPROVE_DEPLOY, stage=Stage.DEPLOY_GATE, actor=actor, **changes
            )
            await self._contract_guard.record_gate(self.events, run)
            return run

    async def pause(self, run_id: str, *, actor: str | None = None) -> Run:
        self._refuse_when_draining()
        async with self._lock(run_id):
            run = await self._store.get_run(run_id)
            next_status(run.status, Action.PAUSE, stage=run.stage)  # refuse early, before stopping anything
            await self._stages.interrupt(run_id, "paused by request")
            run = await self._store.get_run(run_id)
            return await self._transition(run, Action.PAUSE, paused_from=run.status, actor=actor)

    async def resume(self, run_id: str, *, actor: str | None = None) -> Run:
        self._refuse_when_draining()
        async with self._lock(run_id):
            run = await self._store.get_run(run_id)
            run = await self._transition(run, Action.RESUME, paused_from=None, actor=actor)
            self._spawn(run)
            return run

    async def tune(self, run_id: str, changes: dict[str, Any], *, actor: str | None = None) -> Run:
        """Change a migration's backfill pacing; a running backfill picks it up at its next chunk."""
        self._refuse_when_draining()
        async with self._lock(run_id):
            run = await self._store.get_run(run_id)
            if run.status in TERMINAL:
                raise IllegalTransitionError(run.status.value, "tune", run.allowed_actions)
            try:
                tuning = BackfillTuning.model_validate({**run.tuning.model_dump(), **changes})
            except ValidationError as error:
                raise SpecError(spec_problems(error)) from error
            await self._store.set_tuning(run_id, tuning)
            self._tuning[run_id] = tuning
            await self.events.emit(
                run_id,
                EventType.TUNED,
                f"backfill tuning set to {tuning.model_dump(exclude_none=True) or 'defaults'}",
                stage=run.stage,
                data={**tuning.model_dump(mode="json", exclude_none=True), **_actor(actor)},
            )
            return await self._store.get_run(run_id)

    def tuning(self, run_id: str) -> BackfillTuning:
        """What a running backfill reads before each chunk."""
        return self._tuning.get(run_id) or BackfillTuning()

    async def cancel(self, run_id: str, *, actor: str | None = None) -> Run:
        self._refuse_when_draining()
        async with self._lock(run_id):
            run = await self._store.get_run(run_id)
            return await self._transition(run, Action.CANCEL, actor=actor)

    async def rollback(
        self, run_id: str, *, actor: str | None = None, confirmation: Confirmation | None = None
    ) -> Run:
        """Roll back with the run's runbook (when runbooks are configured): refused with the reason
        when it cannot run, and with the plan when it asks for a confirmation not given."""
        self._refuse_when_draining()
        async with self._lock(run_id):
            run = await self._store.get_run(run_id)
            plan: RunbookPlan | None = None
            if self.runbooks is not None:
                plan = await self._desk.recorded_plan(run, self._store)
                self._desk.refuse_unless_runnable(run, plan)
            else:
                # Refuse before touching anything when some step without an inverse has run; that
                # reason (which column is gone) helps on-call more than "not allowed when completed".
                try:
                    rollback_steps(run.plan, await self._store.step_checkpoints(run_id))
                except IrreversibleError as error:
                    raise IllegalTransitionError(
                        run.status.value, "rollback", run.allowed_actions, str(error)
                    ) from error
            next_status(run.status, Action.ROLLBACK, stage=run.stage)
            confirmed = self._desk.confirmed(run, plan, confirmation) if plan is not None else None
            await self._stages.interrupt(run_id, "rollback requested")
            run = await self._store.get_run(run_id)
            run = await self._transition(
                run, Action.ROLLBACK, stage=Stage.ROLLBACK, error=None, paused_from=None, actor=actor
            )
            if plan is not None:
                await self.events.emit(
                    run.id,
                    EventType.RUNBOOK,
                    f"rollback runs runbook {plan.runbook} ({plan.facts})",
                    stage=Stage.ROLLBACK,
                    data=started_data(plan, actor, confirmed),
                )
            self._spawn(run)
            return run

    async def runbook_plan(self, run_id: str) -> RunbookPlan:
        """The dry run: the runbook a rollback would run now, with its exact steps and token."""
        run = await self._store.get_run(run_id)
        return await self._desk.dry_run(run, self._store, self._targets.open)

    async def emergency_stop(
        self, target: str, *, reason: str, actor: str | None = None, hold_seconds: float | None = 3600.0
    ) -> EmergencyStopReport:
        """Hold the target's throttle, pause every running stage on it, drop its held starts."""
        self._refuse_when_draining()
        if target not in self._targets:
            raise NotFoundError("target", target)
        return await emergency_stop(
            self, self._store, self._throttle, target, reason=reason, actor=actor, hold_seconds=hold_seconds
        )

    # -- internals: commands ------------------------------------------------------------------------

    def _refuse_when_draining(self) -> None:
        if self._draining:
            raise ServiceDrainingError("this replica is shutting down; retry on another one")

    def _lock(self, run_id: str) -> asyncio.Lock:
        return self._locks.setdefault(run_id, asyncio.Lock())

    def _wake(self, run_id: str) -> None:
        event = self._changed.get(run_id)
        if event is not None:
            event.set()

    def _copy_limit(self, target: str) -> int:
        if isinstance(self._max_copying, int):
            return self._max_copying
        return self._max_copying.get(target, DEFAULT_MAX_COPYING)

    async def _transition(
        self,
        run: Run,
        action: Action,
        *,
        actor: str | None = None,
        term: Term | None = None,
        **changes: Any,
    ) -> Run:
        """Write the next status (compare-and-set) with its event. Every transition clears a held stage.

        `term` is given for the leader's own writes (a stage's outcome, a held stage starting): they are
        fenced with its epoch.
        """
        store = term.store if term is not None else self._store
        events = term.events if term is not None else self.events
        status = next_status(run.status, action, stage=run.stage, paused_from=run.paused_from)
        updated = run.model_copy(
            update={"status": status, "updated_at": datetime.now(UTC), "waiting": None, **changes}
        )
        message = f"{run.status.value} -> {status.value}"
        if updated.error:
            message += f": {updated.error}"
        event = new_event(
            run.id,
            EventType.TRANSITION,
            message,
            stage=updated.stage,
            data={"from": run.status.value, "to": status.value, "action": action.value, **_actor(actor)},
        )
        await store.update_run(updated, expected_status=run.status, event=event)
        log.info("migration_transition", migration_id=run.id, **event.data)
        await events.published(updated, event)
        return updated

    async def _hold(
        self, run: Run, stage: Stage, decision: Hold, *, actor: str | None, override_usage: str | None = None
    ) -> Run:
        if decision.until is None:
            raise IllegalTransitionError(
                run.status.value, f"start stage {stage.value}", run.allowed_actions, decision.reason
            )
        waiting = Waiting(
            kind=decision.kind,
            stage=stage,
            reason=decision.reason,
            since=datetime.now(UTC),
            until=decision.until,
            actor=actor,
            override_usage=override_usage,
        )
        run = await self._store.set_waiting(run.id, waiting, expected_status=run.status)
        await self.events.emit(
            run.id,
            EventType.WAITING,
            decision.reason,
            stage=stage,
            data={"kind": decision.kind.value, "until": decision.until.isoformat(), **_actor(actor)},
        )
        if self._term is not None and decision.kind is WaitKind.SCHEDULE:
            self._term.scheduler.start_at(run.id, decision.until)
        return run

    # -- internals: leadership ----------------------------------------------------------------------

    async def _campaign(self, *, leading: bool) -> None:
        """Lead while we can; stand again when leadership is lost; stop when draining."""
        while not self._draining:
            try:
                if not leading:
                    epoch = await self._leadership.acquire()
                    if epoch is None or self._draining:
                        return
                    await self._begin_term(epoch)
                await self._leadership.held()
                await self._end_term("leadership lost")
            except asyncio.CancelledError:
                raise
            except Exception:  # the campaign must outlive a failed term start (store down, say)
                log.exception("leadership_term_failed")
                await self._end_term("leadership term failed")
                with contextlib.suppress(Exception):
                    await self._leadership.release()
                await asyncio.sleep(self._reconcile_seconds)
            leading = False

    async def _begin_term(self, epoch: int) -> None:
        fenced = self._store.fenced(epoch)
        term = Term(
            epoch=epoch,
            store=fenced,
            events=EventSink(fenced, self._notifier, self._wake),
            scheduler=StageScheduler(on_due=self._start_held, on_window_open=self._window_opened),
        )
        self._term = term
        metrics.leadership(True, epoch)
        log.info("leading", epoch=epoch, replica=self._leadership.identity)
        term.scheduler.start(
            self._windows,
            housekeeping=[
                ("purge-idempotency-keys", 3600.0, self._purge),
                ("purge-dropped-tables", PURGE_DROPPED_SECONDS, self._purge_dropped),
            ],
        )
        # Runs already copying before the failover go first, then the queue in its old order.
        running = await self._store.runs_in_status(sorted(RUNNING))
        for run in sorted(running, key=resume_order):
            log.info("resuming_migration", migration_id=run.id, status=run.status.value, epoch=epoch)
            self._spawn(run)
        await self._register_holds(term, catch_up=True)
        term.reconciler = asyncio.create_task(self._reconcile_forever(term), name="reconciler")

    async def _end_term(self, reason: str) -> None:
        term, self._term = self._term, None
        if term is None:
            return
        (log.info if self._draining else log.warning)("leadership_ended", epoch=term.epoch, reason=reason)
        metrics.leadership(False)
        term.scheduler.shutdown()
        if term.reconciler is not None:
            term.reconciler.cancel()
            await asyncio.gather(term.reconciler, return_exceptions=True)
        self._stages.stop_all(reason)
        await self._stages.wait_all(DRAIN_SECONDS)

    def _spawn(self, run: Run) -> None:
        term = self._term
        if term is not None and not self._draining:
            self._stages.spawn(run, term)
        # Not the leader: the leader's reconciler picks the run up from the store.

    async def _reconcile_forever(self, term: Term) -> None:
        while self._term is term:
            try:
                await self._reconcile(term)
            except asyncio.CancelledError:
                raise
            except FencedError:
                return
            except Exception as error:  # a store hiccup: try again next round
                log.warning("reconcile_failed", error=f"{type(error).__name__}: {error}")
            await asyncio.sleep(self._reconcile_seconds)

    async def _reconcile(self, term: Term) -> None:
        """Act on commands other replicas took: start stages they started, stop stages they stopped."""
        began = asyncio.get_running_loop().time()
        running = {run.id: run for run in await self._store.runs_in_status(sorted(RUNNING))}
        if self._term is not term or self._draining:
            return
        await self._stages.reconcile(running, term, began)
        await self._register_holds(term, catch_up=False)

    async def _register_holds(self, term: Term, *, catch_up: bool) -> None:
        for run in await self._store.runs_waiting():
            waiting = run.waiting
            if waiting is None or waiting.kind is WaitKind.QUEUE:
                continue
            if waiting.kind is WaitKind.SCHEDULE and waiting.until is not None:
                if not term.scheduler.has_start(run.id):
                    term.scheduler.start_at(run.id, waiting.until)
            elif catch_up:
                # A window may have opened while no replica led: decide again now.
                await self._start_held(run.id)

    async def _window_opened(self, target: str) -> None:
        log.info("maintenance_window_opened", target=target)
        for run in await self._store.runs_waiting():
            if run.target == target and run.waiting is not None and run.waiting.kind is WaitKind.WINDOW:
                await self._start_held(run.id)

    async def _start_held(self, run_id: str) -> None:
        """A held stage's time came (timer, window opening, catch-up): start it, or hold it anew."""
        term = self._term
        if term is None or self._draining:
            return
        try:
            async with self._lock(run_id):
                run = await self._store.get_run(run_id)
                waiting = run.waiting
                if waiting is None or waiting.kind is WaitKind.QUEUE:
                    return
                action = STAGE_START[waiting.stage]
                try:
                    next_status(run.status, action, stage=run.stage, paused_from=run.paused_from)
                except IllegalTransitionError:
                    await term.store.set_waiting(run.id, None, expected_status=run.status)
                    return
                decision = decide_start(
                    waiting.stage,
                    datetime.now(UTC),
                    at=waiting.until if waiting.kind is WaitKind.SCHEDULE else None,
                    windows=self._windows.get(run.target, ()),
                    windowed_stages=self._windowed_stages,
                )
                if isinstance(decision, Hold):
                    if decision.kind is not waiting.kind or decision.until != waiting.until:
                        held = waiting.model_copy(
                            update={"kind": decision.kind, "until": decision.until, "reason": decision.reason}
                        )
                        await term.store.set_waiting(run.id, held, expected_status=run.status)
                        await term.events.emit(
                            run.id,
                            EventType.WAITING,
                            decision.reason,
                            stage=waiting.stage,
                            data={
                                "kind": decision.kind.value,
                                "until": decision.until.isoformat() if decision.until else None,
                            },
                        )
                    return
                if waiting.stage is Stage.CONTRACT:
                    try:
                        run = await self._contract_guard.check(
                            term.store,
                            term.events,
                            run,
                            override_reason=waiting.override_usage,
                            actor=waiting.actor,
                        )
                    except (ContractBlockedError, UsageUnreadableError) as refused:
                        # Used since the gate (or unreadable): the held contract is dropped and the
                        # proof event says why; the pipeline asks again once the use has stopped.
                        log.warning("held_contract_refused", migration_id=run.id, error=str(refused))
                        await term.store.set_waiting(run.id, None, expected_status=run.status)
                        self._wake(run.id)
                        return
                log.info("held_stage_starting", migration_id=run.id, stage=waiting.stage.value)
                run = await self._transition(
                    run, action, stage=waiting.stage, error=None, actor=waiting.actor, term=term
                )
                self._spawn(run)
        except FencedError:
            metrics.fenced_write()
            log.warning("fenced_write_refused", migration_id=run_id, epoch=term.epoch)
        except (ConflictError, IllegalTransitionError) as error:
            log.info("held_stage_superseded", migration_id=run_id, error=str(error))

    async def _purge(self) -> None:
        term = self._term
        if term is not None:
            removed = await term.store.purge_requests(datetime.now(UTC) - IDEMPOTENCY_KEEP)
            log.info("idempotency_keys_purged", removed=removed)

    async def _purge_dropped(self) -> None:
        if self._term is not None and not self._draining:
            await self.purge_dropped_tables(datetime.now(UTC))

    async def purge_dropped_tables(self, now: datetime, *, dry_run: bool = False) -> dict[str, PurgeReport]:
        """Drop the tables drop_table set aside whose retention has run out at `now`, on every target
        that keeps such tables. The leader runs it every PURGE_DROPPED_SECONDS."""
        return await purge_every_target(self._targets, now, dry_run=dry_run)


def _actor(actor: str | None) -> dict[str, Any]:
    return {"actor": actor} if actor else {}


def _new_id(name: str) -> str:
    return f"{name[:40]}-{uuid.uuid4().hex[:8]}"
