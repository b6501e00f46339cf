"""What the engine needs from the world. Adapters implement these; the engine imports nothing else."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from orchestrator.domain.plan import BackfillWork, Step
from orchestrator.domain.run import BackfillTuning, MigrationEvent, Progress, Run
from orchestrator.domain.schema import TableInfo
from orchestrator.domain.states import RunStatus


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
class KeyColumn:
    name: str
    type: str


@dataclass(frozen=True)
class ChunkResult:
    high_water: list[Any] | None  # last key of the chunk; None when the chunk was empty (done)
    rows_scanned: int
    rows_updated: int


@dataclass(frozen=True)
class Attempt:
    """One DDL attempt: whether it gave up waiting for its lock (nothing changed), and how long it took."""

    lock_timed_out: bool
    seconds: float


class TargetDatabase(Protocol):
    """The database being migrated. One instance per run; connections are the adapter's business."""

    async def close(self) -> None: ...

    async def execute_step(self, step: Step, *, lock_timeout_ms: int) -> Attempt:
        """Run one attempt of a DDL/index step. Idempotent: safe to repeat after a crash mid-step.

        Returns lock_timed_out=True (nothing changed) when the lock was not granted in time, so the
        runner can back off and retry; raises StepFailedError for errors retrying will not fix.
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
        """Update up to `limit` rows with key > `after` in one short transaction."""


class Notifier(Protocol):
    """Tells people. Must never raise into the engine and never block it for long."""

    async def notify(self, run: Run, event: MigrationEvent) -> None: ...

    async def close(self) -> None: ...


class Clock(Protocol):
    def now(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...
