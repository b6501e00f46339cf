"""Our backfill against a single UPDATE of an identical table, with an application writing.

    python bench/backfill.py --rows 1000000 [--engine postgres|mysql]

Prints figures as it goes and, on its last line, one JSON object:
  throughput_ratio                 our rows/s over the single UPDATE's rows/s (goal >= 0.8)
  worst_chunk_over_target          slowest chunk over the chunk time target (goal <= 2)
  writer_p99_ratio                 writer p99 during our backfill over its p99 without one (goal <= 2)
  writer_p99_ratio_single_update   the same during the single UPDATE
Needs PG_PRIMARY_DSN or MYSQL_PRIMARY_DSN (source .services/env after `make services`). The MySQL
bench seeds with MariaDB's Sequence engine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import asyncpg
import pymysql
from pymysql.connections import Connection

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from adapters.mysql.target import MysqlTarget
from adapters.mysql.workload import connect as mysql_connect
from adapters.postgres.target import PostgresTarget
from adapters.slack import NullNotifier
from adapters.statestore.store import SqlStateStore
from bench.common import LatencyWriter, ThreadedLatencyWriter, Writer, percentile
from orchestrator.domain.plan import BackfillWork, Stage
from orchestrator.domain.states import RunStatus
from orchestrator.ports import ChunkResult, KeyColumn, TargetDatabase
from orchestrator.service import MigrationService, TargetRegistry

EXPRESSION = "amount * 100"
TARGET_MS = 200
BASELINE_SECONDS = 3.0
ER_NO_SUCH_TABLE, ER_LOCK_DEADLOCK = 1146, 1213
DEADLOCK_ATTEMPTS = 10

# Wall time of every chunk that moved the high-water mark, whichever engine's target ran it.
CHUNK_SECONDS: list[float] = []


class TimedTarget(PostgresTarget):
    """The real PostgreSQL target, with each chunk's wall time recorded."""

    async def backfill_chunk(
        self, work: BackfillWork, key: Sequence[KeyColumn], after: list[Any] | None, limit: int
    ) -> ChunkResult:
        started = time.monotonic()
        result = await super().backfill_chunk(work, key, after, limit)
        if result.high_water is not None:
            CHUNK_SECONDS.append(time.monotonic() - started)
        return result


class TimedMysqlTarget(MysqlTarget):
    """The real MySQL target, with each chunk's wall time recorded (worker-thread hop included)."""

    async def backfill_chunk(
        self, work: BackfillWork, key: Sequence[KeyColumn], after: list[Any] | None, limit: int
    ) -> ChunkResult:
        started = time.monotonic()
        result = await super().backfill_chunk(work, key, after, limit)
        if result.high_water is not None:
            CHUNK_SECONDS.append(time.monotonic() - started)
        return result


def with_database(dsn: str, database: str) -> str:
    """The DSN naming another database (on the text: a password may hold '/' or '?')."""
    scheme, _, rest = dsn.partition("://")
    credentials, at, location = rest.rpartition("@")
    hostport, _, tail = location.partition("/")
    query = tail.partition("?")[2]
    return f"{scheme}://{credentials}{at}{hostport}/{database}" + (f"?{query}" if query else "")


def require(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise SystemExit(f"{name} is not set: run `make services` and `. .services/env`")
    return value


# -- PostgreSQL ------------------------------------------------------------------------------------


async def seed(conn: asyncpg.Connection, table: str, rows: int) -> None:
    await conn.execute(
        f"CREATE TABLE {table} (id bigserial PRIMARY KEY, amount integer NOT NULL, amount_cents bigint)"
    )
    await conn.execute(
        f"INSERT INTO {table} (amount) SELECT g % 10000 FROM generate_series(1, $1::int) AS g", rows
    )
    await conn.execute(f"VACUUM ANALYZE {table}")


def writer_for(pool: asyncpg.Pool, table: str, rows: int) -> LatencyWriter:
    async def statement(worker: int, rng: Any) -> object:
        amount = rng.randrange(10000)
        if rng.random() < 0.5:
            return await pool.execute(
                f"UPDATE {table} SET amount = $2, amount_cents = $3 WHERE id = $1",
                rng.randrange(1, rows + 1),
                amount,
                amount * 100,
            )
        return await pool.execute(
            f"INSERT INTO {table} (amount, amount_cents) VALUES ($1, $2)", amount, amount * 100
        )

    return LatencyWriter(statement)


async def measure_postgres(rows: int) -> dict[str, Any]:
    admin_dsn = require("PG_PRIMARY_DSN")
    database = f"bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(admin_dsn)
    await admin.execute(f'CREATE DATABASE "{database}"')
    dsn = with_database(admin_dsn, database)
    conn = await asyncpg.connect(dsn)
    pool = await asyncpg.create_pool(dsn, min_size=2, max_size=4)
    try:
        print(f"seeding two tables of {rows:,} rows", flush=True)
        await seed(conn, "ours", rows)
        await seed(conn, "single", rows)

        async def single_update() -> None:
            await conn.execute(f"UPDATE single SET amount_cents = {EXPRESSION}")

        figures = await compare(
            "postgres",
            rows,
            baseline_writer=writer_for(pool, "ours", rows),
            ours_writer=writer_for(pool, "ours", rows),
            target=lambda: TimedTarget(dsn),
            single_writer=writer_for(pool, "single", rows),
            single_update=single_update,
        )
    finally:
        await pool.close()
        await conn.close()
        await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        await admin.close()
    return figures


# -- MySQL / MariaDB -------------------------------------------------------------------------------


def mysql_execute(dsn: str, *statements: str) -> None:
    conn = mysql_connect(dsn)
    try:
        with conn.cursor() as cur:
            for sql in statements:
                cur.execute(sql)
                cur.fetchall()
    finally:
        conn.close()


def mysql_seed(dsn: str, table: str, rows: int) -> None:
    try:
        mysql_execute(
            dsn,
            f"CREATE TABLE {table} (id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY, amount INT NOT NULL, "
            "amount_cents BIGINT NULL) ENGINE=InnoDB",
            f"INSERT INTO {table} (amount) SELECT seq % 10000 FROM seq_1_to_{int(rows)}",
            f"ANALYZE TABLE {table}",
        )
    except pymysql.err.ProgrammingError as error:
        if error.args[0] == ER_NO_SUCH_TABLE:
            raise SystemExit("the MySQL bench seeds with MariaDB's Sequence engine (seq_1_to_N)") from error
        raise


def mysql_writer_for(
    dsn: str, table: str, rows: int, deadlocks: list[int]
) -> ThreadedLatencyWriter[Connection]:
    """The application: half updates of existing rows, half inserts, writing amount_cents itself; a
    deadlock is retried as an application would (and counted in `deadlocks`), anything else fails."""

    def statement(conn: Connection, rng: Any) -> object:
        amount = rng.randrange(10000)
        if rng.random() < 0.5:
            sql = f"UPDATE {table} SET amount = %s, amount_cents = %s WHERE id = %s"
            args: tuple[int, ...] = (amount, amount * 100, rng.randrange(1, rows + 1))
        else:
            sql, args = f"INSERT INTO {table} (amount, amount_cents) VALUES (%s, %s)", (amount, amount * 100)
        for attempt in range(DEADLOCK_ATTEMPTS):
            try:
                with conn.cursor() as cur:
                    return cur.execute(sql, args)
            except pymysql.MySQLError as error:
                if error.args[0] != ER_LOCK_DEADLOCK or attempt == DEADLOCK_ATTEMPTS - 1:
                    raise
                deadlocks.append(1)
        raise AssertionError("unreachable")

    return ThreadedLatencyWriter(
        connect=lambda: mysql_connect(dsn), statement=statement, close=lambda conn: conn.close()
    )


async def measure_mysql(rows: int) -> dict[str, Any]:
    admin_dsn = require("MYSQL_PRIMARY_DSN")
    database = f"bench_{uuid.uuid4().hex[:8]}"
    await asyncio.to_thread(mysql_execute, admin_dsn, f"CREATE DATABASE `{database}`")
    dsn = with_database(admin_dsn, database)
    deadlocks: list[int] = []
    try:
        print(f"seeding two tables of {rows:,} rows", flush=True)
        await asyncio.to_thread(mysql_seed, dsn, "ours", rows)
        await asyncio.to_thread(mysql_seed, dsn, "single", rows)

        async def single_update() -> None:
            # One autocommit statement at the server's default isolation: what one would run by hand.
            await asyncio.to_thread(mysql_execute, dsn, f"UPDATE single SET amount_cents = {EXPRESSION}")

        figures = await compare(
            "mysql",
            rows,
            baseline_writer=mysql_writer_for(dsn, "ours", rows, deadlocks),
            ours_writer=mysql_writer_for(dsn, "ours", rows, deadlocks),
            target=lambda: TimedMysqlTarget(dsn),
            single_writer=mysql_writer_for(dsn, "single", rows, deadlocks),
            single_update=single_update,
        )
    finally:
        await asyncio.to_thread(mysql_execute, admin_dsn, f"DROP DATABASE IF EXISTS `{database}`")
    figures["writer_deadlock_retries"] = len(deadlocks)
    return figures


# -- the measurement, the same on both engines -----------------------------------------------------


async def compare(
    engine: str,
    rows: int,
    *,
    baseline_writer: Writer,
    ours_writer: Writer,
    target: Callable[[], TargetDatabase],
    single_writer: Writer,
    single_update: Callable[[], Any],
) -> dict[str, Any]:
    """Writer p99 alone, then during our backfill, then during one UPDATE of the identical table."""
    baseline_writer.start()
    await asyncio.sleep(BASELINE_SECONDS)  # a measurement window, not synchronisation
    baseline_latencies = await baseline_writer.stop()
    baseline = percentile(baseline_latencies, 0.99)
    print(f"writer p99 without a backfill: {baseline * 1000:.1f} ms", flush=True)

    ours_seconds, ours_latencies = await run_ours(engine, target, ours_writer)
    ours_p99 = percentile(ours_latencies, 0.99)
    print(
        f"our backfill: {ours_seconds:.2f} s, {len(CHUNK_SECONDS)} chunks, writer p99 "
        f"{ours_p99 * 1000:.1f} ms, {ours_writer.errors} errors",
        flush=True,
    )

    single_writer.start()
    started = time.monotonic()
    await single_update()
    single_seconds = time.monotonic() - started
    single_latencies = await single_writer.stop()
    single_p99 = percentile(single_latencies, 0.99)
    print(f"single UPDATE: {single_seconds:.2f} s, writer p99 {single_p99 * 1000:.1f} ms", flush=True)

    worst_chunk = max(CHUNK_SECONDS) if CHUNK_SECONDS else 0.0
    return {
        "engine": engine,
        "rows": rows,
        "ours_seconds": round(ours_seconds, 3),
        "single_update_seconds": round(single_seconds, 3),
        "throughput_ratio": round(single_seconds / ours_seconds, 3),
        "chunks": len(CHUNK_SECONDS),
        "median_chunk_ms": round(percentile(CHUNK_SECONDS, 0.5) * 1000, 1),
        "worst_chunk_ms": round(worst_chunk * 1000, 1),
        "worst_chunk_over_target": round(worst_chunk / (TARGET_MS / 1000), 3),
        "writer_p99_baseline_ms": round(baseline * 1000, 2),
        "writer_p99_ours_ms": round(ours_p99 * 1000, 2),
        "writer_p99_single_update_ms": round(single_p99 * 1000, 2),
        "writer_p99_ratio": round(ours_p99 / baseline, 3) if baseline else None,
        "writer_p99_ratio_single_update": round(single_p99 / baseline, 3) if baseline else None,
        "writer_errors": baseline_writer.errors + ours_writer.errors + single_writer.errors,
        # A writer blocked for the whole single UPDATE records one long statement per worker, so its
        # p99 depends on how many fast ones came first: the count and the worst latency show that.
        "writer_statements": {
            "baseline": len(baseline_latencies),
            "ours": len(ours_latencies),
            "single_update": len(single_latencies),
        },
        "writer_worst_ms": {
            "baseline": round(max(baseline_latencies, default=0.0) * 1000, 1),
            "ours": round(max(ours_latencies, default=0.0) * 1000, 1),
            "single_update": round(max(single_latencies, default=0.0) * 1000, 1),
        },
    }


async def run_ours(
    engine: str, target: Callable[[], TargetDatabase], writer: Writer
) -> tuple[float, list[float]]:
    """The real service path: spec, plan, store checkpoints, adaptive chunks, verification."""
    spec = {
        "name": "bench-cents",
        "target": "bench",
        "operations": [
            {
                "backfill": {
                    "table": "ours",
                    "column": "amount_cents",
                    "expression": EXPRESSION,
                    "chunk_target_ms": TARGET_MS,
                }
            }
        ],
    }
    with tempfile.TemporaryDirectory() as state:
        store = SqlStateStore(f"sqlite+aiosqlite:///{Path(state) / 'state.db'}")
        service = MigrationService(store, TargetRegistry({"bench": (engine, target)}), NullNotifier())
        await service.start()
        try:
            run = await service.create(spec)
            await service.start_stage(run.id, Stage.EXPAND)
            await service.wait(run.id, {RunStatus.AWAITING_DEPLOY}, 60)
            await service.approve_deploy(run.id)
            writer.start()
            started = time.monotonic()
            await service.start_stage(run.id, Stage.BACKFILL)
            run, reached = await service.wait(run.id, {RunStatus.AWAITING_CONTRACT}, 3600)
            seconds = time.monotonic() - started
            latencies = await writer.stop()
            if not reached:
                raise SystemExit(f"backfill did not finish: {run.status.value} {run.error}")
        finally:
            await service.stop()
    return seconds, latencies


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--engine", choices=["postgres", "mysql"], default="postgres")
    args = parser.parse_args()
    measure = measure_mysql if args.engine == "mysql" else measure_postgres
    result = asyncio.run(measure(args.rows))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
