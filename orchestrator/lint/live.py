"""The live preflight of a plan written from SQL (`osctl plan --from-sql FILE --target-dsn DSN`): the
same schema and data checks the service runs before it stores a migration (engine/preflight.py and
engine/preflight_data.py: NULLs before NOT NULL, duplicate groups before UNIQUE, orphans before a
foreign key, values failing a cast, blocking transactions, sizes), plus a read rate measured on the
target, from which each stage's duration is estimated.

Reading goes through ports (the target database, and a RateProbe timing one bounded read per
table); the estimate is pure. Nothing is written on the target.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

from orchestrator.domain.data_checks import DataFinding, TableSize
from orchestrator.domain.plan import Plan, Stage, Step, StepAction
from orchestrator.domain.schema import TableInfo
from orchestrator.domain.spec import MigrationSpec
from orchestrator.engine.preflight import preflight_problems, preflight_warnings, read_live_schema
from orchestrator.engine.preflight_data import data_notes, describe_finding
from orchestrator.lint.convert import convert_sql
from orchestrator.lint.findings import UnparsableSqlError
from orchestrator.ports import TargetDatabase

SAMPLE_ROWS = 5_000
# A chunked UPDATE writes a new row version, its index entries and WAL for every row it reads: taken as
# this many times the cost of reading the row. An assumption, said in the estimate.
WRITE_COST = 4.0
# CREATE INDEX CONCURRENTLY scans the table twice (and sorts): this many times one read of it.
INDEX_BUILD_COST = 3.0
CATALOG_STEP_SECONDS = 0.1  # a catalog-only DDL once its lock is granted


@dataclass(frozen=True)
class ReadRate:
    """One timed, bounded read of a table's rows on the target."""

    table: str
    rows: int
    bytes: int
    seconds: float

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0

    @property
    def bytes_per_second(self) -> float:
        return self.bytes / self.seconds if self.seconds > 0 else 0.0


class RateProbe(Protocol):
    async def sample_read(self, table: str, rows: int) -> ReadRate | None:
        """Time a read of up to `rows` rows of `table`; None when the table has none."""

    async def close(self) -> None: ...


@dataclass(frozen=True)
class CheckResult:
    path: str  # the spec field it guards
    passed: bool
    message: str


@dataclass(frozen=True)
class StageEstimate:
    stage: Stage
    seconds: float | None  # None: not a duration (the deploy gate waits for people)
    basis: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class LivePreflight:
    target: str  # the DSN with its password redacted
    problems: list[tuple[str, str]]  # what refuses the plan: rows that would fail, blocking sessions
    warnings: list[tuple[str, str]]
    checks: list[CheckResult]
    notes: list[str]  # sizes, replicas
    sizes: dict[str, TableSize]
    rates: dict[str, ReadRate]
    estimates: list[StageEstimate]
    data_checked: bool  # False when the target cannot run the data checks (not PostgreSQL)

    @property
    def passed(self) -> bool:
        return not self.problems


async def run_live_preflight(
    spec: MigrationSpec, target: TargetDatabase, probe: RateProbe, target_label: str
) -> tuple[LivePreflight, dict[str, TableInfo | None]]:
    """Read the target once; returns the preflight and the live tables to plan against."""
    live = await read_live_schema(spec, target)
    sizes = dict(live.data.sizes) if live.data is not None else {}
    rates: dict[str, ReadRate] = {}
    for table in sorted(sizes):
        rate = await probe.sample_read(table, SAMPLE_ROWS)
        if rate is not None:
            rates[table] = rate
    result = LivePreflight(
        target=target_label,
        problems=preflight_problems(spec, live, target_label),
        warnings=preflight_warnings(spec, live),
        checks=[_check(finding) for finding in live.data.findings] if live.data is not None else [],
        notes=data_notes(live.data) if live.data is not None else [],
        sizes=sizes,
        rates=rates,
        estimates=[],
        data_checked=live.data is not None,
    )
    return result, live.tables


async def preflight_sql(
    text: str, source: str, target: TargetDatabase, probe: RateProbe, target_label: str
) -> tuple[LivePreflight, dict[str, TableInfo | None]] | None:
    """The live preflight of what `text` converts to; None when nothing converts (or it does not
    parse): plan_from_sql then says why, as it does offline."""
    try:
        conversion = convert_sql(text, source)
    except UnparsableSqlError:
        return None
    if conversion.spec is None:
        return None
    return await run_live_preflight(conversion.spec, target, probe, target_label)


def with_estimates(preflight: LivePreflight, plan: Plan) -> LivePreflight:
    return replace(preflight, estimates=estimate_stages(plan, preflight.sizes, preflight.rates))


def _check(finding: DataFinding) -> CheckResult:
    failed = finding.count > 0 or finding.error is not None
    if failed or finding.incomplete:
        message = describe_finding(finding) if failed else f"not finished: {finding.incomplete}"
        return CheckResult(finding.check.path, False, message)
    labels = ", ".join(finding.check.labels)
    what = {
        "nulls": f"no row of {finding.check.table} would be NULL in ({labels})",
        "duplicates": f"no duplicate ({labels}) in {finding.check.table}",
        "orphans": f"every ({labels}) of {finding.check.table} has its {finding.check.referenced_table} row",
        "cast": f"every ({labels}) of {finding.check.table} converts to {finding.check.type_name}",
        "check": f"every row of {finding.check.table} passes CHECK ({labels})",
    }[finding.check.kind.value]
    return CheckResult(finding.check.path, True, what)


# -- estimates (pure) ------------------------------------------------------------------------------


def estimate_stages(
    plan: Plan, sizes: Mapping[str, TableSize], rates: Mapping[str, ReadRate]
) -> list[StageEstimate]:
    """Each stage's duration from the tables' sizes and the read rate measured on each."""
    estimates = []
    for staged in plan.stages:
        if staged.stage is Stage.DEPLOY_GATE:
            estimates.append(
                StageEstimate(staged.stage, None, ["waits for the pipeline to approve the gate"])
            )
            continue
        seconds = 0.0
        basis: list[str] = []
        for step in staged.steps:
            step_seconds, why = _step_estimate(step, sizes.get(step.table), rates.get(step.table))
            seconds += step_seconds
            basis.append(f"{step.description}: {why}")
        estimates.append(StageEstimate(staged.stage, seconds, basis))
    return estimates


def _step_estimate(step: Step, size: TableSize | None, rate: ReadRate | None) -> tuple[float, str]:
    scans = _scan_cost(step)
    if scans is None:
        return CATALOG_STEP_SECONDS, "catalog-only, well under a second once its lock is granted"
    if size is None:
        return 0.0, f"size of {step.table} unknown (a table this migration creates, or unreadable)"
    if size.estimated_rows == 0:
        return 0.0, f"{step.table} is empty (by its statistics)"
    if rate is None or rate.rows_per_second <= 0:
        return 0.0, f"no read rate could be measured on {step.table}"
    factor, what = scans
    if step.action in (StepAction.BACKFILL, StepAction.COPY_TABLE, StepAction.SHADOW_TABLE):
        seconds = size.estimated_rows * factor / rate.rows_per_second
        pause = 0.0
        if step.backfill is not None and step.backfill.pause_ms:
            pause = size.estimated_rows / step.backfill.batch_size * step.backfill.pause_ms / 1000
        basis = (
            f"{what}: about {size.estimated_rows} rows at {rate.rows_per_second:,.0f} rows/s read, "
            f"writes taken as {factor:g}x a read"
        )
        return seconds + pause, basis + (f", plus {pause:.0f} s of pauses" if pause else "")
    seconds = size.total_bytes * factor / rate.bytes_per_second if rate.bytes_per_second > 0 else 0.0
    return seconds, (
        f"{what}: {size.total_bytes / 1_048_576:.1f} MB at {rate.bytes_per_second / 1_048_576:.1f} MB/s "
        f"read, taken as {factor:g} read(s) of the table"
    )


def _scan_cost(step: Step) -> tuple[float, str] | None:
    """How many reads of its table a step costs, or None for a catalog-only step."""
    sql = (step.sql or "").upper()
    if step.action is StepAction.CREATE_INDEX_CONCURRENTLY:
        return INDEX_BUILD_COST, "concurrent index build"
    if step.action in (StepAction.BACKFILL, StepAction.COPY_TABLE, StepAction.SHADOW_TABLE):
        return WRITE_COST, "rewrites every row in chunks"
    if "VALIDATE CONSTRAINT" in sql:
        return 1.0, "validation scan (no write lock held)"
    return None


def stage_total(estimates: Sequence[StageEstimate]) -> float:
    return sum(estimate.seconds or 0.0 for estimate in estimates)
