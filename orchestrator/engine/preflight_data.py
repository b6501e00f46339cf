"""Preflight of the live data (pure): which checks a spec needs, and what their findings mean.

Which operation needs which check, and why:

- NOT NULL: `alter_column nullable: false` over the rows' (converted) values; `add_column` NOT NULL
  filled by an expression (backfill / default_expression) over that expression. A NOT NULL column
  with a constant default needs nothing, and one added bare cannot exist (the spec refuses it).
- UNIQUE: `create_index unique`, `add_unique`, and `add_column unique` filled from existing rows (a
  constant default on two rows is already a duplicate); NULLs never collide.
- FOREIGN KEY: `add_foreign_key`, and `add_column references` filled from existing rows; a new
  column left NULL has no orphans.
- Type change: `alter_column type`, the `up` expression (or a cast) over every row; `add_column`
  filled by an expression, that expression converted to the column's type.
- CHECK: `add_check`, rows whose expression is false.
An expression reading a column this spec adds is skipped: its values do not exist yet.

Every data check refuses the plan when rows fail, and none can be overridden: the migration would
fail on those rows later (an index build, a VALIDATE, a backfill), after expand has changed the
schema. A check that runs out of time is a warning: the migration's own step still enforces the rule.

Sessions: a transaction older than settings.preflight.long_transaction_seconds refuses the plan
when it would block a step: it holds a lock on a table the migration changes, or (when an index is
built concurrently, which waits for every older snapshot in the database) it holds a snapshot.
`settings.preflight.override: [blocking_sessions]` turns that refusal into a warning, explicitly and
stored with the migration. Other long transactions and replica lag are warnings, never refusals:
throttling holds the backfill on lag while the migration runs.
"""

from __future__ import annotations

from collections.abc import Callable

from orchestrator.domain.data_checks import DataFinding, LiveData
from orchestrator.domain.operations import Operation
from orchestrator.domain.sessions import SessionInfo
from orchestrator.domain.spec import MigrationSpec
from orchestrator.engine.preflight_data_checks import (
    builds_index_concurrently,
    locked_tables,
    plan_data_checks,
    tables_of,
)
from orchestrator.engine.preflight_data_text import describe_finding

__all__ = [
    "data_notes",
    "data_problems",
    "data_warnings",
    "describe_finding",
    "locked_tables",
    "plan_data_checks",
]

BLOCKING_SESSIONS = "blocking_sessions"

# -- judging -------------------------------------------------------------------------------------------


def data_problems(spec: MigrationSpec, data: LiveData) -> list[tuple[str, str]]:
    """Reasons to refuse the plan: rows that would fail, sessions that would block."""
    problems = [
        (finding.check.path, describe_finding(finding)) for finding in data.findings if _fails(finding)
    ]
    if BLOCKING_SESSIONS not in spec.settings.preflight.override:
        problems.extend(_blocking(spec, data))
    return problems


def data_warnings(spec: MigrationSpec, data: LiveData) -> list[tuple[str, str]]:
    """Reported with the plan, never refusing it."""
    settings = spec.settings.preflight
    warnings = [
        (finding.check.path, f"not checked: {finding.incomplete}; the migration's own step still enforces it")
        for finding in data.findings
        if finding.incomplete and not _fails(finding)
    ]
    blocking = _blocking(spec, data)
    if BLOCKING_SESSIONS in settings.override:
        warnings.extend(
            (path, f"{message} (overridden by settings.preflight.override)") for path, message in blocking
        )
    blocking_pids = {session.pid for session in _blockers(spec, data)}
    for session in data.sessions:
        if session.pid not in blocking_pids and _long(session, settings.long_transaction_seconds):
            warnings.append(
                ("settings.preflight.long_transaction_seconds", f"long transaction: {session.describe()}")
            )
    for replica in data.replicas or ():
        if replica.lag_seconds is not None and replica.lag_seconds > settings.replica_lag_seconds:
            warnings.append(
                (
                    "settings.preflight.replica_lag_seconds",
                    f"replica {replica.name} is {replica.lag_seconds:.1f} s behind: backfill chunks will "
                    "hold while it lags, where replica lag is a throttle signal",
                )
            )
    return warnings


def data_notes(data: LiveData) -> list[str]:
    """What a DBA wants to know before approving: table sizes, replicas and their lag."""
    notes = [
        f"table {size.table}: {_megabytes(size.total_bytes)}, about {size.estimated_rows} rows"
        for size in data.sizes.values()
    ]
    if data.replicas is None:
        notes.append("replicas: pg_stat_replication could not be read")
    elif not data.replicas:
        notes.append("replicas: none streaming from this primary")
    for replica in data.replicas or ():
        lag = "unknown" if replica.lag_seconds is None else f"{replica.lag_seconds:.1f} s"
        behind = "" if replica.lag_bytes is None else f", {replica.lag_bytes} bytes behind"
        notes.append(f"replica {replica.name} ({replica.state}): lag {lag}{behind}")
    return notes


def _fails(finding: DataFinding) -> bool:
    return finding.count > 0 or finding.error is not None


def _long(session: SessionInfo, threshold: float) -> bool:
    return session.transaction_seconds is not None and session.transaction_seconds >= threshold


def _blockers(spec: MigrationSpec, data: LiveData) -> list[SessionInfo]:
    threshold = spec.settings.preflight.long_transaction_seconds
    concurrent = any(builds_index_concurrently(op) for op in spec.ops())
    return [
        session
        for session in data.sessions
        if _long(session, threshold) and (session.locked_tables or (concurrent and session.holds_snapshot))
    ]


def _blocking(spec: MigrationSpec, data: LiveData) -> list[tuple[str, str]]:
    problems = []
    for session in _blockers(spec, data):
        advice = (
            f"end that transaction (pg_terminate_backend({session.pid})), or accept the risk with "
            f"settings.preflight.override: [{BLOCKING_SESSIONS}]"
        )
        if session.locked_tables:
            held = set(session.locked_tables)
            path = _first_path(spec, lambda op: bool(held.intersection(tables_of(op))))  # noqa: B023
            message = (
                f"{session.describe()}; it holds a lock on {', '.join(session.locked_tables)}, so the DDL "
                f"would wait behind it until its attempts run out: {advice}"
            )
        else:
            path = _first_path(spec, builds_index_concurrently)
            message = (
                f"{session.describe()}; it holds a snapshot, and a concurrent index build waits for every "
                f"such transaction to end: {advice}"
            )
        problems.append((path, message))
    return problems


def _first_path(spec: MigrationSpec, wanted: Callable[[Operation], bool]) -> str:
    """The field path of the first operation a session would block."""
    for index, op in enumerate(spec.ops()):
        if wanted(op):
            return f"operations.{index}.{op.kind}.table"
    return "operations"


def _megabytes(size: int) -> str:
    return f"{size / 1_048_576:.1f} MB"
