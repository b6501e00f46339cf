"""The contract safety proof on the real MariaDB primary, from performance_schema: contract is refused
after a query used the dropped column since the deploy gate, allowed otherwise, and allowed with an
audited override. The backfill reads the dropped column after the gate and must not count as use.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from adapters.mysql.target import MysqlTarget
from adapters.mysql.usage import MysqlUsageReader
from adapters.mysql.workload import create_accounts
from adapters.slack import NullNotifier
from adapters.statestore.store import SqlStateStore
from orchestrator.domain.plan import Stage
from orchestrator.domain.run import EventType
from orchestrator.domain.states import RunStatus
from orchestrator.domain.usage import ContractBlockedError, DropKind, DropTarget, Verdict
from orchestrator.engine.contract_proof import judge
from orchestrator.service import MigrationService, TargetRegistry
from tests.support.mysql import MysqlPair, eventually, fresh_database, query, scalar, settle

pytestmark = pytest.mark.integration

SPEC = {
    "name": "drop-legacy-status",
    "target": "app",
    "operations": [
        {"add_column": {"table": "accounts", "column": {"name": "code", "type": "varchar(32)"}}},
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
APP_QUERY = "SELECT legacy_status FROM accounts WHERE id = %s"


@dataclass
class Ready:
    service: MigrationService
    pair: MysqlPair
    run_id: str


async def room_for_digests(dsn: str) -> None:
    """Every test database's statements fill the shared server's digest table (5,000 rows), and a
    statement first run once it is full is not counted: the proof says so, but these tests need the
    counts. Emptied only when nearly full, as an operator would before a gate."""
    held = await scalar(dsn, "SELECT COUNT(*) FROM performance_schema.events_statements_summary_by_digest")
    size = await scalar(dsn, "SELECT @@performance_schema_digests_size")
    if int(held) >= int(size) - 1500:
        await query(dsn, "TRUNCATE TABLE performance_schema.events_statements_summary_by_digest")


@asynccontextmanager
async def awaiting_contract(tmp_path: Path) -> AsyncIterator[Ready]:
    async with fresh_database() as pair:
        await create_accounts(pair.primary, rows=2_000)
        await room_for_digests(pair.primary)
        service = MigrationService(
            SqlStateStore(f"sqlite+aiosqlite:///{tmp_path / 'state.db'}"),
            TargetRegistry({"app": ("mysql", lambda: MysqlTarget(pair.primary))}),
            NullNotifier(),
            usage_readers=lambda _target: MysqlUsageReader(pair.primary),
        )
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


async def has_column(pair: MysqlPair) -> bool:
    found = await scalar(
        pair.primary,
        "SELECT COUNT(*) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() "
        "AND TABLE_NAME = 'accounts' AND COLUMN_NAME = 'legacy_status'",
    )
    return bool(found)


async def test_contract_is_refused_with_evidence_after_the_column_was_used(tmp_path: Path) -> None:
    async with awaiting_contract(tmp_path) as ready:
        service, run_id = ready.service, ready.run_id
        for key in (1, 2, 3):
            await query(ready.pair.primary, APP_QUERY, (key,))

        with pytest.raises(ContractBlockedError) as refused:
            await service.start_stage(run_id, Stage.CONTRACT, actor="pipeline")

        proof = refused.value.proof
        assert proof.verdict is Verdict.USAGE_SEEN
        (use,) = [finding for finding in proof.findings if finding.blocking]
        assert use.target == "column accounts.legacy_status" and use.calls == 3
        assert use.statement is not None and "`legacy_status`" in use.statement
        assert use.last_seen is not None, "performance_schema keeps when a digest last ran"
        assert proof.excluded_own_statements >= 1, "the backfill read legacy_status after the gate"
        run = await service.get(run_id)
        assert run.status is RunStatus.AWAITING_CONTRACT
        assert await has_column(ready.pair)


async def test_contract_runs_when_nothing_used_the_column_since_the_gate(tmp_path: Path) -> None:
    async with awaiting_contract(tmp_path) as ready:
        await ready.service.start_stage(ready.run_id, Stage.CONTRACT)
        run = await settle(ready.service, ready.run_id, RunStatus.COMPLETED)

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
        await query(ready.pair.primary, APP_QUERY, (1,))
        reason = "a read replica report reads it; it is being retired today"

        await service.start_stage(run_id, Stage.CONTRACT, actor="bob", override_usage=reason)
        run = await settle(service, run_id, RunStatus.COMPLETED)

        assert not await has_column(ready.pair)
        assert run.contract_proof is not None and run.contract_proof.last is not None
        assert run.contract_proof.last.verdict is Verdict.OVERRIDDEN
        (audit,) = [
            event for event in await service.list_events(run_id) if event.type is EventType.USAGE_OVERRIDE
        ]
        assert audit.data == {"actor": "bob", "reason": reason, "needed": True, "verdict": "overridden"}


async def test_index_reads_and_table_access_since_the_gate_are_seen() -> None:
    async with fresh_database() as pair:
        await create_accounts(pair.primary, rows=500)
        await query(pair.primary, "CREATE INDEX accounts_email_idx ON accounts (email)")
        await query(pair.primary, "CREATE TABLE audit_log (id BIGINT PRIMARY KEY, note TEXT)")
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
        await room_for_digests(pair.primary)
        reader = MysqlUsageReader(pair.primary)
        gate = await reader.snapshot(targets)
        assert judge(targets, gate, await reader.snapshot(targets)).verdict is Verdict.CLEAR

        await query(
            pair.primary,
            "SELECT id FROM accounts FORCE INDEX (accounts_email_idx) WHERE email = 'user7@example.com'",
        )
        await query(pair.primary, "INSERT INTO audit_log VALUES (1, 'still written')")

        async def counted() -> bool:
            now = await reader.snapshot(targets)
            return {f.source for f in judge(targets, gate, now).findings if f.blocking} == {
                "performance_schema table and index I/O",
                "performance_schema statement digests",
            }

        await eventually(counted, timeout=15, what="performance_schema to count the reads")
        proof = judge(targets, gate, await reader.snapshot(targets))
        io = sorted(finding.detail for finding in proof.findings if finding.source.endswith("I/O"))
        assert io[0].startswith("index accounts_email_idx on accounts: rows_read_through_index +1")
        assert io[1].startswith("table audit_log:") and "rows_written +1" in io[1]


def churned(note: str) -> bool:
    return "changed since the gate" in note or "digest table is full" in note
