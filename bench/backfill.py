"""Our backfill against a single UPDATE of an identical table, with an application writing.

    python bench/backfill.py --rows 1000000 [--engine postgres]

Prints figures as it goes and, on its last line, one JSON object:
  throughput_ratio                 our rows/s over the single UPDATE's rows/s (goal >= 0.8)
  worst_chunk_over_target          slowest chunk over the chunk time target (goal <= 2)
  writer_p99_ratio                 writer p99 during our backfill over its p99 without one (goal <= 2)
  writer_p99_ratio_single_update   the same during the single UPDATE
Needs PG_PRIMARY_DSN (source .services/env after `make services`).
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
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from adapters.postgres.target import PostgresTarget
from adapters.slack import NullNotifier
from adapters.statestore.store import SqlStateStore
from bench.common import LatencyWriter, percentile
from orchestrator.domain.plan import BackfillWork, Stage
from orchestrator.domain.states import RunStatus
from orchestrator.ports import ChunkResult, KeyColumn
from orchestrator.service import MigrationService, TargetRegistry

EXPRESSION = "amount * 100"
TARGET_MS = 200
BASELINE_SECONDS = 3.0


class TimedTarget(PostgresTarget):
    """The real target, with each chunk's wall time recorded."""

    chunk_seconds: list[float] = []

    async def backfill_chunk(
        self, work: BackfillWork, key: Sequence[KeyColumn], after: list[Any] | None, limit: int
    ) -> ChunkResult:
        started = time.monotonic()
        result = await super().backfill_chunk(work, key, after, limit)
        if result.high_water is not None:
            TimedTarget.chunk_seconds.append(time.monotonic() - started)
        return result


def with_database(dsn: str, database: str) -> str:
    head, _, _ = dsn.rpartition("/")
    return f"{head}/{database}"


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


async def measure(rows: int) -> dict[str, Any]:
    admin_dsn = os.environ.get("PG_PRIMARY_DSN")
    if not admin_dsn:
        raise SystemExit("PG_PRIMARY_DSN is not set: run `make services` and `. .services/env`")
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

        writer = writer_for(pool, "ours", rows)
        writer.start()
        await asyncio.sleep(BASELINE_SECONDS)  # a measurement window, not synchronisation
        baseline = percentile(await writer.stop(), 0.99)
        print(f"writer p99 without a backfill: {baseline * 1000:.1f} ms", flush=True)

        ours_seconds, ours_p99, errors = await run_ours(dsn, writer)
        print(
            f"our backfill: {ours_seconds:.2f} s, writer p99 {ours_p99 * 1000:.1f} ms, {errors} errors",
            flush=True,
        )

        single_writer = writer_for(pool, "single", rows)
        single_writer.start()
        started = time.monotonic()
        await conn.execute(f"UPDATE single SET amount_cents = {EXPRESSION}")
        single_seconds = time.monotonic() - started
        single_p99 = percentile(await single_writer.stop(), 0.99)
        print(f"single UPDATE: {single_seconds:.2f} s, writer p99 {single_p99 * 1000:.1f} ms", flush=True)
    finally:
        await pool.close()
        await conn.close()
        await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        await admin.close()
    worst_chunk = max(TimedTarget.chunk_seconds) if TimedTarget.chunk_seconds else 0.0
    return {
        "engine": "postgres",
        "rows": rows,
        "ours_seconds": round(ours_seconds, 3),
        "single_update_seconds": round(single_seconds, 3),
        "throughput_ratio": round(single_seconds / ours_seconds, 3),
        "chunks": len(TimedTarget.chunk_seconds),
        "worst_chunk_ms": round(worst_chunk * 1000, 1),
        "worst_chunk_over_target": round(worst_chunk / (TARGET_MS / 1000), 3),
        "writer_p99_baseline_ms": round(baseline * 1000, 2),
        "writer_p99_ratio": round(ours_p99 / baseline, 3) if baseline else None,
        "writer_p99_ratio_single_update": round(single_p99 / baseline, 3) if baseline else None,
        "writer_errors": errors + single_writer.errors,
    }


async def run_ours(dsn: str, writer: LatencyWriter) -> tuple[float, float, int]:
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
        service = MigrationService(
            store, TargetRegistry({"bench": ("postgres", lambda: TimedTarget(dsn))}), NullNotifier()
        )
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
    return seconds, percentile(latencies, 0.99), writer.errors


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--engine", choices=["postgres", "mysql"], default="postgres")
    args = parser.parse_args()
    if args.engine == "mysql":
        result: dict[str, Any] = {"engine": "mysql", "error": "the MySQL backfill bench is not built yet"}
    else:
        result = asyncio.run(measure(args.rows))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
