"""The contract safety proof, pure: what contract drops, and whether anything used it since the gate.

What contract drops is read from the plan's contract steps and matched on the spec operation each
step belongs to (its kind), so it holds whatever step ids a planner chooses. The judgement compares
two readings of the target's own statistics, one taken when the deploy gate was approved and one
just before contract: a statement that names a dropped column (or table) and ran since, an index
scanned since, or a table read or written since, is a use and refuses contract unless a person
overrides it with a reason. osctl's own backfill and verify statements run after the gate and may
read the column being replaced; they carry the plan's backfill expression, which is how they are
recognised and left out (counted in `excluded_own_statements`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from orchestrator.domain.operations import AlterColumn, DropColumn, DropIndex, DropTable, RenameColumn
from orchestrator.domain.plan import Plan, Stage
from orchestrator.domain.spec import MigrationSpec
from orchestrator.domain.usage import (
    ContractProof,
    DropKind,
    DropTarget,
    ObjectStat,
    UsageFinding,
    UsageOverride,
    UsageSnapshot,
    Verdict,
)
from orchestrator.engine.statement_refs import contains_expression, references


class UsageReader(Protocol):
    """Reads the target's usage statistics for the objects contract drops (an adapter per engine)."""

    async def snapshot(self, targets: Sequence[DropTarget]) -> UsageSnapshot: ...

    async def close(self) -> None: ...


@dataclass(frozen=True)
class OwnStatement:
    """How osctl's own statements on a table look: they embed this backfill expression."""

    table: str
    expression: str


def contract_drops(spec: MigrationSpec, plan: Plan) -> list[DropTarget]:
    """The columns, indexes and tables the plan's contract stage removes, in spec order."""
    operations = spec.ops()
    indexes = sorted({step.operation_index for step in plan.stage(Stage.CONTRACT).steps})
    found: list[DropTarget] = []
    for index in indexes:
        if not 0 <= index < len(operations):
            continue
        op = operations[index]
        match op:
            case DropColumn() | AlterColumn() | RenameColumn():
                # alter_column and rename_column swap a synced copy in: the old column goes.
                found.append(
                    DropTarget(
                        kind=DropKind.COLUMN,
                        table=op.table,
                        column=op.column,
                        operation_index=index,
                        operation=op.kind,
                    )
                )
            case DropIndex():
                found.append(
                    DropTarget(
                        kind=DropKind.INDEX,
                        table=op.table,
                        index=op.name,
                        operation_index=index,
                        operation=op.kind,
                    )
                )
            case DropTable():
                found.append(
                    DropTarget(kind=DropKind.TABLE, table=op.table, operation_index=index, operation=op.kind)
                )
    return found


def own_statements(plan: Plan) -> list[OwnStatement]:
    return [
        OwnStatement(step.backfill.table, step.backfill.expression)
        for step in plan.steps()
        if step.backfill is not None
    ]


def relevant(snapshot: UsageSnapshot, targets: Sequence[DropTarget]) -> UsageSnapshot:
    """Only the data statements on a target table are kept with the run: the adapter's text match is
    a superset (DDL, other tables whose names contain it), and utility statements keep their literals."""
    tables = {target.table for target in targets}
    kept = [
        statement
        for statement in snapshot.statements
        if any(references(statement.text, snapshot.engine, table) is not None for table in tables)
    ]
    return snapshot.model_copy(update={"statements": kept})


def judge(
    targets: Sequence[DropTarget],
    gate: UsageSnapshot | None,
    now: UsageSnapshot,
    *,
    own: Sequence[OwnStatement] = (),
    override: UsageOverride | None = None,
    gate_error: str | None = None,
) -> ContractProof:
    labels = [target.label for target in targets]
    if not targets:
        return ContractProof(
            verdict=Verdict.NOTHING_TO_DROP, checked_at=now.taken_at, gate_at=None, targets=labels
        )
    notes = _source_notes(targets, gate, now, gate_error)
    complete = gate is not None and not notes
    findings: list[UsageFinding] = []
    excluded = 0
    present = [target for target in targets if target.label not in now.missing]
    for target in targets:
        if target.label in now.missing:
            notes.append(f"{target.label} no longer exists: nothing left to prove for it")
    if gate is not None:
        statement_findings, excluded = _statement_findings(present, gate, now, own)
        findings += statement_findings
        findings += _counter_findings(present, gate, now)
    blocking = any(finding.blocking for finding in findings)
    verdict = Verdict.CLEAR
    if blocking:
        verdict = Verdict.OVERRIDDEN if override is not None else Verdict.USAGE_SEEN
    return ContractProof(
        verdict=verdict,
        checked_at=now.taken_at,
        gate_at=gate.taken_at if gate is not None else None,
        targets=labels,
        findings=findings,
        notes=list(dict.fromkeys(notes)),
        excluded_own_statements=excluded,
        complete=complete,
        override=override if blocking else None,
    )


def _source_notes(
    targets: Sequence[DropTarget], gate: UsageSnapshot | None, now: UsageSnapshot, gate_error: str | None
) -> list[str]:
    notes: list[str] = []
    if gate is None:
        why = f" ({gate_error})" if gate_error else ""
        notes.append(
            f"no usage counters were recorded at the deploy gate{why}: use since the gate cannot be "
            "shown either way, so nothing is proved"
        )
    kinds = {target.kind for target in targets}
    statements_matter = bool(kinds & {DropKind.COLUMN, DropKind.TABLE})
    counters_matter = bool(kinds & {DropKind.INDEX, DropKind.TABLE})
    for source, matters in (
        (now.statements_source, statements_matter),
        (now.counters_source, counters_matter),
    ):
        if matters and not source.available:
            notes.append(f"{source.name} unavailable, weaker proof: {source.note}")
        elif matters and source.note:
            notes.append(f"{source.name}: {source.note}")
    if gate is not None:
        pairs = ((gate.statements_source, now.statements_source), (gate.counters_source, now.counters_source))
        for earlier, later in pairs:
            if not earlier.available and later.available:
                notes.append(f"{later.name} was unavailable at the gate: its counts since then are unknown")
            changed = {
                name: (earlier.marks.get(name, "-"), value)
                for name, value in later.marks.items()
                if earlier.available and earlier.marks.get(name) != value
            }
            for name, (before, after) in sorted(changed.items()):
                notes.append(
                    f"{later.name}: {name} changed since the gate ({before} -> {after}), "
                    "counts may be incomplete"
                )
    return notes


def _statement_findings(
    targets: Sequence[DropTarget], gate: UsageSnapshot, now: UsageSnapshot, own: Sequence[OwnStatement]
) -> tuple[list[UsageFinding], int]:
    if not (gate.statements_source.available and now.statements_source.available):
        return [], 0
    before = {statement.key: statement.calls for statement in gate.statements}
    findings: list[UsageFinding] = []
    excluded: set[str] = set()
    for statement in now.statements:
        since = statement.calls - before.get(statement.key, 0)
        if since < 0:  # the statistics were reset since the gate: every call counted now is newer
            since = statement.calls
        if since <= 0:
            continue
        for target in targets:
            if target.kind is DropKind.INDEX:
                continue  # an index is not named by the statements that use it
            reference = references(statement.text, now.engine, target.table, target.column)
            if reference is None:
                continue
            if any(
                mine.table == target.table and contains_expression(statement.text, mine.expression)
                for mine in own
            ):
                excluded.add(statement.key)
                continue
            named = reference.column if target.kind is DropKind.COLUMN else True
            if not named and not reference.star:
                continue
            if target.kind is DropKind.TABLE:
                how = "uses the table"
            else:
                how = "names the column" if named else "touches every column (* or no column list)"
            if not reference.parsed:
                how += ", matched by identifier because the text did not parse"
            findings.append(
                UsageFinding(
                    target=target.label,
                    source=now.statements_source.name,
                    blocking=named,
                    detail=f"{_short(statement.text)} ran {since} time(s) since the gate"
                    f"{_last(statement.last_seen)}; it {how}",
                    calls=since,
                    statement=statement.text,
                    last_seen=statement.last_seen,
                )
            )
    return findings, len(excluded)


def _counter_findings(
    targets: Sequence[DropTarget], gate: UsageSnapshot, now: UsageSnapshot
) -> list[UsageFinding]:
    if not (gate.counters_source.available and now.counters_source.available):
        return []
    findings: list[UsageFinding] = []
    for target in targets:
        if target.kind is DropKind.INDEX and target.index is not None:
            delta = _delta(gate.indexes.get(target.index), now.indexes.get(target.index))
        elif target.kind is DropKind.TABLE:
            delta = _delta(gate.tables.get(target.table), now.tables.get(target.table))
        else:
            continue  # a column has no counters of its own
        if not delta:
            continue
        changes = ", ".join(f"{name} +{value}" for name, value in sorted(delta.items()))
        findings.append(
            UsageFinding(
                target=target.label,
                source=now.counters_source.name,
                blocking=True,
                detail=f"{target.label}: {changes} since the gate",
                calls=sum(delta.values()),
            )
        )
    return findings


def _delta(before: ObjectStat | None, after: ObjectStat | None) -> dict[str, int]:
    if after is None:
        return {}
    earlier = before.counters if before is not None else {}
    changes = {}
    for name, value in after.counters.items():
        grown = value - earlier.get(name, 0)
        if grown < 0:  # counters reset since the gate
            grown = value
        if grown > 0:
            changes[name] = grown
    return changes


def _last(seen: datetime | None) -> str:
    return f" (last {seen.isoformat()})" if seen is not None else ""


def _short(text: str, width: int = 160) -> str:
    one_line = " ".join(text.split())
    return one_line if len(one_line) <= width else one_line[: width - 3] + "..."
