"""The contract safety proof's pure parts: what contract drops, and the judgement over two readings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from orchestrator.domain.plan import Plan, Stage, StagePlan, Step, StepAction
from orchestrator.domain.spec import parse_spec
from orchestrator.domain.usage import (
    DropKind,
    DropTarget,
    ObjectStat,
    SourceState,
    StatementStat,
    UsageOverride,
    UsageSnapshot,
    Verdict,
)
from orchestrator.engine.contract_proof import OwnStatement, contract_drops, judge, relevant

GATE = datetime(2026, 1, 1, tzinfo=UTC)
COLUMN = DropTarget(
    kind=DropKind.COLUMN, table="accounts", column="legacy_status", operation_index=0, operation="drop_column"
)
INDEX = DropTarget(
    kind=DropKind.INDEX,
    table="accounts",
    index="accounts_email_idx",
    operation_index=1,
    operation="drop_index",
)
TABLE = DropTarget(kind=DropKind.TABLE, table="audit_log", operation_index=2, operation="drop_table")


def step(stage: Stage, index: int, name: str) -> Step:
    return Step(
        id=f"{stage.value}.{index}.{name}",
        stage=stage,
        operation_index=index,
        action=StepAction.DDL,
        description=name,
        sql="SELECT 1",
        table="t",
    )


def plan_with(contract: list[Step], expand: list[Step] | None = None) -> Plan:
    stages = {Stage.EXPAND: expand or [], Stage.CONTRACT: contract}
    return Plan(
        migration="m",
        engine="postgres",
        lock_timeout_ms=1000,
        ddl_attempts=3,
        stages=[
            StagePlan(stage=stage, purpose="", steps=stages.get(stage, []))
            for stage in Stage
            if stage is not Stage.ROLLBACK
        ],
    )


SPEC: dict[str, Any] = {
    "name": "m",
    "operations": [
        {"add_column": {"table": "accounts", "column": {"name": "band", "type": "text"}}},
        {"drop_column": {"table": "accounts", "column": "legacy_status"}},
        {"drop_index": {"table": "accounts", "name": "accounts_email_idx", "columns": ["email"]}},
        {"drop_table": {"table": "audit_log"}},
        {"alter_column": {"table": "accounts", "column": "score", "type": "bigint"}},
        {"rename_column": {"table": "accounts", "column": "nick", "new_name": "nickname"}},
        {"create_index": {"table": "accounts", "name": "accounts_band_idx", "columns": ["band"]}},
    ],
}


def test_contract_drops_follow_the_contract_steps_whatever_their_ids() -> None:
    spec = parse_spec(SPEC)
    contract = [step(Stage.CONTRACT, index, f"whatever-{index}") for index in (5, 1, 2, 3, 4, 4)]
    drops = contract_drops(
        spec, plan_with(contract, [step(Stage.EXPAND, 0, "add"), step(Stage.EXPAND, 6, "ix")])
    )
    assert [(d.kind, d.label, d.operation) for d in drops] == [
        (DropKind.COLUMN, "column accounts.legacy_status", "drop_column"),
        (DropKind.INDEX, "index accounts_email_idx on accounts", "drop_index"),
        (DropKind.TABLE, "table audit_log", "drop_table"),
        (DropKind.COLUMN, "column accounts.score", "alter_column"),
        (DropKind.COLUMN, "column accounts.nick", "rename_column"),
    ]


def test_an_operation_without_a_contract_step_drops_nothing() -> None:
    spec = parse_spec(SPEC)
    assert contract_drops(spec, plan_with([])) == []
    # A step pointing past the spec (a planner bug) is not guessed at.
    assert contract_drops(spec, plan_with([step(Stage.CONTRACT, 99, "x")])) == []


def reading(
    at: datetime,
    statements: list[tuple[str, str, int]] = (),  # type: ignore[assignment]
    *,
    engine: str = "postgres",
    tables: dict[str, dict[str, int]] | None = None,
    indexes: dict[str, dict[str, int]] | None = None,
    statements_available: bool = True,
    missing: list[str] | None = None,
    marks: dict[str, str] | None = None,
) -> UsageSnapshot:
    return UsageSnapshot(
        engine=engine,
        taken_at=at,
        statements_source=SourceState(
            name="statements",
            available=statements_available,
            note="" if statements_available else "not installed",
            marks=marks or {},
        ),
        counters_source=SourceState(name="counters", available=True),
        statements=[StatementStat(key=key, text=text, calls=calls) for key, text, calls in statements],
        tables={name: ObjectStat(counters=c) for name, c in (tables or {}).items()},
        indexes={name: ObjectStat(counters=c) for name, c in (indexes or {}).items()},
        missing=missing or [],
    )


LATER = GATE + timedelta(hours=1)
READ = "SELECT legacy_status FROM accounts WHERE id = $1"


def test_a_statement_naming_the_column_that_ran_since_the_gate_blocks() -> None:
    gate = reading(GATE, [("q1", READ, 10)])
    proof = judge([COLUMN], gate, reading(LATER, [("q1", READ, 13)]))
    assert proof.verdict is Verdict.USAGE_SEEN and proof.blocked and proof.complete
    (finding,) = proof.findings
    assert finding.blocking and finding.calls == 3 and finding.statement == READ
    assert "3 time(s) since the gate" in finding.detail


def test_calls_before_the_gate_and_other_tables_do_not_count() -> None:
    other = "SELECT legacy_status FROM archived_accounts"
    gate = reading(GATE, [("q1", READ, 10), ("q2", other, 1)])
    proof = judge([COLUMN], gate, reading(LATER, [("q1", READ, 10), ("q2", other, 50)]))
    assert proof.verdict is Verdict.CLEAR and proof.findings == []


def test_a_statement_new_since_the_gate_counts_all_its_calls_and_a_reset_counts_from_zero() -> None:
    gate = reading(GATE, [("q1", READ, 10)])
    proof = judge(
        [COLUMN], gate, reading(LATER, [("q1", READ, 4), ("q9", "UPDATE accounts SET legacy_status = $1", 2)])
    )
    assert sorted(finding.calls for finding in proof.findings) == [2, 4]


def test_select_star_is_reported_but_does_not_block() -> None:
    star = "SELECT * FROM accounts WHERE id = $1"
    proof = judge([COLUMN], reading(GATE), reading(LATER, [("q3", star, 7)]))
    assert proof.verdict is Verdict.CLEAR
    (finding,) = proof.findings
    assert not finding.blocking and "every column" in finding.detail


def test_osctl_own_backfill_statements_are_recognised_by_the_plans_expression() -> None:
    backfill = "WITH u AS (UPDATE accounts SET code = (upper(legacy_status)) WHERE id > $1 RETURNING 1) SELECT count(*)::int FROM u"
    verify = "SELECT (code IS DISTINCT FROM (upper(legacy_status))) AS bad FROM accounts WHERE id > $1"
    own = [OwnStatement("accounts", "upper(legacy_status)")]
    now = reading(LATER, [("b", backfill, 40), ("v", verify, 40)])
    proof = judge([COLUMN], reading(GATE), now, own=own)
    assert proof.verdict is Verdict.CLEAR and proof.excluded_own_statements == 2
    # The same statements without the plan's knowledge would block: the exclusion is what lets it pass.
    assert judge([COLUMN], reading(GATE), now).verdict is Verdict.USAGE_SEEN


def test_index_and_table_counters_that_moved_block() -> None:
    gate = reading(
        GATE,
        tables={"audit_log": {"seq_scan": 1, "n_tup_ins": 5}},
        indexes={"accounts_email_idx": {"idx_scan": 4}},
    )
    quiet = reading(
        LATER,
        tables={"audit_log": {"seq_scan": 1, "n_tup_ins": 5}},
        indexes={"accounts_email_idx": {"idx_scan": 4}},
    )
    assert judge([INDEX, TABLE], gate, quiet).verdict is Verdict.CLEAR
    busy = reading(
        LATER,
        tables={"audit_log": {"seq_scan": 1, "n_tup_ins": 8}},
        indexes={"accounts_email_idx": {"idx_scan": 6}},
    )
    proof = judge([INDEX, TABLE], gate, busy)
    assert proof.verdict is Verdict.USAGE_SEEN
    assert sorted(finding.detail for finding in proof.findings) == [
        "index accounts_email_idx on accounts: idx_scan +2 since the gate",
        "table audit_log: n_tup_ins +3 since the gate",
    ]


def test_an_override_lets_usage_through_and_is_kept_on_the_proof() -> None:
    override = UsageOverride(reason="reporting job reads it once a day; accepted", actor="alice", at=LATER)
    proof = judge([COLUMN], reading(GATE), reading(LATER, [("q1", READ, 1)]), override=override)
    assert proof.verdict is Verdict.OVERRIDDEN and not proof.blocked and proof.override == override
    assert judge([COLUMN], reading(GATE), reading(LATER), override=override).override is None


@pytest.mark.parametrize(
    ("gate", "now", "expected"),
    [
        (
            None,
            reading(LATER, [("q1", READ, 1)]),
            "no usage counters were recorded at the deploy gate (boom)",
        ),
        (
            reading(GATE),
            reading(LATER, statements_available=False),
            "statements unavailable, weaker proof: not installed",
        ),
        (
            reading(GATE, marks={"evicted": "0"}),
            reading(LATER, marks={"evicted": "4"}),
            "statements: evicted changed since the gate (0 -> 4)",
        ),
    ],
)
def test_a_weaker_proof_says_why_instead_of_pretending(
    gate: UsageSnapshot | None, now: UsageSnapshot, expected: str
) -> None:
    proof = judge([COLUMN], gate, now, gate_error="boom")
    assert not proof.complete
    assert any(note.startswith(expected) for note in proof.notes), proof.notes
    assert proof.verdict is Verdict.CLEAR  # nothing seen: said to be unproven, not claimed to be in use


def test_targets_already_gone_are_noted_and_nothing_to_drop_is_its_own_verdict() -> None:
    proof = judge([COLUMN], reading(GATE), reading(LATER, [("q1", READ, 3)], missing=[COLUMN.label]))
    assert proof.verdict is Verdict.CLEAR
    assert f"{COLUMN.label} no longer exists" in proof.notes[0]
    assert judge([], None, reading(LATER)).verdict is Verdict.NOTHING_TO_DROP


def test_only_data_statements_on_the_target_tables_are_kept_with_the_run() -> None:
    snapshot = reading(
        GATE,
        [
            ("a", READ, 1),
            ("b", "ALTER TABLE accounts ADD COLUMN secret text DEFAULT 'hunter2'", 1),
            ("c", "SELECT legacy_status FROM accounts_archive", 1),
        ],
    )
    assert [statement.key for statement in relevant(snapshot, [COLUMN]).statements] == ["a"]
