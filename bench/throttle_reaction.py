"""How fast a running backfill stops writing once the replica falls behind.

    python bench/throttle_reaction.py [--runs 5] [--rows 200000]

For each run: a backfill is under way on the local PostgreSQL primary, WAL replay is paused on its
streaming replica (the breach), and we record when the last chunk committed after that. Prints the
figures and, on its last line, one JSON object with `median_s` and `worst_s` (goal: at most 0.5 s
with the default poll interval), plus the threshold and poll interval used.
Needs PG_PRIMARY_DSN and PG_REPLICA_DSN (source .services/env after `make services`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
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
from adapters.signals.pg_replica_lag import PgReplicaLagSource
from adapters.slack import NullNotifier
from adapters.statestore.store import SqlStateStore
from orchestrator.domain.plan import BackfillWork, Stage
from orchestrator.domain.states import RunStatus
from orchestrator.domain.throttle import Threshold
from orchestrator.engine.clock import SystemClock
from orchestrator.engine.throttler import DEFAULT_POLL_SECONDS, Throttler
from orchestrator.ports import ChunkResult, KeyColumn
from orchestrator.service import MigrationService, TargetRegistry

HOLD_AT_S = 0.1


class CommitClock(PostgresTarget):
    """The real target, noting when each chunk has committed."""

    commits: list[float] = []

    async def backfill_chunk(
        self, work: BackfillWork, key: Sequence[KeyColumn], after: list[Any] | None, limit: int
    ) -> ChunkResult:
        result = await super().backfill_chunk(work, key, after, limit)
        if result.rows_updated:
            CommitClock.commits.append(time.monotonic())
        return result


def with_database(dsn: str, database: str) -> str:
    head, _, _ = dsn.rpartition("/")
    return f"{head}/{database}"


async def one_run(primary: str, replica: str, rows: int, state_dir: Path, number: int) -> float:
    table = f"reaction_{number}"
    conn = await asyncpg.connect(primary)
    try:
        await conn.execute(f"CREATE TABLE {table} (id bigserial PRIMARY KEY, amount integer NOT NULL)")
        await conn.execute(
            f"INSERT INTO {table} (amount) SELECT g FROM generate_series(1, $1::int) AS g", rows
        )
    finally:
        await conn.close()
    throttler = Throttler(SystemClock())
    throttler.add_signal("bench", PgReplicaLagSource(primary, replica), Threshold(hold_at=HOLD_AT_S))
    await throttler.start()
    store = SqlStateStore(f"sqlite+aiosqlite:///{state_dir / f'state-{number}.db'}")
    service = MigrationService(
        store,
        TargetRegistry({"bench": ("postgres", lambda: CommitClock(primary))}),
        NullNotifier(),
        throttle=throttler,
    )
    await service.start()
    standby = await asyncpg.connect(replica)
    try:
        spec = {
            "name": f"reaction-{number}",
            "target": "bench",
            "operations": [
                {"add_column": {"table": table, "column": {"name": "cents", "type": "bigint"}}},
                {"backfill": {"table": table, "column": "cents", "expression": "amount * 100"}},
            ],
        }
        run = await service.create(spec)
        await service.start_stage(run.id, Stage.EXPAND)
        await service.wait(run.id, {RunStatus.AWAITING_DEPLOY}, 60)
        await service.approve_deploy(run.id)
        while throttler.reason("bench") is not None:  # start from a replica in step
            await asyncio.sleep(0.05)
        CommitClock.commits.clear()
        await service.start_stage(run.id, Stage.BACKFILL)
        while len(CommitClock.commits) < 3:
            await asyncio.sleep(0.01)
        await standby.execute("SELECT pg_wal_replay_pause()")
        breach = time.monotonic()
        try:
            while True:
                backfill = (await service.get(run.id)).progress.backfill
                if backfill is not None and backfill.throttled:
                    break
                await asyncio.sleep(0.02)
            # Any chunk in flight has committed by now; nothing may commit while the hold lasts.
            await asyncio.sleep(0.5)
            after = [at for at in CommitClock.commits if at > breach]
        finally:
            await standby.execute("SELECT pg_wal_replay_resume()")
        await service.wait(run.id, {RunStatus.AWAITING_CONTRACT}, 300)
        return (max(after) - breach) if after else 0.0
    finally:
        await standby.close()
        await service.stop()
        await throttler.stop()


async def measure(runs: int, rows: int) -> dict[str, Any]:
    admin_dsn, replica_dsn = os.environ.get("PG_PRIMARY_DSN"), os.environ.get("PG_REPLICA_DSN")
    if not admin_dsn or not replica_dsn:
        raise SystemExit(
            "PG_PRIMARY_DSN/PG_REPLICA_DSN are not set: run `make services` and `. .services/env`"
        )
    database = f"bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(admin_dsn)
    await admin.execute(f'CREATE DATABASE "{database}"')
    reactions: list[float] = []
    try:
        with tempfile.TemporaryDirectory() as state:
            for number in range(runs):
                reaction = await one_run(
                    with_database(admin_dsn, database),
                    with_database(replica_dsn, database),
                    rows,
                    Path(state),
                    number,
                )
                print(f"run {number + 1}: last chunk committed {reaction:.3f} s after the breach", flush=True)
                reactions.append(reaction)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        await admin.close()
    return {
        "runs": runs,
        "hold_at_s": HOLD_AT_S,
        "poll_interval_s": DEFAULT_POLL_SECONDS,
        "reactions_s": [round(value, 3) for value in reactions],
        "median_s": round(statistics.median(reactions), 3),
        "worst_s": round(max(reactions), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--rows", type=int, default=200_000)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(measure(args.runs, args.rows))))


if __name__ == "__main__":
    main()
