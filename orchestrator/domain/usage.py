"""The contract safety proof as data: what contract drops, the usage counters read at the deploy gate
and before contract, what they showed, and an override with its reason.

Pure models. The counters come from the target's own statistics (pg_stat_statements and the
pg_stat_user_* views, or MySQL's performance_schema); the judgement is in engine.contract_proof.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from orchestrator.domain.errors import IllegalTransitionError

# An override is an audited decision: its reason must say something.
MIN_OVERRIDE_REASON = 10


class DropKind(StrEnum):
    COLUMN = "column"
    INDEX = "index"
    TABLE = "table"


class DropTarget(BaseModel):
    """One object contract removes, and the spec operation that removes it."""

    model_config = ConfigDict(frozen=True)

    kind: DropKind
    table: str
    column: str | None = None
    index: str | None = None
    operation_index: int
    operation: str  # the spec operation kind: drop_column, alter_column, drop_index, ...

    @property
    def label(self) -> str:
        if self.kind is DropKind.COLUMN:
            return f"column {self.table}.{self.column}"
        if self.kind is DropKind.INDEX:
            return f"index {self.index} on {self.table}"
        return f"table {self.table}"


class StatementStat(BaseModel):
    """One normalised statement and how often it ran, as the server's statement statistics count."""

    model_config = ConfigDict(frozen=True)

    key: str  # stable across reads: userid/queryid/toplevel on PostgreSQL, schema/digest on MySQL
    text: str
    calls: int
    last_seen: datetime | None = None  # MySQL keeps it; pg_stat_statements does not


class ObjectStat(BaseModel):
    """Cumulative access counters of one table or index (scans, reads, writes)."""

    model_config = ConfigDict(frozen=True)

    counters: dict[str, int] = Field(default_factory=dict)


class SourceState(BaseModel):
    """Whether one kind of evidence could be read, and if not, why (said, never pretended)."""

    model_config = ConfigDict(frozen=True)

    name: str
    available: bool
    note: str = ""
    # Values that must not change between the gate and contract for the counts to be whole: entries
    # evicted, statistics reset, digests lost.
    marks: dict[str, str] = Field(default_factory=dict)


class UsageSnapshot(BaseModel):
    """What the target's statistics said at one moment about the objects contract will drop."""

    model_config = ConfigDict(frozen=True)

    engine: str
    taken_at: datetime
    statements_source: SourceState
    counters_source: SourceState
    # Only statements whose text names one of the target tables are kept (the rest cannot matter).
    statements: list[StatementStat] = Field(default_factory=list)
    tables: dict[str, ObjectStat] = Field(default_factory=dict)
    indexes: dict[str, ObjectStat] = Field(default_factory=dict)
    # Labels of the targets that no longer exist (a retried contract already dropped them).
    missing: list[str] = Field(default_factory=list)


class UsageFinding(BaseModel):
    """One piece of evidence about one target. Blocking findings are uses since the gate."""

    model_config = ConfigDict(frozen=True)

    target: str
    source: str
    blocking: bool
    detail: str
    calls: int = 0
    statement: str | None = None
    last_seen: datetime | None = None


class Verdict(StrEnum):
    CLEAR = "clear"  # nothing seen using what contract drops since the gate
    USAGE_SEEN = "usage_seen"  # contract is refused until the use stops or someone overrides
    OVERRIDDEN = "overridden"  # usage was seen and a person accepted it, with a reason
    NOTHING_TO_DROP = "nothing_to_drop"


class UsageOverride(BaseModel):
    model_config = ConfigDict(frozen=True)

    reason: str
    actor: str | None = None
    at: datetime


class ContractProof(BaseModel):
    """The evidence shown on the migration and in a refusal."""

    model_config = ConfigDict(frozen=True)

    verdict: Verdict
    checked_at: datetime
    gate_at: datetime | None
    targets: list[str]
    findings: list[UsageFinding] = Field(default_factory=list)
    # Where the proof is weaker than it looks: a statistic missing, reset, or nothing to compare with.
    notes: list[str] = Field(default_factory=list)
    excluded_own_statements: int = 0
    # True when every statistic the targets need was read at the gate and now: the strongest proof.
    complete: bool = False
    override: UsageOverride | None = None

    @property
    def blocked(self) -> bool:
        return self.verdict is Verdict.USAGE_SEEN

    def summary(self) -> str:
        uses = [finding for finding in self.findings if finding.blocking]
        if not uses:
            return f"{self.verdict.value}: nothing seen using {', '.join(self.targets) or 'anything'}"
        seen = "; ".join(finding.detail for finding in uses[:5])
        more = f" (and {len(uses) - 5} more)" if len(uses) > 5 else ""
        return f"{self.verdict.value}: {seen}{more}"


class ContractProofRecord(BaseModel):
    """Kept with the run: the counters at the gate, the latest proof, and an override if one was given."""

    model_config = ConfigDict(frozen=True)

    gate: UsageSnapshot | None = None
    gate_error: str | None = None  # why the counters could not be read at the gate
    last: ContractProof | None = None
    override: UsageOverride | None = None


class ContractBlockedError(IllegalTransitionError):
    """Contract would drop something still in use: refused, the run stays awaiting_contract.

    Stop the use (deploy the code that no longer needs it) and start contract again, or override with
    a reason, which is recorded with who gave it."""

    def __init__(self, current: str, allowed: Sequence[str], proof: ContractProof) -> None:
        self.proof = proof
        super().__init__(
            current, "start stage contract", allowed, f"usage seen since the deploy gate: {proof.summary()}"
        )
