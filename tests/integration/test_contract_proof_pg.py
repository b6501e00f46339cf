"""The contract safety proof on the real PostgreSQL primary: a migration whose contract drops a column
is refused after a query used the column since the deploy gate, allowed otherwise, and allowed with
an audited override.

The backfill reads the very column contract drops (`code = upper(legacy_status)`) and runs after the
gate: those are osctl's own statements, which must not count as use.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from adapters.postgres.usage import PgUsageReader
from adapters.postgres.workload import create_accounts
from orchestrator.domain.plan import Stage
from orchestrator.domain.run import EventType
from orchestrator.domain.states import RunStatus
from orchestrator.domain.usage import ContractBlockedError, DropKind, DropTarget, Verdict
from orchestrator.engine.contract_proof import judge
from orchestrator.service import MigrationService
from tests.support.pg import PgPair, build_service, connect, eventually, fresh_database, settle

pytestmark = pytest.mark.integration

SPEC = {
    "name": "drop-legacy-status",
    "target": "app",
    "operations": [
        {"add_column": {"table": "accounts", "column": {"name": "code", "type": "text"}}},
        {
            "backfill": {
                "table": "accounts",
                "column": "code",
                "expression": "upper(legacy_status)",
                "batch_size": 500,
            }
        },
        {"drop_column": {"table": "accounts", "column": "legacy_status"}},
    ],
}
APP_QUERY = "SELECT legacy_status FROM accounts WHERE id = $1"


@dataclass
class Ready:
    service: MigrationService
    pair: PgPair
    run_id: str


@asynccontextmanager
async def awaiting_contract(tmp_path: Path, *, statements: bool = True) -> AsyncIterator[Ready]:
    """A fresh database, the migration expanded, gated and backfilled: contract is next."""
    async with fresh_database() as pair:
        async with connect(pair.primary) as conn:
            if statements:
                await conn.execute("CREATE EXTENSION pg_stat_statements")
            await create_accounts(conn, rows=2_000)
        service = build_service(pair, tmp_path, usage_readers=lambda _target: PgUsageReader(pair.primary))
        await service.start()
        try:
            run = await service.create(SPEC)
            await service.start_stage(run.id, Stage.EXPAND)
            await settle(service, run.id, RunStatus.AWAITING_DEPLOY)
            await service.approve_deploy(run.id, actor="pipeline")
            await service.start_stage(run.id, Stage.BACKFILL)
            await settle(service, run.id, RunStatus.AWAITING_CONTRACT)
            yield Ready(service, pair, run.id)
        finally:
            await service.stop()


async def the_application_reads_the_column(pair: PgPair, times: int = 3) -> None:
    async with connect(pair.primary) as conn:
        for key in range(1, times + 1):
            await conn.fetchval(APP_QUERY, key)


async def has_column(pair: PgPair) -> bool:
    async with connect(pair.primary) as conn:
        return bool(
            await conn.fetchval(
                "SELECT EXISTS (SELECT 1 FROM information_schema.columns "
                "WHERE table_name = 'accounts' AND column_name = 'legacy_status')"
            )
        )


async def test_contract_is_refused_with_evidence_after_the_column_was_used(tmp_path: Path) -> None:
    async with awaiting_contract(tmp_path) as ready:
        service, run_id = ready.service, ready.run_id
        await the_application_reads_the_column(ready.pair, times=3)

        with pytest.raises(ContractBlockedError) as refused:
            await service.start_stage(run_id, Stage.CONTRACT, actor="pipeline")

        proof = refused.value.proof
        assert proof.verdict is Verdict.USAGE_SEEN
        (use,) = [finding for finding in proof.findings if finding.blocking]
        assert use.target == "column accounts.legacy_status" and use.statement == APP_QUERY and use.calls == 3
        assert proof.excluded_own_statements >= 1, "the backfill read legacy_status after the gate"
        run = await service.get(run_id)
        assert run.status is RunStatus.AWAITING_CONTRACT
        assert run.contract_proof is not None and run.contract_proof.last == proof
        events = [
            event for event in await service.list_events(run_id) if event.type is EventType.CONTRACT_PROOF
        ]
        assert events[-1].data["verdict"] == "usage_seen" and events[-1].data["actor"] == "pipeline"
        assert await has_column(ready.pair)


async def test_contract_runs_when_nothing_used_the_column_since_the_gate(tmp_path: Path) -> None:
    async with awaiting_contract(tmp_path) as ready:
        service, run_id = ready.service, ready.run_id
        await service.start_stage(run_id, Stage.CONTRACT)
        run = await settle(service, run_id, RunStatus.COMPLETED)

        assert run.contract_proof is not None and run.contract_proof.last is not None
        proof = run.contract_proof.last
        assert proof.verdict is Verdict.CLEAR
        # Whole, unless the shared test server's statistics churned meanwhile (other tests' statements
        # evicting entries or filling the digest table), which the proof must then say.
        assert proof.complete or all(churned(note) for note in proof.notes), proof.notes
        assert proof.excluded_own_statements >= 1
        assert not await has_column(ready.pair)


async def test_an_override_with_a_reason_lets_contract_run_and_is_audited(tmp_path: Path) -> None:
    async with awaiting_contract(tmp_path) as ready:
        service, run_id = ready.service, ready.run_id
        await the_application_reads_the_column(ready.pair, times=1)
        reason = "the nightly export still selects it; it tolerates the column going"

        await service.start_stage(run_id, Stage.CONTRACT, actor="alice", override_usage=reason)
        run = await settle(service, run_id, RunStatus.COMPLETED)

        assert not await has_column(ready.pair)
        assert run.contract_proof is not None and run.contract_proof.last is not None
        assert run.contract_proof.last.verdict is Verdict.OVERRIDDEN
        assert run.contract_proof.override is not None and run.contract_proof.override.actor == "alice"
        (audit,) = [
            event for event in await service.list_events(run_id) if event.type is EventType.USAGE_OVERRIDE
        ]
        assert audit.data == {"actor": "alice", "reason": reason, "needed": True, "verdict": "overridden"}


async def test_without_pg_stat_statements_the_proof_says_it_is_weaker(tmp_path: Path) -> None:
    async with awaiting_contract(tmp_path, statements=False) as ready:
        service, run_id = ready.service, ready.run_id
        await the_application_reads_the_column(ready.pair, times=2)  # unseen: nothing counts columns
        await service.start_stage(run_id, Stage.CONTRACT)
        run = await settle(service, run_id, RunStatus.COMPLETED)

        assert run.contract_proof is not None and run.contract_proof.last is not None
        proof = run.contract_proof.last
        assert not proof.complete
        assert any("pg_stat_statements is not installed" in note for note in proof.notes), proof.notes
        baseline = [
            event for event in await service.list_events(run_id) if event.type is EventType.USAGE_BASELINE
        ]
        assert "pg_stat_statements unavailable" in baseline[0].message


async def test_index_scans_and_table_access_since_the_gate_are_seen() -> None:
    async with fresh_database() as pair:
        async with connect(pair.primary) as conn:
            await create_accounts(conn, rows=500)
            await conn.execute("CREATE INDEX accounts_email_idx ON accounts (email)")
            await conn.execute("CREATE TABLE audit_log (id bigint PRIMARY KEY, note text)")
        targets = [
            DropTarget(
                kind=DropKind.INDEX,
                table="accounts",
                index="accounts_email_idx",
                operation_index=0,
                operation="drop_index",
            ),
            DropTarget(kind=DropKind.TABLE, table="audit_log", operation_index=1, operation="drop_table"),
        ]
        reader = PgUsageReader(pair.primary)
        gate = await reader.snapshot(targets)
        assert judge(targets, gate, await reader.snapshot(targets)).verdict is Verdict.CLEAR

        async with connect(pair.primary) as conn:
            await conn.execute("SET enable_seqscan = off")
            await conn.fetchval("SELECT id FROM accounts WHERE email = $1", "user7@example.com")
            await conn.execute("INSERT INTO audit_log VALUES (1, 'still written')")

        async def counted() -> bool:
            # Backends hand their counters over when a transaction ends (at most once a second).
            now = await reader.snapshot(targets)
            return len([f for f in judge(targets, gate, now).findings if f.blocking]) == 2

        await eventually(counted, timeout=15, what="index and table counters to move")
        proof = judge(targets, gate, await reader.snapshot(targets))
        details = sorted(
            finding.detail for finding in proof.findings if finding.source.startswith("pg_stat_user")
        )
        assert details[0].startswith("index accounts_email_idx on accounts: idx_scan +1")
        assert details[1].startswith("table audit_log:") and "n_tup_ins +1" in details[1]


async def test_a_held_contract_is_proved_again_when_its_time_comes(tmp_path: Path) -> None:
    async with awaiting_contract(tmp_path) as ready:
        service, run_id = ready.service, ready.run_id
        at = datetime.now(UTC) + timedelta(seconds=1)
        held = await service.start_stage(run_id, Stage.CONTRACT, at=at)  # nothing used it yet: accepted
        assert held.waiting is not None and held.contract_proof is not None
        assert held.contract_proof.last is not None and held.contract_proof.last.verdict is Verdict.CLEAR
        await the_application_reads_the_column(ready.pair, times=2)  # ... but then the code uses it

        async def dropped() -> bool:
            run = await service.get(run_id)
            return run.waiting is None

        await eventually(dropped, timeout=30, what="the held contract to be refused at its start")
        run = await service.get(run_id)
        assert run.status is RunStatus.AWAITING_CONTRACT and await has_column(ready.pair)
        assert run.contract_proof is not None and run.contract_proof.last is not None
        assert run.contract_proof.last.verdict is Verdict.USAGE_SEEN


def churned(note: str) -> bool:
    return "changed since the gate" in note or "digest table is full" in note
