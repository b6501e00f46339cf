"""On-call's side of runbooks over HTTP and from the terminal: the dry run, a rollback refused until it
is confirmed (with the plan and its token in the 409), the emergency stop of a whole target with its
audit trail, and the osctl verbs against a real `osctl serve`."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from adapters.postgres.workload import BAND_EXPRESSION, create_accounts
from orchestrator.access import TokenBook, hash_token, new_token, parse_tokens
from orchestrator.engine.clock import SystemClock
from orchestrator.engine.throttler import Throttler
from orchestrator.runbooks.loader import load_directory, shipped_directory
from tests.api.conftest import running_api
from tests.support.pg import PgPair, build_service, connect, eventually, fresh_database
from tests.support.service import free_port, run_key, service_process

pytestmark = pytest.mark.integration

SCOPES = {"release": ["pipeline"], "pager": ["oncall"], "viewer": ["read"]}


def migration(name: str, table: str, *, slow: bool = False) -> dict[str, Any]:
    backfill: dict[str, Any] = {"table": table, "column": "band", "expression": BAND_EXPRESSION}
    if slow:  # a backfill that is still running when the emergency stop comes
        backfill |= {"batch_size": 5, "pause_ms": 100}
    return {
        "name": name,
        "target": "app",
        "operations": [
            {"add_column": {"table": table, "column": {"name": "band", "type": "text"}}},
            {"backfill": backfill},
        ],
    }


class Api:
    def __init__(self, client: httpx.AsyncClient, tokens: dict[str, str]) -> None:
        self.client = client
        self.tokens = tokens

    async def call(self, who: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.tokens[who]}"}
        return await self.client.request(method, path, headers=headers, **kwargs)

    async def status(self, run_id: str) -> dict[str, Any]:
        response = await self.call("viewer", "GET", f"/v1/migrations/{run_id}")
        body: dict[str, Any] = response.json()
        return body

    async def settle(self, run_id: str, status: str) -> None:
        waited = await self.call("viewer", "GET", f"/v1/migrations/{run_id}/wait", params={"until": status})
        assert waited.json()["reached"], waited.text

    async def to_gate(self, spec: dict[str, Any]) -> str:
        created = await self.call("release", "POST", "/v1/migrations", json=spec)
        assert created.status_code == 201, created.text
        run_id: str = created.json()["migration"]["id"]
        await self.call("release", "POST", f"/v1/migrations/{run_id}/stages/expand")
        await self.settle(run_id, "awaiting_deploy")
        await self.call("release", "POST", f"/v1/migrations/{run_id}/deploy-gate")
        return run_id


async def seeded(pair: PgPair) -> None:
    async with connect(pair.primary) as conn:
        await create_accounts(conn, rows=400)
        await create_accounts(conn, table="ledger", rows=50)


async def test_a_rollback_past_the_gate_is_refused_with_its_plan_until_confirmed_and_then_audited(
    tmp_path: Path,
) -> None:
    tokens = {name: new_token() for name in SCOPES}
    book = TokenBook(
        parse_tokens({n: {"hash": hash_token(t), "scopes": SCOPES[n]} for n, t in tokens.items()})
    )
    async with fresh_database() as pair:
        await seeded(pair)
        catalogue = load_directory(shipped_directory())
        factory = lambda: build_service(pair, tmp_path, runbooks=catalogue)  # noqa: E731
        async with running_api(factory, tokens=book) as client:
            api = Api(client, tokens)
            listed = (await api.call("viewer", "GET", "/v1/runbooks")).json()
            assert listed["configured"] and {r["id"] for r in listed["runbooks"]} >= {"postgres-after-gate"}
            shown = await api.call("viewer", "GET", "/v1/runbooks/postgres-after-gate")
            assert shown.json()["confirmation"].startswith("The deploy gate is passed")
            run_id = await api.to_gate(migration("acct-band", "accounts"))
            dry = (await api.call("viewer", "GET", f"/v1/migrations/{run_id}/runbook")).json()
            assert dry["runbook"] == "postgres-after-gate" and dry["confirmation_required"]
            assert "steps" not in dry["actions"][0], "the API shows statements, not the engine's steps"
            reverse = next(action for action in dry["actions"] if action["kind"] == "reverse_ddl")
            assert reverse["statements"] == ['ALTER TABLE "accounts" DROP COLUMN IF EXISTS "band"']

            assert (await api.call("release", "POST", f"/v1/migrations/{run_id}/rollback")).status_code == 403
            refused = await api.call("pager", "POST", f"/v1/migrations/{run_id}/rollback")
            assert refused.status_code == 409, refused.text
            problem = refused.json()
            assert problem["title"] == "The rollback runbook asks for a confirmation"
            assert problem["token"] == dry["token"] and problem["runbook"]["runbook"] == "postgres-after-gate"
            assert (
                problem["current_state"] == "awaiting_backfill" and "rollback" in problem["allowed_actions"]
            )
            stale = await api.call(
                "pager", "POST", f"/v1/migrations/{run_id}/rollback", json={"token": "0123456789abcdef"}
            )
            assert stale.status_code == 409 and "the plan changed since the dry run" in stale.json()["detail"]
            assert (await api.status(run_id))["status"] == "awaiting_backfill", "nothing ran"

            done = await api.call(
                "pager", "POST", f"/v1/migrations/{run_id}/rollback", json={"token": dry["token"]}
            )
            assert done.status_code == 202, done.text
            await api.settle(run_id, "rolled_back")
            events = (await api.call("viewer", "GET", f"/v1/migrations/{run_id}/events")).json()["events"]
        started = next(e for e in events if e["type"] == "runbook" and e["data"]["phase"] == "started")
        assert started["data"] | {"facts": ""} == {
            "phase": "started",
            "runbook": "postgres-after-gate",
            "digest": dry["digest"],
            "token": dry["token"],
            "facts": "",
            "actor": "pager",
            "confirmed": "token",
        }
        confirmation = next(
            e
            for e in events
            if e["type"] == "runbook"
            and e["data"].get("kind") == "require_confirmation"
            and e["data"]["phase"] == "step_finished"
        )
        assert confirmation["data"]["outcome"] == "confirmed (token by pager)"
        async with connect(pair.primary) as conn:
            assert (
                await conn.fetchval(
                    "SELECT count(*) FROM information_schema.columns WHERE column_name = 'band'"
                )
                == 0
            )


async def test_an_emergency_stop_pauses_the_target_holds_it_and_drops_its_held_starts(tmp_path: Path) -> None:
    tokens = {name: new_token() for name in SCOPES}
    book = TokenBook(
        parse_tokens({n: {"hash": hash_token(t), "scopes": SCOPES[n]} for n, t in tokens.items()})
    )
    async with fresh_database() as pair:
        await seeded(pair)
        throttler = Throttler(SystemClock())
        factory = lambda: build_service(pair, tmp_path, throttle=throttler)  # noqa: E731
        async with running_api(factory, tokens=book) as client:
            api = Api(client, tokens)
            held = await api.to_gate(migration("ledger-band", "ledger"))
            await api.call("release", "POST", f"/v1/migrations/{held}/stages/backfill")
            await api.settle(held, "awaiting_contract")
            later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
            await api.call("release", "POST", f"/v1/migrations/{held}/stages/contract", json={"at": later})
            assert (await api.status(held))["waiting"]["kind"] == "schedule"
            running = await api.to_gate(migration("acct-band", "accounts", slow=True))
            await api.call("release", "POST", f"/v1/migrations/{running}/stages/backfill")

            async def backfilling() -> bool:
                backfill = (await api.status(running))["progress"].get("backfill") or {}
                return int(backfill.get("rows_done", 0)) > 0

            await eventually(backfilling, what="the backfill to be under way")
            body = {"reason": "incident 42: replica lag", "hold_seconds": 600}
            assert (
                await api.call("viewer", "POST", "/v1/targets/app/emergency-stop", json=body)
            ).status_code == 403
            assert (
                await api.call("pager", "POST", "/v1/targets/nowhere/emergency-stop", json=body)
            ).status_code == 404
            stopped = await api.call("pager", "POST", "/v1/targets/app/emergency-stop", json=body)
            assert stopped.status_code == 200, stopped.text
            report = stopped.json()
            assert report["paused"] == [running] and report["held_starts_dropped"] == [held]
            assert report["throttle_hold"] == "emergency stop by pager: incident 42: replica lag"
            assert (await api.status(running))["status"] == "paused"
            assert (await api.status(held))["waiting"] is None
            signals = (await api.call("viewer", "GET", "/v1/targets/app/signals")).json()
            assert signals["reason"] == "manual: emergency stop by pager: incident 42: replica lag"
            assert 0 < signals["manual"]["until_in_s"] <= 600
            for run_id in (running, held):
                events = (await api.call("viewer", "GET", f"/v1/migrations/{run_id}/events")).json()["events"]
                audit = [e for e in events if e["type"] == "emergency_stop"]
                assert len(audit) == 1 and audit[0]["data"]["actor"] == "pager"
                assert audit[0]["data"]["reason"] == "incident 42: replica lag"
            # Resumed, the backfill stays held by the emergency hold until it is lifted.
            assert (await api.call("pager", "POST", f"/v1/migrations/{running}/resume")).status_code == 202

            async def held_by_the_stop() -> bool:
                events = (await api.call("viewer", "GET", f"/v1/migrations/{running}/events")).json()[
                    "events"
                ]
                return any(
                    e["type"] == "throttled" and "emergency stop by pager" in e["message"] for e in events
                )

            await eventually(held_by_the_stop, what="the resumed backfill to hold")
            assert (await api.call("pager", "DELETE", "/v1/targets/app/throttle")).status_code == 204
            await api.settle(running, "awaiting_contract")


def osctl(*args: str, api: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    command = [str(Path(sys.executable).parent / "osctl"), *args]
    env = {**os.environ, "OSCTL_API_URL": api}
    return subprocess.run(command, env=env, capture_output=True, text=True, input=stdin, timeout=120)


async def test_the_osctl_verbs_show_the_plan_refuse_without_a_confirmation_and_roll_back_with_it(
    tmp_path: Path,
) -> None:
    async with fresh_database() as pair:
        await seeded(pair)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        async with service_process(pair.primary, tmp_path, port), httpx.AsyncClient(base_url=base) as client:
            created = await client.post(
                "/v1/migrations",
                json=migration("acct-band", "accounts"),
                headers={"Idempotency-Key": run_key()},
            )
            run_id = created.json()["migration"]["id"]
            await client.post(f"/v1/migrations/{run_id}/stages/expand")
            assert (
                await client.get(f"/v1/migrations/{run_id}/wait", params={"until": "awaiting_deploy"})
            ).json()["reached"]
            await client.post(f"/v1/migrations/{run_id}/deploy-gate")

            listed = osctl("runbook", "list", api=base)
            assert (
                listed.returncode == 0
                and "postgres-after-gate  postgres  deploy_gate,backfill" in listed.stdout
            )
            plan = osctl("runbook", "plan", run_id, api=base)
            assert plan.returncode == 0, plan.stderr
            assert "runbook postgres-after-gate" in plan.stdout
            assert 'ALTER TABLE "accounts" DROP COLUMN IF EXISTS "band"' in plan.stdout
            token = next(
                line.split()[-1] for line in plan.stdout.splitlines() if line.strip().startswith("token:")
            )

            refused = osctl("rollback", run_id, api=base)  # no terminal: no prompt, nothing runs
            assert refused.returncode == 1
            assert "asks for confirmation" in refused.stderr and f"--token {token}" in refused.stderr
            assert (await client.get(f"/v1/migrations/{run_id}")).json()["status"] == "awaiting_backfill"

            rolled = osctl("rollback", run_id, "--token", token, "--wait", "--timeout", "60", api=base)
            assert rolled.returncode == 0, rolled.stderr
            assert f"{run_id}  rolled_back" in rolled.stdout

            stop = osctl("emergency-stop", "app", "--reason", "drill", api=base)
            assert stop.returncode == 0, stop.stderr
            assert "emergency stop of app: drill" in stop.stdout
            assert "no throttler is configured" in stop.stdout
