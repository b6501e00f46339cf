"""Running one corpus case on the real MariaDB primary and replica: the tables and their untouched
mirror, the concurrent writer that changes both in one transaction, the migration through the service
with one strategy, and the comparisons afterwards (order-free row checksums, so a table without a
primary key is compared too)."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pymysql
from pymysql.connections import Connection

from adapters.mysql.copy_state import CopySettings
from adapters.mysql.dsn import MysqlDsn
from adapters.mysql.target import MysqlTarget
from adapters.mysql.workload import connect
from adapters.ptosc import HostPort
from adapters.slack import NullNotifier
from adapters.statestore.store import SqlStateStore
from orchestrator.domain.errors import SpecError
from orchestrator.domain.plan import Stage, StepAction
from orchestrator.domain.run import Run
from orchestrator.domain.states import RunStatus
from orchestrator.service import MigrationService, TargetRegistry
from tests.conformance.mysql.corpus import PLACEHOLDER, Case
from tests.support.mysql import MysqlPair, query

RETRY_CODES = frozenset({1205, 1213})  # lock wait timeout, deadlock: rolled back, retried
ATTEMPTS = 20
FRESH_IDS = 10_000_000
STAGE_SECONDS = 90.0
TEXTS = ("plain", "café", "naïve", "日本語", "emoji 🎉", "Ελληνικά", "ß→ss", "🙂🙃")


def mirror_of(table: str) -> str:
    return f"{table}_mirror"


async def prepare(pair: MysqlPair, case: Case) -> None:
    """The case's tables and rows, and the mirror: the table's columns without its keys' baggage
    (CREATE TABLE ... LIKE leaves triggers and foreign keys behind)."""
    for statement in (*case.schema, *case.seed):
        await query(pair.primary, statement)
    table, mirror = f"`{case.table}`", f"`{mirror_of(case.table)}`"
    await query(pair.primary, f"CREATE TABLE {mirror} LIKE {table}")
    stored = await stored_columns(pair.primary, case.table)
    names = ", ".join(f"`{name}`" for name in stored)
    await query(pair.primary, f"INSERT INTO {mirror} ({names}) SELECT {names} FROM {table}")


async def stored_columns(dsn: str, table: str) -> list[str]:
    rows = await query(
        dsn,
        "SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() "
        "AND TABLE_NAME = %s AND COALESCE(GENERATION_EXPRESSION, '') = '' ORDER BY ORDINAL_POSITION",
        (table,),
    )
    return [str(row[0]) for row in rows]


async def columns(dsn: str, table: str) -> dict[str, str]:
    """Every column (generated ones too) and its COLUMN_TYPE."""
    rows = await query(
        dsn,
        "SELECT COLUMN_NAME, COLUMN_TYPE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() "
        "AND TABLE_NAME = %s ORDER BY ORDINAL_POSITION",
        (table,),
    )
    return {str(name): str(type_) for name, type_ in rows}


async def shape(dsn: str, table: str) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """Columns (name, type, nullability, default, extra) and indexes (name, uniqueness, column order)."""
    cols = await query(
        dsn,
        "SELECT COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE, COLUMN_DEFAULT, EXTRA FROM information_schema.COLUMNS "
        "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s ORDER BY ORDINAL_POSITION",
        (table,),
    )
    indexes = await query(
        dsn,
        "SELECT INDEX_NAME, NON_UNIQUE, SEQ_IN_INDEX, COLUMN_NAME FROM information_schema.STATISTICS "
        "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s ORDER BY INDEX_NAME, SEQ_IN_INDEX",
        (table,),
    )
    return cols, indexes


async def checksum(dsn: str, table: str, names: Sequence[str]) -> tuple[int, int, int]:
    """Rows, and the SUM and BIT_XOR of a 60-bit MD5 of each row over `names` (QUOTE()d: NULL is not
    'NULL', and bytes are bytes): independent of row order and of any key."""
    row = "CONCAT_WS('#', " + ", ".join(f"QUOTE(`{name}`)" for name in names) + ")"
    digest = f"CAST(CONV(LEFT(MD5({row}), 15), 16, 10) AS UNSIGNED)"
    found = await query(
        dsn,
        f"SELECT COUNT(*), COALESCE(SUM({digest}), 0), COALESCE(BIT_XOR({digest}), 0) FROM `{table}`",
    )
    count, total, xor = found[0]
    return int(count), int(total), int(xor)


async def leftovers(dsn: str, case: Case) -> list[str]:
    """Tables and triggers the tools name theirs with, and any trigger the case did not create."""
    tables = await query(
        dsn,
        "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() "
        "AND TABLE_NAME LIKE '\\_%'",
    )
    triggers = await query(
        dsn,
        "SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = DATABASE() "
        "AND TRIGGER_NAME LIKE 'pt\\_osc\\_%'",
    )
    return sorted(str(row[0]) for row in [*tables, *triggers])


@dataclass
class WriterStats:
    transactions: int = 0
    retries: int = 0
    errors: list[str] = field(default_factory=list)


class MirroredDml:
    """`workers` connections running the case's DML lines at random, each line against the table and
    its mirror in one transaction with the same parameters. Deadlocks and lock waits are retried."""

    def __init__(self, dsn: str, case: Case, *, workers: int = 2, pace_seconds: float = 0.005) -> None:
        self._dsn, self._case = dsn, case
        self._workers, self._pace = workers, pace_seconds
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._executor = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="conformance-dml")
        self._next_id = FRESH_IDS
        self._max_id = 1
        self.stats = WriterStats()

    async def start(self) -> None:
        if not self._case.dml:
            return
        loop = asyncio.get_running_loop()
        rows = await query(self._dsn, f"SELECT COUNT(*) FROM `{self._case.table}`")
        self._max_id = max(1, int(rows[0][0]))
        for number in range(self._workers):
            conn = await loop.run_in_executor(self._executor, connect, self._dsn)
            self._tasks.append(asyncio.create_task(self._work(conn, random.Random(number))))

    async def stop(self) -> WriterStats:
        self._stop.set()
        await asyncio.gather(*self._tasks)
        self._executor.shutdown(wait=True)
        return self.stats

    def _values(self, line: str, rng: random.Random) -> tuple[str, list[Any]]:
        values: list[Any] = []

        def draw(match: Any) -> str:
            kind = match.group(1)
            if kind == "id":
                values.append(rng.randrange(1, self._max_id + 1))
            elif kind == "new":
                self._next_id += 1
                values.append(self._next_id)
            elif kind == "n":
                values.append(rng.randrange(1000))
            else:
                values.append(f"{rng.choice(TEXTS)} {rng.randrange(10**6)}")
            return "%s"

        # A literal % (MOD) must survive PyMySQL's %-formatting of the parameters.
        return PLACEHOLDER.sub(draw, line.replace("%", "%%")), values

    async def _work(self, conn: Connection, rng: random.Random) -> None:
        loop = asyncio.get_running_loop()
        try:
            while not self._stop.is_set():
                template, values = self._values(rng.choice(self._case.dml), rng)
                await loop.run_in_executor(self._executor, self._transaction, conn, template, values)
                await asyncio.sleep(self._pace)
        finally:
            await loop.run_in_executor(self._executor, conn.close)

    def _transaction(self, conn: Connection, template: str, values: list[Any]) -> None:
        for _ in range(ATTEMPTS):
            try:
                conn.begin()
                with conn.cursor() as cur:
                    for table in (self._case.table, mirror_of(self._case.table)):
                        cur.execute(template.replace("{t}", f"`{table}`"), values)
                conn.commit()
                self.stats.transactions += 1
                return
            except pymysql.MySQLError as error:
                conn.rollback()
                if error.args and error.args[0] in RETRY_CODES:
                    self.stats.retries += 1
                    continue
                self.stats.errors.append(f"{template} {values}: {error}")
                return
        self.stats.errors.append(f"{template}: gave up after {ATTEMPTS} attempts")


def replica_of(pair: MysqlPair) -> HostPort:
    dsn = MysqlDsn.parse(pair.replica)
    return HostPort(dsn.host, dsn.port)


def build_service(pair: MysqlPair, state_dir: Path, ghost: str | None) -> MigrationService:
    replica = replica_of(pair)
    dsn = f"{pair.primary}?replicas={replica.host}:{replica.port}"
    copy = CopySettings(ghost_binary=ghost, runtime_dir=state_dir / "copy", replicas=(replica,))
    store = SqlStateStore(f"sqlite+aiosqlite:///{state_dir / 'state.db'}")
    targets = TargetRegistry({"app": ("mysql", lambda: MysqlTarget(dsn, copy_settings=copy))})
    return MigrationService(store, targets, NullNotifier())


def spec(case: Case, strategy: str) -> dict[str, Any]:
    return {
        "name": f"conformance-{case.name}-{strategy}".replace("_", "-"),
        "target": "app",
        "operations": [{"alter_table": {"table": case.table, "alter": case.alter, "strategy": strategy}}],
    }


@dataclass
class Result:
    """How a migration ended: completed, refused at creation (`refusal`), or failed (`run.error`)."""

    run: Run | None
    refusal: str | None = None
    seconds: float = 0.0

    @property
    def completed(self) -> bool:
        return self.run is not None and self.run.status is RunStatus.COMPLETED

    @property
    def why(self) -> str:
        if self.refusal is not None:
            return self.refusal
        return (self.run.error or "") if self.run is not None else ""


async def migrate(service: MigrationService, case: Case, strategy: str) -> Result:
    """Every stage in turn, the gate approved between expand and backfill; stops at a failure."""
    started = time.monotonic()
    try:
        run = await service.create(spec(case, strategy))
    except SpecError as error:
        return Result(None, "; ".join(message for _, message in error.problems), time.monotonic() - started)
    for stage, reached in (
        (Stage.EXPAND, RunStatus.AWAITING_DEPLOY),
        (Stage.BACKFILL, RunStatus.AWAITING_CONTRACT),
        (Stage.CONTRACT, RunStatus.COMPLETED),
    ):
        if stage is Stage.BACKFILL:
            await service.approve_deploy(run.id)
        await service.start_stage(run.id, stage)
        run, ok = await service.wait(run.id, {reached}, STAGE_SECONDS)
        if not ok:
            break
    return Result(run, None, time.monotonic() - started)


async def auto_choice(service: MigrationService, case: Case) -> tuple[str, str]:
    """What strategy auto plans on the live table (direct, copy or refused) and the plan's words."""
    try:
        run = await service.create(spec(case, "auto"))
    except SpecError as error:
        return "refused", "; ".join(message for _, message in error.problems)
    steps = run.plan.steps()
    kind = "direct" if all(step.action is StepAction.DDL for step in steps) else "copy"
    return kind, steps[0].description
