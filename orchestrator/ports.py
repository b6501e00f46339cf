"""What the engine needs from the world. Adapters implement these; the engine imports nothing else."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol, runtime_checkable

from orchestrator.domain.data_checks import DataCheck, LiveData
from orchestrator.domain.plan import BackfillWork, Step
from orchestrator.domain.retention import AsideTable
from orchestrator.domain.run import BackfillTuning, MigrationEvent, Progress, Run, Waiting
from orchestrator.domain.schema import TableInfo
from orchestrator.domain.sessions import SessionInfo
from orchestrator.domain.states import RunStatus
from orchestrator.domain.throttle import Sample


@dataclass(frozen=True)
class StepCheckpoint:
    step_id: str
    state: str  # "started" | "done" | "rolled_back"
    attempts: int


@dataclass(frozen=True)
class BackfillCheckpoint:
    step_id: str
    high_water: list[Any] | None  # the last key done; None before the first chunk
    rows_done: int
    done: bool


class StateStore(Protocol):
    """Durable state. Every write is committed before the method returns."""

    async def initialize(self) -> None: ...
    async def close(self) -> None: ...

    async def create_run(self, run: Run, event: MigrationEvent) -> None:
        """Store a new run; ConflictError when another active run already targets one of its tables."""

    async def get_run(self, run_id: str) -> Run:
        """NotFoundError for an unknown id."""

    async def list_runs(self, *, limit: int = 100) -> list[Run]: ...

    async def runs_in_status(self, statuses: Sequence[RunStatus]) -> list[Run]: ...

    async def update_run(self, run: Run, *, expected_status: RunStatus, event: MigrationEvent | None) -> Run:
        """Compare-and-set on status: ConflictError if the stored status is no longer `expected_status`."""

    async def set_progress(self, run_id: str, progress: Progress) -> None: ...

    async def set_notification_ref(self, run_id: str, ref: dict[str, Any]) -> None: ...

    async def set_tuning(self, run_id: str, tuning: BackfillTuning) -> None:
        """NotFoundError for an unknown id."""

    async def append_event(self, event: MigrationEvent) -> MigrationEvent:
        """Returns the event with its id."""

    async def list_events(
        self, run_id: str, *, after_id: int = 0, limit: int = 1000
    ) -> list[MigrationEvent]: ...

    async def step_checkpoints(self, run_id: str) -> dict[str, StepCheckpoint]: ...

    async def mark_step(self, run_id: str, step_id: str, state: str) -> None:
        """Record a step as started (attempts += 1), done or rolled_back."""

    async def get_backfill_checkpoint(self, run_id: str, step_id: str) -> BackfillCheckpoint | None: ...

    async def save_backfill_checkpoint(self, run_id: str, checkpoint: BackfillCheckpoint) -> None: ...


@dataclass(frozen=True)
class LeaderRecord:
    epoch: int
    holder: str | None
    acquired_at: datetime | None


@dataclass(frozen=True)
class StoredResponse:
    """The first answer to an idempotent request, replayed for a retry with the same key and body."""

    status: int
    body: bytes
    content_type: str
    location: str | None = None


ClaimOutcome = Literal["claimed", "replay", "mismatch", "in_progress"]


@dataclass(frozen=True)
class IdempotencyClaim:
    outcome: ClaimOutcome
    response: StoredResponse | None = None  # set for "replay"


class ServiceStore(StateStore, Protocol):
    """What the service needs beyond the engine's port: fencing, leadership, waits and idempotency."""

    def fenced(self, epoch: int) -> ServiceStore:
        """A view of the same store whose every write is refused (FencedError) once `epoch` is stale."""

    async def claim_epoch(self, holder: str) -> int:
        """Become leader without an election (one replica): increment and return the epoch."""

    async def leader(self) -> LeaderRecord: ...

    async def set_waiting(self, run_id: str, waiting: Waiting | None, *, expected_status: RunStatus) -> Run:
        """Record why a started stage is held; ConflictError if the run is no longer `expected_status`."""

    async def runs_waiting(self) -> list[Run]:
        """Runs with a held stage (`waiting` set), oldest first."""

    async def count_by_status(self) -> dict[RunStatus, int]: ...

    async def claim_request(
        self, principal: str, key: str, fingerprint: str, *, stale_after_seconds: float
    ) -> IdempotencyClaim:
        """Claim an Idempotency-Key for a request, or say why not (answered before, other body, in flight)."""

    async def complete_request(self, principal: str, key: str, response: StoredResponse) -> None: ...

    async def release_request(self, principal: str, key: str) -> None:
        """Forget a claim whose request failed on our side (5xx), so a retry may run it again."""

    async def purge_requests(self, older_than: datetime) -> int: ...


class Leadership(Protocol):
    """Who runs migrations. Every replica serves the API; only the leader drives stages."""

    @property
    def identity(self) -> str:
        """This replica's name, as stored with the epoch it holds."""

    async def acquire(self, *, wait: bool = True) -> int | None:
        """Become leader and return the new fencing epoch; None when `wait` is False and another leads."""

    async def held(self) -> None:
        """Return when leadership is lost (lock connection gone, lease expired) or released."""

    async def release(self) -> None:
        """Give leadership up so another replica takes over at once (graceful shutdown)."""


@dataclass(frozen=True)
class KeyColumn:
    name: str
    type: str


@dataclass(frozen=True)
class ChunkResult:
    high_water: list[Any] | None  # last key of the chunk; None when the chunk was empty (done)
    rows_scanned: int
    rows_updated: int


@dataclass(frozen=True)
class VerifyResult:
    high_water: list[Any] | None  # last key looked at; None when there was nothing left (done)
    rows_scanned: int
    mismatches: int
    sample_keys: list[list[Any]]  # up to a few keys of rows whose value differs from the expression


@dataclass(frozen=True)
class Attempt:
    """One DDL attempt: whether it gave up waiting for its lock (nothing changed), and how long it took.

    `blockers`: the sessions it was waiting behind when it gave up, so the failure can name them.
    """

    lock_timed_out: bool
    seconds: float
    blockers: tuple[SessionInfo, ...] = ()


class TargetDatabase(Protocol):
    """The database being migrated. One instance per run; connections are the adapter's business."""

    async def close(self) -> None: ...

    async def execute_step(
        self, step: Step, *, lock_timeout_ms: int, statement_timeout_ms: int | None = None
    ) -> Attempt:
        """Run one attempt of a DDL/index step. Idempotent: safe to repeat after a crash mid-step.

        Returns lock_timed_out=True (nothing changed) when the lock was not granted in time, so the
        runner can back off and retry; raises StepFailedError for errors retrying will not fix.
        `statement_timeout_ms` bounds a statement that takes a strong lock (None: the target's own).
        """

    async def backfill_key(self, work: BackfillWork) -> list[KeyColumn]:
        """The primary-key columns the chunks walk; StepFailedError when the table has none."""

    async def estimate_rows(self, table: str) -> int: ...

    async def describe_table(self, table: str) -> TableInfo | None:
        """A snapshot of the table's columns, indexes and key for preflight; None when it is missing."""

    async def relation_exists(self, name: str) -> bool:
        """Whether a table, index or other relation of that name is visible on the search path."""

    async def check_expression(self, table: str, expression: str) -> str | None:
        """Whether `expression` compiles against the table (planned, never run); the error text if not."""

    async def backfill_chunk(
        self, work: BackfillWork, key: Sequence[KeyColumn], after: list[Any] | None, limit: int
    ) -> ChunkResult:
        """Update up to `limit` rows with key > `after` in one short transaction.

        Rows whose column already equals the expression are not written (null-safe comparison), so
        replaying a chunk writes nothing. Keys travel as text: the adapter casts them back.
        """

    async def verify_chunk(
        self, work: BackfillWork, key: Sequence[KeyColumn], after: list[Any] | None, limit: int
    ) -> VerifyResult:
        """Count, without writing, the rows among the next `limit` whose column differs from the expression."""


@runtime_checkable
class SupportsDataPreflight(Protocol):
    """A target that can check its live rows and sessions before a migration is accepted."""

    async def read_live_data(
        self, checks: list[DataCheck], tables: list[str], *, timeout_ms: int
    ) -> LiveData:
        """Run `checks` (each bounded by `timeout_ms`) and read the sessions, replicas and sizes that
        matter for `tables`. A check that fails to run is a finding with its error, never a raise."""


class SignalSource(Protocol):
    """Something worth throttling on, read on its own schedule. `name` appears in reasons:
    'replica-lag 2.4s >= 1s'. `unit` is how the value reads: 's', 'bytes', 'ratio', 'count'."""

    name: str
    unit: str

    async def sample(self) -> Sample:
        """Never raises: a failure is a Sample with value None and the error."""

    async def close(self) -> None: ...


class Throttle(Protocol):
    """Whether work on a target should hold now. Polled between chunks; must answer at once (no I/O):
    signal collectors run on their own tasks and this only reads their latest decision."""

    def reason(self, target: str) -> str | None:
        """None to proceed, or why to hold, e.g. 'replica-lag 2.4s >= 1s'."""


class Notifier(Protocol):
    """Tells people. Must never raise into the engine and never block it for long."""

    async def notify(self, run: Run, event: MigrationEvent) -> None: ...

    async def close(self) -> None: ...


class Clock(Protocol):
    def now(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


@dataclass(frozen=True)
class CopyStatus:
    """What a copy tool reports while it runs, parsed from its output or its status socket."""

    tool: str  # "pt_osc" | "gh_ost"
    phase: str  # e.g. "preflight", "copying", "postponed", "verifying", "cut_over", "cleanup"
    percent: float | None = None
    eta_seconds: float | None = None
    rows_done: int | None = None
    rows_total: int | None = None
    waiting: str | None = None  # why the tool holds now: replica lag, load, osctl's pause or throttle


class StepControls(Protocol):
    """What a long step (a copy tool) consults while it runs, handed to the target by the runner."""

    def stop_reason(self) -> str | None:
        """Why the stage is asked to stop (pause, rollback, shutdown), or None."""

    def hold_reason(self) -> str | None:
        """Why the throttle says to hold now (no I/O: the latest decision), or None."""

    async def report(self, step_id: str, status: CopyStatus) -> None:
        """Progress, throttle state and phase; called often, cheap to ignore."""

    async def note(self, step_id: str, message: str, data: dict[str, Any]) -> None:
        """Something worth an event in the migration's log (tool chosen, leftovers removed)."""


@runtime_checkable
class SupportsStepControls(Protocol):
    """A target whose long steps can be paused, throttled and observed while they run."""

    def attach_controls(self, controls: StepControls | None) -> None: ...


PurgeResult = Literal["purged", "busy", "not_ours"]


@runtime_checkable
class SupportsAsideTables(Protocol):
    """A target that keeps the tables drop_table set aside until their retention runs out (PostgreSQL)."""

    async def aside_tables(self) -> list[AsideTable]:
        """Every table set aside and marked by drop_table, as its marker describes it."""

    async def purge_aside_table(self, name: str, *, lock_timeout_ms: int) -> PurgeResult:
        """Drop one, under lock_timeout: "busy" when the lock was not granted (try again later),
        "not_ours" when it no longer carries a marker (renamed back, or replaced)."""
