"""API latency and memory of one `osctl serve` holding 50 migrations, with pipeline clients polling.

    python bench/service_load.py [--migrations 50] [--at-gate 45] [--clients 20] [--seconds 20]
                                 [--state postgres|sqlite]

Sets up a fresh target database with one table per migration and (by default) a PostgreSQL state
database, registers the migrations through the API, advances most of them through expand so they
wait at their deploy gate, then runs pipeline clients that poll as a release pipeline does: the
migration's view, a long-poll answered at once, its events, the list. Other clients hold real
long-polls open meanwhile (not measured: their latency is their timeout).

Prints figures as it goes and, on its last line, one JSON object:
  api_p99_ms   99th percentile latency of the polling requests, client side (goal < 50); every
               migration has a pipeline polling it twice a second (jittered) by default
  rss_mb       resident memory of the service process after the run (goal < 300)
Needs PG_PRIMARY_DSN (source .services/env after `make services`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import percentile

OSCTL = str(Path(sys.executable).parent / "osctl")
ROWS_PER_TABLE = 1000
BY_KIND: dict[str, list[float]] = {}


def with_database(dsn: str, database: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, f"/{database}", parts.query, parts.fragment))


def say(message: str) -> None:
    print(f"[service_load] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def create_database(primary: str, name: str, tables: int) -> None:
    admin = await asyncpg.connect(primary)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    if not tables:
        return
    conn = await asyncpg.connect(with_database(primary, name))
    try:
        for n in range(tables):
            await conn.execute(
                f"CREATE TABLE t{n:03d} (id bigserial PRIMARY KEY, score int NOT NULL);"
                f"INSERT INTO t{n:03d} (score) SELECT g % 100 FROM generate_series(1, {ROWS_PER_TABLE}) g"
            )
    finally:
        await conn.close()


async def drop_database(primary: str, name: str) -> None:
    admin = await asyncpg.connect(primary)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


def spec(n: int) -> dict[str, Any]:
    table = f"t{n:03d}"
    return {
        "name": f"{table}-band",
        "target": "app",
        "operations": [
            {"add_column": {"table": table, "column": {"name": "band", "type": "text"}}},
            {
                "backfill": {
                    "table": table,
                    "column": "band",
                    "expression": "CASE WHEN score >= 50 THEN 'hi' ELSE 'lo' END",
                }
            },
        ],
    }


async def post(client: httpx.AsyncClient, path: str, **kwargs: Any) -> dict[str, Any]:
    response = await client.post(path, headers={"Idempotency-Key": str(uuid.uuid4())}, **kwargs)
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return body


async def register(client: httpx.AsyncClient, count: int, at_gate: int) -> list[str]:
    ids = []
    for n in range(count):
        ids.append(str((await post(client, "/v1/migrations", json=spec(n)))["migration"]["id"]))
    for run_id in ids[:at_gate]:
        await post(client, f"/v1/migrations/{run_id}/stages/expand")
    for run_id in ids[:at_gate]:
        response = await client.get(
            f"/v1/migrations/{run_id}/wait", params={"until": "awaiting_deploy", "timeout": 120}, timeout=150
        )
        if not response.json()["reached"]:
            raise SystemExit(f"{run_id} did not reach its gate: {response.text}")
    return ids


async def poll(
    client: httpx.AsyncClient, run_id: str, ids: list[str], seconds: float, interval: float, worker: int
) -> list[float]:
    """A pipeline checking on its migration every `interval` seconds (jittered: pipelines do not march
    in step), now and then listing them all."""
    rng = random.Random(worker)
    latencies: list[float] = []
    await asyncio.sleep(rng.uniform(0, interval))
    kinds = BY_KIND
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        request = rng.random()
        started = time.perf_counter()
        if request < 0.5:
            kind, response = "view", await client.get(f"/v1/migrations/{run_id}")
        elif request < 0.8:
            kind, response = (
                "wait",
                await client.get(
                    f"/v1/migrations/{run_id}/wait", params={"until": "awaiting_deploy", "timeout": 0}
                ),
            )
        elif request < 0.95:
            kind, response = "events", await client.get(f"/v1/migrations/{run_id}/events")
        else:
            kind, response = "list", await client.get("/v1/migrations", params={"limit": 50})
        latencies.append(time.perf_counter() - started)
        kinds.setdefault(kind, []).append(latencies[-1])
        response.raise_for_status()
        await asyncio.sleep(interval * rng.uniform(0.5, 1.5))
    return latencies


async def hold_long_polls(client: httpx.AsyncClient, ids: list[str], seconds: float) -> int:
    """Pipelines blocked in `osctl advance --wait`: open long-polls the service must keep cheap."""
    deadline = time.monotonic() + seconds
    held = 0
    while time.monotonic() < deadline:
        await client.get(
            f"/v1/migrations/{random.choice(ids)}/wait",
            params={"until": "completed", "timeout": min(5.0, max(0.1, deadline - time.monotonic()))},
            timeout=60,
        )
        held += 1
    return held


async def server_tail(client: httpx.AsyncClient) -> tuple[float, float, float]:
    """GETs (but /wait) the service itself timed, and how many took over 50 ms and 25 ms (its histogram)."""
    total = under_50 = under_25 = 0.0
    for line in (await client.get("/metrics")).text.splitlines():
        # Long-polls are timed by their timeout, not by the service: leave /wait out here.
        if (
            not line.startswith("osctl_api_request_seconds_bucket")
            or 'method="GET"' not in line
            or "/wait" in line
        ):
            continue
        if 'le="+Inf"' in line:
            total += float(line.split()[-1])
        elif 'le="0.05"' in line:
            under_50 += float(line.split()[-1])
        elif 'le="0.025"' in line:
            under_25 += float(line.split()[-1])
    return total, total - under_50, total - under_25


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--migrations", type=int, default=50)
    parser.add_argument("--at-gate", type=int, default=45)
    parser.add_argument(
        "--clients", type=int, default=50, help="pipelines polling, one per migration by default"
    )
    parser.add_argument("--interval", type=float, default=0.5, help="seconds between one pipeline's polls")
    parser.add_argument("--long-polls", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--state", choices=["postgres", "sqlite"], default="postgres")
    args = parser.parse_args()
    primary = os.environ.get("PG_PRIMARY_DSN")
    if not primary:
        raise SystemExit("PG_PRIMARY_DSN is not set: source .services/env after `make services`")

    suffix = uuid.uuid4().hex[:8]
    target_db, state_db = f"bench_target_{suffix}", f"bench_state_{suffix}"
    workdir = Path(tempfile.mkdtemp(prefix="service_load_"))
    await create_database(primary, target_db, args.migrations)
    if args.state == "postgres":
        await create_database(primary, state_db, 0)
        state_url = with_database(primary, state_db).replace("postgresql://", "postgresql+asyncpg://", 1)
    else:
        state_url = f"sqlite+aiosqlite:///{workdir / 'state.db'}"
    port = free_port()
    env = {
        **os.environ,
        "OSCTL_TARGET_APP": with_database(primary, target_db),
        "OSCTL_STATE_URL": state_url,
        "OSCTL_PORT": str(port),
        "OSCTL_LOG_LEVEL": "warning",
    }
    log = (workdir / "service.log").open("wb")
    service = await asyncio.create_subprocess_exec(OSCTL, "serve", env=env, stdout=log, stderr=log)
    base = f"http://127.0.0.1:{port}"
    try:
        limits = httpx.Limits(max_connections=args.clients + args.long_polls + 5)
        async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as client:
            for _ in range(300):
                try:
                    if (await client.get("/readyz")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
            else:
                raise SystemExit(f"the service did not become ready; see {workdir / 'service.log'}")
            started = time.monotonic()
            ids = await register(client, args.migrations, args.at_gate)
            say(
                f"{len(ids)} migrations registered, {args.at_gate} at their gate, in {time.monotonic() - started:.1f} s"
            )
            rss_before = rss_mb(service.pid)
            server_before = await server_tail(client)
            cpu_before, own_before, load_started = (
                cpu_seconds(service.pid),
                time.process_time(),
                time.monotonic(),
            )
            pollers = [
                poll(client, ids[worker % len(ids)], ids, args.seconds, args.interval, worker)
                for worker in range(args.clients)
            ]
            holders = [hold_long_polls(client, ids, args.seconds) for _ in range(args.long_polls)]
            polled, held = await asyncio.gather(asyncio.gather(*pollers), asyncio.gather(*holders))
            latencies = [value for batch in polled for value in batch]
            long_polls = sum(held)
            elapsed = time.monotonic() - load_started
            server_after = await server_tail(client)
            say(
                f"service side: {server_after[0] - server_before[0]:.0f} GETs but /wait, "
                f"{server_after[1] - server_before[1]:.0f} over 50 ms, {server_after[2] - server_before[2]:.0f} over 25 ms"
            )
            service_cpu = (cpu_seconds(service.pid) - cpu_before) / elapsed * 100
            client_cpu = (time.process_time() - own_before) / elapsed * 100
            statuses = {
                m["status"]
                for m in (await client.get("/v1/migrations", params={"limit": 100})).json()["migrations"]
            }
        rss_after = rss_mb(service.pid)
    finally:
        service.terminate()
        await asyncio.wait_for(service.wait(), timeout=60)
        log.close()
        await drop_database(primary, target_db)
        if args.state == "postgres":
            await drop_database(primary, state_db)

    p50, p99 = percentile(latencies, 0.50) * 1000, percentile(latencies, 0.99) * 1000
    say(
        f"{len(latencies)} polling requests from {args.clients} clients in {args.seconds:.0f} s; {long_polls} long-polls"
    )
    say(
        f"latency p50 {p50:.1f} ms, p99 {p99:.1f} ms; RSS {rss_before:.0f} MB before the load, {rss_after:.0f} MB after"
    )
    say(f"statuses at the end: {sorted(statuses)}")
    for kind, values in sorted(BY_KIND.items()):
        say(
            f"  {kind:<6} n={len(values):<5} p50 {percentile(values, 0.5) * 1000:6.1f} ms  p99 {percentile(values, 0.99) * 1000:6.1f} ms"
        )
    say(f"CPU during the load: service {service_cpu:.0f} %, this client {client_cpu:.0f} % (of one core)")
    print(
        json.dumps(
            {
                "api_p99_ms": round(p99, 1),
                "api_p50_ms": round(p50, 1),
                "rss_mb": round(rss_after, 1),
                "requests": len(latencies),
                "requests_per_second": round(len(latencies) / args.seconds, 1),
                "migrations": args.migrations,
                "at_gate": args.at_gate,
                "clients": args.clients,
                "poll_interval_s": args.interval,
                "long_polls_open": args.long_polls,
                "state_store": args.state,
                "service_cpu_percent": round(service_cpu),
            }
        )
    )


if __name__ == "__main__":
    asyncio.run(main())
