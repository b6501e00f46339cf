"""A shadow-table rewrite (integer id -> bigint) against a plain ALTER TABLE ... TYPE of an identical
table, each with an application writing to its table.

    python bench/pg_shadow.py --rows 1000000

Prints figures as it goes and, on its last line, one JSON object:
  time_ratio              the shadow rewrite's backfill stage (copy, replay, verification, index
                          builds, swap) over the plain ALTER's rewrite (goal <= 2.5)
  copy_time_ratio         the copy step alone (chunks, replay, verification) over the plain ALTER
  shadow_worst_stall_ms   the writer's worst statement from expand to contract (goal <= lock_timeout + 100)
  alter_worst_stall_ms    the writer's worst statement during the plain ALTER
Needs PG_PRIMARY_DSN (source .services/env after `make services`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from adapters.postgres.target import PostgresTarget
from adapters.slack import NullNotifier
from adapters.statestore.store import SqlStateStore
from bench.backfill import require, with_database
from bench.common import LatencyWriter, percentile
from orchestrator.domain.plan import Stage
from orchestrator.domain.run import EventType, MigrationEvent
from orchestrator.domain.states import RunStatus
from orchestrator.engine.planner import postgres as postgres_planners
from orchestrator.engine.planner.postgres.shadow import plan_shadow
from orchestrator.service import MigrationService, TargetRegistry

LOCK_TIMEOUT_MS = 1000


async def seed(conn: asyncpg.Connection, table: str, rows: int) -> None:
    await conn.execute(
        f"CREATE TABLE {table} (id serial PRIMARY KEY, amount integer NOT NULL, note text, "
        "created_at timestamptz NOT NULL DEFAULT now())"
    )
    await conn.execute(
        f"INSERT INTO {table} (amount, note) SELECT g % 10000, md5(g::text) "
        "FROM generate_series(1, $1::int) AS g",
        rows,
    )
    await conn.execute(f"CREATE INDEX {table}_amount_idx ON {table} (amount)")
    await conn.execute(f"VACUUM ANALYZE {table}")


def writer_for(pool: asyncpg.Pool, table: str, rows: int) -> LatencyWriter:
    """The application: half updates of existing rows, half inserts; never returns the id (a client's
    cached plan for a statement returning it would change result type at the swap)."""

    async def statement(worker: int, rng: Any) -> object:
        amount = rng.randrange(10000)
        if rng.random() < 0.5:
            return await pool.execute(
                f"UPDATE {table} SET amount = $2 WHERE id = $1", rng.randrange(1, rows + 1), amount
            )
        return await pool.execute(f"INSERT INTO {table} (amount, note) VALUES ($1, 'bench')", amount)

    return LatencyWriter(statement)


async def run_shadow(dsn: str, writer: LatencyWriter) -> dict[str, Any]:
    """The real service path: spec, plan, checkpoints, throttled chunks, verification, the swap."""
    postgres_planners.PLANNERS.setdefault("alter_column", plan_shadow)
    spec = {
        "name": "bench-shadow",
        "target": "bench",
        "settings": {"lock_timeout_ms": LOCK_TIMEOUT_MS},
        "operations": [
            {"alter_column": {"table": "ours", "column": "id", "type": "bigint", "strategy": "shadow"}}
        ],
    }
    with tempfile.TemporaryDirectory() as state:
        store = SqlStateStore(f"sqlite+aiosqlite:///{Path(state) / 'state.db'}")
        targets = TargetRegistry({"bench": ("postgres", lambda: PostgresTarget(dsn))})
        service = MigrationService(store, targets, NullNotifier())
        await service.start()
        writer.start()
        try:
            run = await service.create(spec)
            await service.start_stage(run.id, Stage.EXPAND)
            await _settle(service, run.id, RunStatus.AWAITING_DEPLOY)
            await service.approve_deploy(run.id)
            started = time.monotonic()
            await service.start_stage(run.id, Stage.BACKFILL)
            await _settle(service, run.id, RunStatus.AWAITING_CONTRACT)
            backfill_seconds = time.monotonic() - started
            await service.start_stage(run.id, Stage.CONTRACT)
            await _settle(service, run.id, RunStatus.COMPLETED)
            events = await service.list_events(run.id)
        finally:
            latencies = await writer.stop()
            await service.stop()
    return {
        "backfill_seconds": backfill_seconds,
        "steps": _step_seconds(events),
        "latencies": latencies,
    }


async def _settle(service: MigrationService, run_id: str, status: RunStatus) -> None:
    run, reached = await service.wait(run_id, {status}, 3600)
    if not reached:
        raise SystemExit(f"the shadow rewrite did not reach {status.value}: {run.status.value} {run.error}")


def _step_seconds(events: list[MigrationEvent]) -> dict[str, float]:
    return {
        (event.step_id or "").rsplit(".", 1)[-1]: float(event.data.get("seconds", 0.0))
        for event in events
        if event.type is EventType.STEP_FINISHED
    }


async def run_alter(conn: asyncpg.Connection, writer: LatencyWriter) -> tuple[float, list[float]]:
    """What one would run by hand: the rewrite holds ACCESS EXCLUSIVE for as long as it takes."""
    writer.start()
    started = time.monotonic()
    await conn.execute("ALTER TABLE plain ALTER COLUMN id TYPE bigint")
    seconds = time.monotonic() - started
    return seconds, await writer.stop()


async def measure(rows: int) -> dict[str, Any]:
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
        await seed(conn, "plain", rows)

        await conn.execute("CHECKPOINT")
        shadow_writer = writer_for(pool, "ours", rows)
        shadow = await run_shadow(dsn, shadow_writer)
        steps = shadow["steps"]
        print(
            f"shadow rewrite: backfill stage {shadow['backfill_seconds']:.2f} s (copy and verify "
            f"{steps.get('shadow_copy', 0):.2f} s, indexes {steps.get('shadow_build', 0):.2f} s, swap "
            f"{steps.get('shadow_swap', 0):.2f} s), writer worst {max(shadow['latencies']) * 1000:.1f} ms",
            flush=True,
        )

        await conn.execute("CHECKPOINT")
        alter_writer = writer_for(pool, "plain", rows)
        alter_seconds, alter_latencies = await run_alter(conn, alter_writer)
        print(
            f"plain ALTER ... TYPE: {alter_seconds:.2f} s, writer worst {max(alter_latencies) * 1000:.1f} ms",
            flush=True,
        )
    finally:
        await pool.close()
        await conn.close()
        await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        await admin.close()

    shadow_latencies: list[float] = shadow["latencies"]
    return {
        "engine": "postgres",
        "rows": rows,
        "lock_timeout_ms": LOCK_TIMEOUT_MS,
        "shadow_backfill_seconds": round(shadow["backfill_seconds"], 3),
        "shadow_step_seconds": {name: round(seconds, 3) for name, seconds in steps.items()},
        "alter_seconds": round(alter_seconds, 3),
        "time_ratio": round(shadow["backfill_seconds"] / alter_seconds, 3),
        "copy_time_ratio": round(steps.get("shadow_copy", 0.0) / alter_seconds, 3),
        "shadow_worst_stall_ms": round(max(shadow_latencies, default=0.0) * 1000, 1),
        "alter_worst_stall_ms": round(max(alter_latencies, default=0.0) * 1000, 1),
        "shadow_writer_p99_ms": round(percentile(shadow_latencies, 0.99) * 1000, 2),
        "alter_writer_p99_ms": round(percentile(alter_latencies, 0.99) * 1000, 2),
        "writer_statements": {"shadow": len(shadow_latencies), "alter": len(alter_latencies)},
        "writer_errors": shadow_writer.errors + alter_writer.errors,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(measure(args.rows))))


if __name__ == "__main__":
    main()
