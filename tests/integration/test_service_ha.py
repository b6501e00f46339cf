"""Two `osctl serve` processes on one PostgreSQL state store: leader election, failover, fencing,
graceful shutdown, and a secrets scan over everything a full run leaves behind.

Commands go to the replica that does not lead wherever possible: every replica serves the API and
the leader picks up what the others wrote.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from adapters.postgres.workload import BAND_EXPRESSION, create_accounts
from orchestrator.access import hash_token, new_token
from tests.support.pg import PgPair, connect, eventually, fresh_database, require_env, with_database
from tests.support.slack_recorder import SlackRecorder, slack_recorder

pytestmark = pytest.mark.integration
__all__ = ["slack_recorder"]  # the fixture, imported so pytest finds it here

OSCTL = str(Path(sys.executable).parent / "osctl")
LEASE_SECONDS = 3.0
TAKEOVER_LIMIT = 15.0
ROWS = 20_000


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Replica:
    name: str
    process: subprocess.Popen[bytes]
    base: str
    log: Path
    headers: dict[str, str]

    def client(self, **kwargs: Any) -> httpx.AsyncClient:
        kwargs["headers"] = {**self.headers, **kwargs.get("headers", {})}
        return httpx.AsyncClient(base_url=self.base, timeout=60, **kwargs)

    async def leadership(self) -> dict[str, Any]:
        async with self.client() as client:
            body: dict[str, Any] = (await client.get("/v1/leadership")).json()
        return body

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


@dataclass
class Cluster:
    replicas: list[Replica]
    target: str  # the target database's DSN
    state: str  # the state database's DSN (asyncpg form)

    async def leader(self) -> Replica:
        for replica in self.replicas:
            if replica.process.poll() is None and (await replica.leadership())["leader"]:
                return replica
        raise AssertionError("no replica leads")

    async def follower(self) -> Replica:
        leader = await self.leader()
        return next(r for r in self.replicas if r is not leader and r.process.poll() is None)


@asynccontextmanager
async def state_database(password: str | None = None) -> AsyncIterator[str]:
    primary = require_env("PG_PRIMARY_DSN")
    name = f"osctl_state_{uuid.uuid4().hex[:10]}"
    async with connect(primary) as admin:
        await admin.execute(f'CREATE DATABASE "{name}"')
    dsn = with_database(primary, name)
    if password:
        dsn = dsn.replace("postgres@", f"postgres:{password}@", 1)  # loopback trusts: any password connects
    try:
        yield dsn
    finally:
        async with connect(primary) as admin:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@asynccontextmanager
async def cluster(
    target: str,
    state: str,
    tmp_path: Path,
    *,
    count: int = 2,
    extra: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> AsyncIterator[Cluster]:
    replicas = []
    try:
        for index in range(count):
            port = free_port()
            env = {
                **os.environ,
                "OSCTL_TARGET_APP": target,
                "OSCTL_STATE_URL": state.replace("postgresql://", "postgresql+asyncpg://", 1),
                "OSCTL_PORT": str(port),
                "OSCTL_REPLICA_ID": f"replica-{index}",
                "OSCTL_LEADER_LEASE_SECONDS": str(LEASE_SECONDS),
                "OSCTL_LEADER_RETRY_SECONDS": "0.5",
                **(extra or {}),
            }
            log = tmp_path / f"replica-{index}.log"
            with log.open("ab") as out:
                process = subprocess.Popen([OSCTL, "serve"], env=env, stdout=out, stderr=out)
            replicas.append(
                Replica(f"replica-{index}", process, f"http://127.0.0.1:{port}", log, headers or {})
            )
        for replica in replicas:
            await wait_ready(replica)
        group = Cluster(replicas, target, state)
        await eventually(lambda: has_leader(group), timeout=30, what="a leader")
        yield group
    finally:
        for replica in replicas:
            if replica.process.poll() is None:
                os.kill(replica.process.pid, signal.SIGCONT)
                replica.process.terminate()
        for replica in replicas:
            try:
                replica.process.wait(timeout=40)
            except subprocess.TimeoutExpired:
                replica.process.kill()
                replica.process.wait()


async def has_leader(group: Cluster) -> bool:
    try:
        await group.leader()
    except AssertionError:
        return False
    return True


async def wait_ready(replica: Replica) -> None:
    async with replica.client() as client:

        async def ready() -> bool:
            if replica.process.poll() is not None:
                raise AssertionError(
                    f"{replica.name} exited with {replica.process.returncode}:\n{replica.log_text()}"
                )
            try:
                return (await client.get("/readyz")).status_code == 200
            except httpx.TransportError:
                return False

        await eventually(ready, timeout=30, what=f"{replica.name} to be ready")


def backfill_spec(batch_size: int = 200, pause_ms: int = 10) -> dict[str, Any]:
    return {
        "name": "accounts-band",
        "target": "app",
        "operations": [
            {"add_column": {"table": "accounts", "column": {"name": "band", "type": "text"}}},
            {
                "backfill": {
                    "table": "accounts",
                    "column": "band",
                    "expression": BAND_EXPRESSION,
                    "batch_size": batch_size,
                    "pause_ms": pause_ms,
                    "adaptive": False,
                }
            },
        ],
    }


async def post(client: httpx.AsyncClient, path: str, **kwargs: Any) -> dict[str, Any]:
    response = await client.post(path, headers={"Idempotency-Key": str(uuid.uuid4())}, **kwargs)
    assert response.status_code in (200, 201, 202), response.text
    body: dict[str, Any] = response.json()
    return body


async def wait_status(
    client: httpx.AsyncClient, run_id: str, until: str, timeout: float = 120
) -> dict[str, Any]:
    response = await client.get(
        f"/v1/migrations/{run_id}/wait", params={"until": until, "timeout": timeout}, timeout=timeout + 30
    )
    result: dict[str, Any] = response.json()
    assert result["reached"], result
    return result


async def start_backfill(group: Cluster, spec: dict[str, Any]) -> str:
    """Create and advance through a follower; return once the leader's backfill is under way."""
    follower = await group.follower()
    async with follower.client() as api:
        run_id = str((await post(api, "/v1/migrations", json=spec))["migration"]["id"])
        await post(api, f"/v1/migrations/{run_id}/stages/expand")
        await wait_status(api, run_id, "awaiting_deploy")
        await post(api, f"/v1/migrations/{run_id}/deploy-gate")
        await post(api, f"/v1/migrations/{run_id}/stages/backfill")
    return run_id


async def rows_done(replica: Replica, run_id: str) -> int:
    async with replica.client() as api:
        progress = (await api.get(f"/v1/migrations/{run_id}")).json()["progress"]
    return int((progress.get("backfill") or {}).get("rows_done", 0))


async def wrong_rows(dsn: str) -> int:
    async with connect(dsn) as conn:
        return int(
            await conn.fetchval(
                f"SELECT count(*) FROM accounts WHERE band IS DISTINCT FROM ({BAND_EXPRESSION})"
            )
        )


@pytest.fixture
async def target() -> AsyncIterator[PgPair]:
    async with fresh_database() as pair:
        async with connect(pair.primary) as conn:
            await create_accounts(conn, rows=ROWS)
        yield pair


async def test_kill_9_of_the_leader_mid_backfill_the_other_takes_over_and_completes(
    target: PgPair, tmp_path: Path
) -> None:
    async with state_database() as state, cluster(target.primary, state, tmp_path) as group:
        old = await group.leader()
        run_id = await start_backfill(group, backfill_spec())
        await eventually(lambda: _past(old, run_id, ROWS // 5), what="a fifth of the backfill")

        old.process.send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        assert old.process.wait(timeout=30) == -signal.SIGKILL
        survivor = next(r for r in group.replicas if r is not old)
        await eventually(lambda: _leads(survivor), timeout=TAKEOVER_LIMIT, what="the survivor to lead")
        took_over = time.monotonic() - killed_at
        assert took_over < TAKEOVER_LIMIT

        async with survivor.client() as api:
            done = await wait_status(api, run_id, "awaiting_contract")
            events = (await api.get(f"/v1/migrations/{run_id}/events")).json()["events"]
        assert done["migration"]["progress"]["backfill"]["rows_done"] >= ROWS
        resumed = [e for e in events if "resumed_from" in e["data"]]
        assert len(resumed) == 1 and resumed[0]["data"]["rows_done"] > 0
        assert "resuming_migration" in survivor.log_text()
        assert await wrong_rows(target.primary) == 0
    print(f"takeover after kill -9: {took_over:.1f} s")


async def _past(replica: Replica, run_id: str, rows: int) -> bool:
    return await rows_done(replica, run_id) >= rows


async def _leads(replica: Replica) -> bool:
    try:
        return bool((await replica.leadership())["leader"])
    except httpx.TransportError:
        return False


@contextmanager
def stopped(process: subprocess.Popen[bytes]) -> Iterator[None]:
    os.kill(process.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(process.pid, signal.SIGCONT)


async def test_a_paused_old_leader_resumed_after_failover_has_its_writes_refused(
    target: PgPair, tmp_path: Path
) -> None:
    async with state_database() as state, cluster(target.primary, state, tmp_path) as group:
        old = await group.leader()
        old_epoch = (await old.leadership())["epoch"]
        run_id = await start_backfill(group, backfill_spec(batch_size=100, pause_ms=20))
        await eventually(lambda: _past(old, run_id, 500), what="the backfill to be under way")

        async with connect(target.primary) as blocker:
            # Lock every row still to do: the old leader's next chunk waits on it, mid-chunk, with
            # the write to its checkpoint still ahead of it.
            transaction = blocker.transaction()
            await transaction.start()
            await blocker.fetch("SELECT id FROM accounts WHERE band IS NULL FOR UPDATE")
            try:
                await eventually(lambda: _chunk_waiting(target.primary), what="a chunk waiting on the lock")
                survivor = next(r for r in group.replicas if r is not old)
                with stopped(old.process):
                    await eventually(lambda: _leads(survivor), timeout=TAKEOVER_LIMIT, what="failover")
                    new_epoch = (await survivor.leadership())["epoch"]
                    assert new_epoch > old_epoch
                # The old leader runs again, still inside its chunk; let the chunk finish.
            finally:
                await transaction.rollback()

            async def refused() -> bool:
                return "fenced_write_refused" in old.log_text()

            await eventually(refused, timeout=30, what="the old leader's write to be refused")
        async with old.client() as api:
            metrics = (await api.get("/metrics")).text
            assert (await api.get("/v1/leadership")).json()["leader"] is False
        fenced = [line for line in metrics.splitlines() if line.startswith("osctl_fenced_writes_total ")]
        assert fenced and float(fenced[0].split()[1]) >= 1
        refusal = next(line for line in old.log_text().splitlines() if "fenced_write_refused" in line)
        assert f"leader epoch {old_epoch} is stale" in refusal

        async with survivor.client() as api:
            await hurry(api, run_id)
            await wait_status(api, run_id, "awaiting_contract")
        assert await wrong_rows(target.primary) == 0
        assert (await old.leadership())["leader"] is False  # it stood again, and lost


async def _chunk_waiting(dsn: str) -> bool:
    async with connect(dsn) as conn:
        return bool(
            await conn.fetchval(
                "SELECT count(*) > 0 FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock' AND query LIKE '%UPDATE%accounts%'"
            )
        )


async def test_pause_through_a_follower_then_sigterm_checkpoints_and_hands_over_at_once(
    target: PgPair, tmp_path: Path
) -> None:
    async with state_database() as state, cluster(target.primary, state, tmp_path) as group:
        old = await group.leader()
        run_id = await start_backfill(group, backfill_spec(batch_size=100, pause_ms=20))
        await eventually(lambda: _past(old, run_id, 1000), what="the backfill to be under way")

        # On-call pauses through the replica that does not lead: the leader stops the stage.
        follower = await group.follower()
        async with follower.client() as api:
            paused = await post(api, f"/v1/migrations/{run_id}/pause")
            assert paused["status"] == "paused"

            async def stopped_there() -> bool:
                return "moved on to paused elsewhere" in old.log_text()

            await eventually(stopped_there, what="the leader to stop the paused stage")
            assert (await post(api, f"/v1/migrations/{run_id}/resume"))["status"] == "backfilling"
        resumed_at = await rows_done(old, run_id)
        await eventually(lambda: _past(old, run_id, resumed_at + 200), what="the resumed backfill to go on")

        old.process.send_signal(signal.SIGTERM)
        stopped_at = time.monotonic()
        survivor = next(r for r in group.replicas if r is not old)
        await eventually(lambda: _leads(survivor), timeout=TAKEOVER_LIMIT, what="the survivor to lead")
        # Released, not expired: well inside the lease a paused leader would need.
        assert time.monotonic() - stopped_at < LEASE_SECONDS
        assert old.process.wait(timeout=30) in (0, -signal.SIGTERM)
        log = old.log_text()
        for line in ("service_draining", "stage_interrupted", "leadership_released"):
            assert line in log, line
        async with survivor.client() as api:
            await hurry(api, run_id)
            await wait_status(api, run_id, "awaiting_contract")
        assert await wrong_rows(target.primary) == 0


async def hurry(api: httpx.AsyncClient, run_id: str) -> None:
    """Bigger chunks, no pause: the rest of the backfill is not what these tests are about."""
    response = await api.patch(f"/v1/migrations/{run_id}/backfill", json={"batch_size": 5000, "pause_ms": 0})
    assert response.status_code == 200, response.text


async def test_a_full_run_leaks_no_password_to_logs_argv_api_or_slack(
    target: PgPair, tmp_path: Path, slack_recorder: SlackRecorder
) -> None:
    password = f"Pw-{uuid.uuid4().hex}"
    target_dsn = target.primary.replace("postgres@", f"postgres:{password}@", 1)
    token = new_token()
    tokens = tmp_path / "tokens.yaml"
    tokens.write_text(f"pipeline:\n  hash: {hash_token(token)}\n  scopes: [pipeline, oncall]\n")
    token_file = tmp_path / "token"
    token_file.write_text(token)
    extra = {
        "OSCTL_TOKENS_FILE": str(tokens),
        "OSCTL_SLACK_BOT_TOKEN": "xoxb-secret-bot-token",
        "OSCTL_SLACK_CHANNEL": "#deploys",
        "OSCTL_SLACK_BASE_URL": slack_recorder.api_url,
    }
    spec_path = tmp_path / "spec.json"
    spec: dict[str, Any] = backfill_spec(batch_size=2000, pause_ms=0)
    spec["operations"].append({"drop_column": {"table": "accounts", "column": "legacy_status"}})
    spec_path.write_text(json.dumps(spec))
    seen: list[str] = []
    headers = {"Authorization": f"Bearer {token}"}
    async with (
        state_database(password) as state,
        cluster(target_dsn, state, tmp_path, extra=extra, headers=headers) as group,
    ):
        follower = await group.follower()
        env = {**os.environ, "OSCTL_API_URL": follower.base, "OSCTL_TOKEN_FILE": str(token_file)}

        async def osctl(*args: str) -> str:
            process = await asyncio.create_subprocess_exec(
                OSCTL, *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
            )
            # While the verb runs: what anyone on the machine sees of every process's arguments.
            seen.append(
                subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True).stdout
            )
            out, err = await process.communicate()
            seen.extend([out.decode(), err.decode()])
            assert process.returncode == 0, (args, out, err)
            return out.decode()

        run_id = (await osctl("apply", str(spec_path))).splitlines()[0]
        await osctl("advance", run_id, "expand", "--wait", "--timeout", "120")
        await osctl("approve-deploy", run_id)
        await osctl("advance", run_id, "backfill", "--wait", "--timeout", "120")
        await osctl("advance", run_id, "contract", "--wait", "--timeout", "120")
        await osctl("status", run_id, "--format", "json")
        await osctl("events", run_id, "--format", "json")
        for replica in group.replicas:
            async with replica.client() as api:
                for path in (
                    "/v1/migrations",
                    f"/v1/migrations/{run_id}",
                    f"/v1/migrations/{run_id}/events",
                    "/v1/leadership",
                    "/metrics",
                    "/openapi.json",
                    "/readyz",
                ):
                    response = await api.get(path)
                    assert response.status_code == 200, (path, response.text)
                    seen.append(response.text)
                # A refused request's answer, too (a wrong scope never echoes anything secret).
                seen.append((await api.get("/v1/migrations", headers={"Authorization": "Bearer nope"})).text)
        async with connect(state) as conn:
            stored = await conn.fetch(
                "SELECT m::text FROM migrations m UNION ALL SELECT e::text FROM events e"
            )
        seen.extend(row[0] for row in stored)
        logs = [replica.log_text() for replica in group.replicas]
    slack = [request.raw for request in slack_recorder.requests]

    assert slack and all(logs) and len(stored) > 5  # the scan looked at something
    assert any("osctl serve" in snapshot for snapshot in seen)
    assert await wrong_rows(target.primary) == 0
    for where, texts in (("log", logs), ("argv/cli/api/store", seen), ("slack", slack)):
        for text in texts:
            assert password not in text, f"password leaked to {where}"
            assert token not in text, f"API token leaked to {where}"
    for text in logs + seen:
        assert "xoxb-secret-bot-token" not in text
