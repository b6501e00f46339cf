"""`make demo`: a real zero-downtime migration on the local PostgreSQL pair, driven like a pipeline.

It seeds a 200,000-row table, starts `osctl serve` with the embedded state store, and drives
expand -> deploy gate -> backfill -> contract with the `osctl` client verbs a release pipeline would
use, while an application stand-in inserts and updates rows the whole time (switching to the new
code at the deploy gate). It exits non-zero if any write failed or the final schema or data is wrong.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import yaml

from adapters.postgres.workload import BAND_EXPRESSION, AccountsWriter, create_accounts

ROWS = 200_000
DATABASE = "osc_demo"
OSCTL = str(Path(sys.executable).parent / "osctl")

SPEC: dict[str, Any] = {
    "name": "accounts-score-band",
    "target": "demo",
    "description": "Replace accounts.legacy_status with a score band the new app version maintains.",
    "operations": [
        {"add_column": {"table": "accounts", "column": {"name": "band", "type": "text"}}},
        {"create_index": {"table": "accounts", "name": "accounts_email_idx", "columns": ["email"]}},
        {
            "backfill": {
                "table": "accounts",
                "column": "band",
                "expression": BAND_EXPRESSION,
                "batch_size": 5000,
            }
        },
        {"drop_column": {"table": "accounts", "column": "legacy_status"}},
    ],
}


def database_dsn(dsn: str, database: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, f"/{database}", parts.query, parts.fragment))


def say(message: str) -> None:
    print(f"[demo] {message}", flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def osctl(env: dict[str, str], *args: str) -> str:
    """Run a client verb as a pipeline step would; any non-zero exit stops the demo."""
    started = time.monotonic()
    result = subprocess.run([OSCTL, *args], env=env, capture_output=True, text=True, check=False)
    say(f"$ osctl {' '.join(args)}  -> exit {result.returncode} in {time.monotonic() - started:.1f} s")
    if result.returncode != 0:
        sys.stderr.write(result.stdout + result.stderr)
        raise SystemExit(f"osctl {args[0]} failed with exit code {result.returncode}")
    return result.stdout.strip()


async def seed(primary: str) -> None:
    admin = await asyncpg.connect(primary)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{DATABASE}"')
    finally:
        await admin.close()
    conn = await asyncpg.connect(database_dsn(primary, DATABASE))
    try:
        await create_accounts(conn, rows=ROWS)
    finally:
        await conn.close()


def start_service(env: dict[str, str], port: int, log_path: Path) -> subprocess.Popen[bytes]:
    log = log_path.open("wb")
    process = subprocess.Popen([OSCTL, "serve"], env=env, stdout=log, stderr=log)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the service exited with {process.returncode}; see {log_path}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return process
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    process.kill()
    raise SystemExit(f"the service did not become ready in 30 s; see {log_path}")


async def pipeline(env: dict[str, str], spec_path: Path, writer: AccountsWriter) -> str:
    """The release pipeline: one osctl call per stage. Blocking calls run in a thread so the
    application stand-in keeps writing on this event loop meanwhile."""

    def run(*args: str) -> Any:
        return asyncio.to_thread(osctl, env, *args)

    run_id = str(await run("apply", str(spec_path))).splitlines()[0]
    say(f"migration {run_id} planned and stored")
    await run("advance", run_id, "expand", "--wait", "--timeout", "600")
    say("expand done: new column and index exist; the old application version keeps working")
    await writer.switch_to_new_version()
    say("application version 2 rolled out (writes band, no longer touches legacy_status)")
    await run("approve-deploy", run_id)
    await run("advance", run_id, "backfill", "--wait", "--timeout", "600")
    await run("advance", run_id, "contract", "--wait", "--timeout", "600")
    return run_id


def timeline(api: str, run_id: str) -> list[str]:
    events = httpx.get(f"{api}/v1/migrations/{run_id}/events", timeout=30).json()["events"]
    start = datetime.fromisoformat(events[0]["at"])
    stages: dict[str, dict[str, Any]] = {}
    lines = []
    for event in events:
        at = (datetime.fromisoformat(event["at"]) - start).total_seconds()
        if event["type"] == "stage_started":
            stages[event["stage"]] = {"start": at, "steps": 0, "retries": 0}
        elif event["type"] == "step_finished" and event["stage"] in stages:
            stages[event["stage"]]["steps"] += 1
        elif event["type"] == "step_retry" and event["stage"] in stages:
            stages[event["stage"]]["retries"] += 1
        elif event["type"] == "stage_finished":
            stage = stages[event["stage"]]
            lines.append(
                f"  {event['stage']:<10} t+{stage['start']:6.2f}s  {at - stage['start']:6.2f}s  "
                f"{stage['steps']} step(s), {stage['retries']} lock retr{'y' if stage['retries'] == 1 else 'ies'}"
            )
        elif event["type"] == "transition" and event["data"].get("to") == "awaiting_backfill":
            lines.append(f"  {'gate':<10} t+{at:6.2f}s  approved by the pipeline")
    return lines


async def verify(primary: str, replica: str) -> list[str]:
    """Everything that must hold after the migration; an empty list means all is well."""
    problems = []
    conn = await asyncpg.connect(database_dsn(primary, DATABASE))
    try:
        columns = {
            row["attname"]
            for row in await conn.fetch(
                "SELECT attname FROM pg_attribute WHERE attrelid = 'accounts'::regclass AND attnum > 0 AND NOT attisdropped"
            )
        }
        if "band" not in columns or "legacy_status" in columns:
            problems.append(f"unexpected columns: {sorted(columns)}")
        valid = await conn.fetchval(
            "SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass('accounts_email_idx')"
        )
        if valid is not True:
            problems.append(f"index accounts_email_idx valid={valid}")
        wrong = await conn.fetchval(
            f"SELECT count(*) FROM accounts WHERE band IS DISTINCT FROM ({BAND_EXPRESSION})"  # noqa: S608
        )
        if wrong:
            problems.append(f"{wrong} rows have a wrong band")
        lsn = await conn.fetchval("SELECT pg_current_wal_insert_lsn()")
        digest_sql = "SELECT count(*), md5(string_agg(a::text, ',' ORDER BY id)) FROM accounts AS a"
        on_primary = tuple(await conn.fetchrow(digest_sql) or ())
    finally:
        await conn.close()
    standby = await asyncpg.connect(database_dsn(replica, DATABASE))
    try:
        deadline = time.monotonic() + 60
        while not await standby.fetchval("SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn", lsn):
            if time.monotonic() > deadline:
                problems.append("the replica did not catch up within 60 s")
                break
            await asyncio.sleep(0.05)
        on_replica = tuple(await standby.fetchrow(digest_sql) or ())
    finally:
        await standby.close()
    if on_replica != on_primary:
        problems.append(f"replica differs from primary: {on_replica} != {on_primary}")
    else:
        say(f"replica matches the primary: {on_primary[0]} rows, md5 {on_primary[1]}")
    return problems


async def main() -> int:
    primary = os.environ.get("PG_PRIMARY_DSN")
    replica = os.environ.get("PG_REPLICA_DSN")
    if not primary or not replica:
        print(
            "PG_PRIMARY_DSN/PG_REPLICA_DSN are not set: run `make demo`, which starts the servers",
            file=sys.stderr,
        )
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="osctl-demo-"))
    say(f"seeding {ROWS:,} rows into {DATABASE}.accounts")
    started = time.monotonic()
    await seed(primary)
    say(f"seeded in {time.monotonic() - started:.1f} s")

    port = free_port()
    api = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "OSCTL_TARGET_DEMO": database_dsn(primary, DATABASE),
        "OSCTL_STATE_URL": f"sqlite+aiosqlite:///{workdir / 'state.db'}",
        "OSCTL_PORT": str(port),
        "OSCTL_API_URL": api,
    }
    spec_path = workdir / "migration.yaml"
    spec_path.write_text(yaml.safe_dump(SPEC, sort_keys=False))
    service = start_service(env, port, workdir / "service.log")
    say(f"osctl serve is up on {api} (state in {workdir / 'state.db'})")

    writer = AccountsWriter(database_dsn(primary, DATABASE), workers=3)
    await writer.start()
    say("application stand-in writing: 3 connections inserting and updating accounts")
    failed: str | None = None
    run_id = ""
    try:
        run_id = await pipeline(env, spec_path, writer)
    except SystemExit as error:
        failed = str(error)
    finally:
        stats = await writer.stop()

    if run_id:
        print("\nStage timeline")
        print("\n".join(timeline(api, run_id)))
    service.terminate()
    service.wait(timeout=60)

    print("\nApplication writes during the migration")
    print(f"  statements {stats.statements:,} (inserts {stats.inserts:,}, updates {stats.updates:,})")
    print(f"  errors     {stats.errors}")
    print(f"  worst latency {stats.worst_latency * 1000:.0f} ms")
    problems = [] if failed else await verify(primary, replica)
    if failed:
        problems.append(failed)
    if stats.errors:
        problems.append(f"{stats.errors} application writes failed: {stats.error_messages[:3]}")
    if problems:
        print("\nDEMO FAILED")
        for problem in problems:
            print(f"  - {problem}")
        print(f"  service log: {workdir / 'service.log'}")
        return 1
    print("\nDEMO OK: schema changed on a live table, no write failed, replica in step.")
    shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
