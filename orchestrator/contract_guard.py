"""The contract safety proof at the service: counters read when the deploy gate is approved, read again
when contract is asked for, judged (engine.contract_proof, pure), and recorded on the run.

Reading goes through a UsageReader per target (adapters/postgres/usage.py, adapters/mysql/usage.py),
opened for the one reading and closed again. Without a reader for the target, or when the gate
reading fails, the run records why, and the proof later says that nothing could be proved rather
than passing silently.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import structlog

from orchestrator.domain.errors import OrchestratorError
from orchestrator.domain.plan import Stage
from orchestrator.domain.run import EventType, Run
from orchestrator.domain.usage import (
    ContractBlockedError,
    ContractProof,
    ContractProofRecord,
    DropTarget,
    SourceState,
    UsageOverride,
    UsageSnapshot,
    Verdict,
)
from orchestrator.engine.contract_proof import UsageReader, contract_drops, judge, own_statements, relevant
from orchestrator.engine.events import EventSink, new_event
from orchestrator.ports import StateStore

log = structlog.get_logger(__name__)

# Target name -> a reader of its usage statistics, or None when there is none for it.
UsageReaders = Callable[[str], UsageReader | None]
NO_READER = "no usage statistics reader is configured for this target"


class UsageUnreadableError(OrchestratorError):
    """The target's usage statistics could not be read just before contract: retry when it answers."""

    retryable = True


class ContractGuard:
    def __init__(self, readers: UsageReaders | None) -> None:
        self._readers = readers

    async def at_gate(self, run: Run) -> ContractProofRecord | None:
        """The counters at the deploy gate, for a run whose contract drops something; None otherwise.

        A failed reading does not hold the gate (the pipeline's news is that the code is out): the
        record keeps the reason and the proof at contract shows it."""
        targets = contract_drops(run.spec, run.plan)
        if not targets:
            return None
        try:
            snapshot = await self._read(run.target, targets)
        except Exception as error:  # any failure is recorded on the run, never raised into the gate
            reason = f"{type(error).__name__}: {error}"
            log.warning("usage_baseline_failed", migration_id=run.id, error=reason)
            return ContractProofRecord(gate_error=reason)
        if snapshot is None:
            return ContractProofRecord(gate_error=NO_READER)
        return ContractProofRecord(gate=snapshot)

    async def record_gate(self, events: EventSink, run: Run) -> None:
        """The gate reading's event, once it is stored with the transition."""
        record = run.contract_proof
        if record is None:
            return
        targets = ", ".join(target.label for target in contract_drops(run.spec, run.plan))
        if record.gate is None:
            message = f"usage of {targets} could not be read at the deploy gate: {record.gate_error}"
            data: dict[str, object] = {"error": record.gate_error}
        else:
            gate = record.gate
            sources = [gate.statements_source, gate.counters_source]
            message = f"usage of {targets} read at the deploy gate: " + "; ".join(
                f"{source.name} {'read' if source.available else 'unavailable: ' + source.note}"
                for source in sources
            )
            data = {
                "statements": len(gate.statements),
                "sources": [source.model_dump(mode="json") for source in sources],
            }
        await events.emit(run.id, EventType.USAGE_BASELINE, message, stage=Stage.DEPLOY_GATE, data=data)

    async def prove(self, run: Run, override: UsageOverride | None) -> ContractProof:
        targets = contract_drops(run.spec, run.plan)
        record = run.contract_proof or ContractProofRecord(
            gate_error="the gate was approved before osctl recorded usage"
        )
        if not targets:
            return judge([], None, _unread(run.engine, "nothing to read"))
        try:
            snapshot = await self._read(run.target, targets)
        except Exception as error:
            raise UsageUnreadableError(
                f"could not read the usage statistics of target {run.target!r} before contract: "
                f"{type(error).__name__}: {error}"
            ) from error
        if snapshot is None:
            snapshot = _unread(run.engine, NO_READER)
        return judge(
            targets,
            record.gate,
            snapshot,
            own=own_statements(run.plan),
            override=override,
            gate_error=record.gate_error,
        )

    async def check(
        self,
        store: StateStore,
        events: EventSink,
        run: Run,
        *,
        override_reason: str | None = None,
        actor: str | None = None,
    ) -> Run:
        """Prove, record the proof on the run with its event (and the override's audit event), and
        refuse with ContractBlockedError when usage was seen and nobody overrode it. The run stays
        where it is either way: only the caller moves it on."""
        now = datetime.now(UTC)
        override = UsageOverride(reason=override_reason, actor=actor, at=now) if override_reason else None
        proof = await self.prove(run, override)
        if proof.verdict is Verdict.NOTHING_TO_DROP and override is None:
            return run
        record = run.contract_proof or ContractProofRecord()
        record = record.model_copy(update={"last": proof, "override": override or record.override})
        updated = run.model_copy(update={"contract_proof": record, "updated_at": now})
        data = {**proof.model_dump(mode="json"), **({"actor": actor} if actor else {})}
        event = new_event(run.id, EventType.CONTRACT_PROOF, proof.summary(), stage=Stage.CONTRACT, data=data)
        await store.update_run(updated, expected_status=run.status, event=event)
        log.info("contract_proof", migration_id=run.id, verdict=proof.verdict.value, complete=proof.complete)
        await events.published(updated, event)
        if override is not None:
            needed = proof.verdict is Verdict.OVERRIDDEN
            await events.emit(
                run.id,
                EventType.USAGE_OVERRIDE,
                f"contract usage proof overridden by {actor or 'an unnamed caller'}"
                f"{'' if needed else ' (no usage was seen, so it was not needed)'}: {override.reason}",
                stage=Stage.CONTRACT,
                data={
                    "actor": actor,
                    "reason": override.reason,
                    "needed": needed,
                    "verdict": proof.verdict.value,
                },
            )
        if proof.blocked:
            raise ContractBlockedError(run.status.value, updated.allowed_actions, proof)
        return updated

    async def _read(self, target: str, targets: list[DropTarget]) -> UsageSnapshot | None:
        reader = self._readers(target) if self._readers is not None else None
        if reader is None:
            return None
        try:
            return relevant(await reader.snapshot(targets), targets)
        finally:
            await reader.close()


def _unread(engine: str, why: str) -> UsageSnapshot:
    missing = SourceState(name="usage statistics", available=False, note=why)
    return UsageSnapshot(
        engine=engine, taken_at=datetime.now(UTC), statements_source=missing, counters_source=missing
    )
