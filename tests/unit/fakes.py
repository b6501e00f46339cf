"""In-memory stand-ins for the ports in orchestrator/ports.py, plus builders for runs and plans.

Everything here is synchronous underneath and deterministic: no network, no database, no real waits.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from orchestrator.domain.errors import ConflictError, NotFoundError
from orchestrator.domain.plan import BackfillWork, Plan, Step
from orchestrator.domain.run import BackfillTuning, EventType, MigrationEvent, Progress, Run
from orchestrator.domain.schema import TableInfo
from orchestrator.domain.spec import MigrationSpec, parse_spec
from orchestrator.domain.states import RunStatus
from orchestrator.engine.planner import plan_migration
from orchestrator.ports import (
    Attempt,
    BackfillCheckpoint,
    ChunkResult,
    KeyColumn,
    StepCheckpoint,
    VerifyResult,
)

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def make_spec(*operations: dict[str, Any], **settings: int) -> MigrationSpec:
    data: dict[str, Any] = {"name": "demo", "target": "app", "operations": list(operations)}
    if settings:
        data["settings"] = settings
    return parse_spec(data)


def make_run(spec: MigrationSpec, *, run_id: str = "mig-1", status: RunStatus = RunStatus.PENDING) -> Run:
    plan: Plan = plan_migration(spec)
    return Run(
        id=run_id,
        name=spec.name,
        target=spec.target or "app",
        engine="postgres",
        status=status,
        spec=spec,
        plan=plan,
        created_at=NOW,
        updated_at=NOW,
    )


class InMemoryStateStore:
    """The StateStore Protocol over dicts. Every write is 'committed' when the method returns."""

    def __init__(self) -> None:
        self.runs: dict[str, Run] = {}
        self.events: list[MigrationEvent] = []
        self.checkpoints: dict[str, dict[str, StepCheckpoint]] = {}
        self.backfill: dict[tuple[str, str], BackfillCheckpoint] = {}
        # Every save_backfill_checkpoint call, in order, to check what was committed when.
        self.backfill_saves: list[BackfillCheckpoint] = []
        self.step_marks: list[tuple[str, str]] = []
        self.closed = False

    async def initialize(self) -> None:
        return None

    async def close(self) -> None:
        self.closed = True

    async def create_run(self, run: Run, event: MigrationEvent) -> None:
        if run.id in self.runs:
            raise ConflictError(f"run {run.id} exists")
        self.runs[run.id] = run
        await self.append_event(event)

    async def get_run(self, run_id: str) -> Run:
        try:
            return self.runs[run_id]
        except KeyError:
            raise NotFoundError("migration", run_id) from None

    async def list_runs(self, *, limit: int = 100) -> list[Run]:
        return list(self.runs.values())[:limit]

    async def runs_in_status(self, statuses: Sequence[RunStatus]) -> list[Run]:
        return [run for run in self.runs.values() if run.status in statuses]

    async def update_run(self, run: Run, *, expected_status: RunStatus, event: MigrationEvent | None) -> Run:
        stored = await self.get_run(run.id)
        if stored.status is not expected_status:
            raise ConflictError(f"run {run.id} is {stored.status}, not {expected_status}")
        self.runs[run.id] = run
        if event is not None:
            await self.append_event(event)
        return run

    async def set_progress(self, run_id: str, progress: Progress) -> None:
        run = await self.get_run(run_id)
        self.runs[run_id] = run.model_copy(update={"progress": progress})

    async def set_notification_ref(self, run_id: str, ref: dict[str, Any]) -> None:
        run = await self.get_run(run_id)
        self.runs[run_id] = run.model_copy(update={"notification_ref": ref})

    async def set_tuning(self, run_id: str, tuning: BackfillTuning) -> None:
        run = await self.get_run(run_id)
        self.runs[run_id] = run.model_copy(update={"tuning": tuning})

    async def append_event(self, event: MigrationEvent) -> MigrationEvent:
        stored = event.model_copy(update={"id": len(self.events) + 1})
        self.events.append(stored)
        return stored

    async def list_events(self, run_id: str, *, after_id: int = 0, limit: int = 1000) -> list[MigrationEvent]:
        return [e for e in self.events if e.migration_id == run_id and e.id > after_id][:limit]

    async def step_checkpoints(self, run_id: str) -> dict[str, StepCheckpoint]:
        return dict(self.checkpoints.get(run_id, {}))

    async def mark_step(self, run_id: str, step_id: str, state: str) -> None:
        self.step_marks.append((step_id, state))
        steps = self.checkpoints.setdefault(run_id, {})
        previous = steps.get(step_id)
        attempts = previous.attempts if previous else 0
        if state == "started":
            attempts += 1
        steps[step_id] = StepCheckpoint(step_id, state, attempts)

    async def get_backfill_checkpoint(self, run_id: str, step_id: str) -> BackfillCheckpoint | None:
        return self.backfill.get((run_id, step_id))

    async def save_backfill_checkpoint(self, run_id: str, checkpoint: BackfillCheckpoint) -> None:
        self.backfill_saves.append(checkpoint)
        self.backfill[(run_id, checkpoint.step_id)] = checkpoint

    # Helpers for tests, not part of the Protocol.
    def events_of(self, type: EventType) -> list[MigrationEvent]:
        return [e for e in self.events if e.type is type]


@dataclass
class ChunkCall:
    after: list[Any] | None
    limit: int
    scanned: list[int]


@dataclass
class ScriptedTarget:
    """A TargetDatabase whose DDL attempts follow a script and whose table is a sorted list of int keys.

    `lock_timeouts[step_id]` is how many attempts of that step time out before one succeeds.
    `on_execute(step, attempt)` runs inside each DDL attempt (1-based per step), e.g. to request a stop.
    `on_chunk(n)` runs after the n-th non-empty chunk (1-based) has 'committed', e.g. to request a stop.
    """

    keys: list[int] = field(default_factory=list)
    lock_timeouts: dict[str, int] = field(default_factory=dict)
    tables: dict[str, TableInfo] = field(default_factory=dict)
    on_execute: Callable[[Step, int], None] | None = None
    on_chunk: Callable[[int], None] | None = None
    attempts: list[tuple[str, int]] = field(default_factory=list)  # (step id, lock_timeout_ms)
    statement_timeouts: list[int | None] = field(default_factory=list)  # per attempt, as passed
    applied: list[str] = field(default_factory=list)  # step ids whose attempt succeeded
    chunk_calls: list[ChunkCall] = field(default_factory=list)
    corrupt: set[int] = field(default_factory=set)
    closed: bool = False

    @property
    def scanned(self) -> list[int]:
        return [key for call in self.chunk_calls for key in call.scanned]

    async def close(self) -> None:
        self.closed = True

    async def execute_step(
        self, step: Step, *, lock_timeout_ms: int, statement_timeout_ms: int | None = None
    ) -> Attempt:
        self.attempts.append((step.id, lock_timeout_ms))
        self.statement_timeouts.append(statement_timeout_ms)
        if self.on_execute is not None:
            self.on_execute(step, sum(1 for step_id, _ in self.attempts if step_id == step.id))
        remaining = self.lock_timeouts.get(step.id, 0)
        if remaining > 0:
            self.lock_timeouts[step.id] = remaining - 1
            return Attempt(lock_timed_out=True, seconds=lock_timeout_ms / 1000)
        self.applied.append(step.id)
        return Attempt(lock_timed_out=False, seconds=0.01)

    async def backfill_key(self, work: BackfillWork) -> list[KeyColumn]:
        return [KeyColumn("id", "bigint")]

    async def estimate_rows(self, table: str) -> int:
        return len(self.keys)

    async def describe_table(self, table: str) -> TableInfo | None:
        return self.tables.get(table)

    async def relation_exists(self, name: str) -> bool:
        return any(name in table.indexes for table in self.tables.values()) or name in self.tables

    async def check_expression(self, table: str, expression: str) -> str | None:
        return None

    async def backfill_chunk(
        self, work: BackfillWork, key: Sequence[KeyColumn], after: list[Any] | None, limit: int
    ) -> ChunkResult:
        start = after[0] if after is not None else None
        chunk = [k for k in sorted(self.keys) if start is None or k > start][:limit]
        self.chunk_calls.append(
            ChunkCall(after=None if after is None else list(after), limit=limit, scanned=chunk)
        )
        if self.on_chunk is not None and chunk:
            self.on_chunk(len(self.chunk_calls))
        if not chunk:
            return ChunkResult(high_water=None, rows_scanned=0, rows_updated=0)
        return ChunkResult(high_water=[chunk[-1]], rows_scanned=len(chunk), rows_updated=len(chunk))

    async def verify_chunk(
        self, work: BackfillWork, key: Sequence[KeyColumn], after: list[Any] | None, limit: int
    ) -> VerifyResult:
        """Rows listed in `corrupt` differ from the expression (something else keeps writing them)."""
        start = after[0] if after is not None else None
        chunk = [k for k in sorted(self.keys) if start is None or k > start][:limit]
        if not chunk:
            return VerifyResult(high_water=None, rows_scanned=0, mismatches=0, sample_keys=[])
        wrong = [k for k in chunk if k in self.corrupt]
        return VerifyResult(
            high_water=[chunk[-1]],
            rows_scanned=len(chunk),
            mismatches=len(wrong),
            sample_keys=[[k] for k in wrong[:5]],
        )


class RecordingNotifier:
    def __init__(self) -> None:
        self.sent: list[tuple[str, MigrationEvent]] = []
        self.closed = False

    async def notify(self, run: Run, event: MigrationEvent) -> None:
        self.sent.append((run.id, event))

    async def close(self) -> None:
        self.closed = True


class FakeClock:
    """Time moves only when a test (or a scripted fake) says so; sleep advances it instantly."""

    def __init__(self, start: float = 1000.0) -> None:
        self.t = start
        self.slept: list[float] = []

    def now(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.t += seconds
