"""The backfill loop: keyset chunks along the primary key, sized to a time target, throttled,
checkpointed after each one, and verified before the stage may end."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import structlog

from orchestrator import metrics
from orchestrator.domain.errors import StepFailedError
from orchestrator.domain.plan import BackfillWork, Step
from orchestrator.domain.run import BackfillProgress, BackfillTuning, EventType, Progress, Run
from orchestrator.engine.chunking import ChunkSizer
from orchestrator.engine.control import StopSignal
from orchestrator.engine.events import EventSink
from orchestrator.ports import BackfillCheckpoint, Clock, KeyColumn, StateStore, TargetDatabase, Throttle

log = structlog.get_logger(__name__)

PROGRESS_EVENT_SECONDS = 5.0
THROTTLE_POLL_SECONDS = 0.05
# Verification only reads, so it can take bigger bites than the writes did.
VERIFY_ROWS = 50_000
SAMPLE_KEYS = 5


class BackfillRunner:
    def __init__(
        self,
        store: StateStore,
        target: TargetDatabase,
        events: EventSink,
        clock: Clock,
        stop: StopSignal,
        *,
        tuning: Callable[[], BackfillTuning] | None = None,
        throttle: Throttle | None = None,
    ) -> None:
        self._store = store
        self._target = target
        self._events = events
        self._clock = clock
        self._stop = stop
        self._tuning = tuning or BackfillTuning
        self._throttle = throttle

    async def run(self, run: Run, step: Step, work: BackfillWork) -> None:
        checkpoint = await self._store.get_backfill_checkpoint(run.id, step.id)
        if checkpoint is not None and checkpoint.done:
            return
        key = await self._target.backfill_key(work)
        total = await self._target.estimate_rows(work.table)
        after = checkpoint.high_water if checkpoint else None
        rows_done = checkpoint.rows_done if checkpoint else 0
        if checkpoint is not None:
            await self._events.emit(
                run.id,
                EventType.BACKFILL_PROGRESS,
                f"resumed from the checkpoint after {rows_done} rows",
                stage=step.stage,
                step_id=step.id,
                data={"resumed_from": after, "rows_done": rows_done},
            )
        sizer = ChunkSizer(work.chunk_target_ms / 1000, work.batch_size, fixed=not work.adaptive)
        started, rows_at_start = self._clock.now(), rows_done
        last_event = started
        base = (await self._store.get_run(run.id)).progress
        while True:
            self._stop.check()
            pause_ms = self._retune(sizer, work)
            await self._hold_while_throttled(run, step)
            chunk_started = self._clock.now()
            result = await self._target.backfill_chunk(work, key, after, sizer.size)
            seconds = self._clock.now() - chunk_started
            if result.high_water is None:
                break
            after = result.high_water
            rows_done += result.rows_scanned
            # The chunk has committed on the target; if the process dies before this line the chunk is
            # replayed on resume, which writes nothing because rows already equal to the expression
            # are skipped.
            await self._store.save_backfill_checkpoint(
                run.id, BackfillCheckpoint(step.id, after, rows_done, done=False)
            )
            log.debug(
                "backfill_chunk", rows=result.rows_scanned, updated=result.rows_updated, seconds=seconds
            )
            sizer.observe(result.rows_scanned, seconds)
            metrics.chunk_done(run.target, result.rows_scanned, seconds)
            progress = _progress(
                step.id, rows_done, total, rows_done - rows_at_start, self._clock.now() - started, sizer.size
            )
            await self._store.set_progress(run.id, _with_backfill(base, progress))
            if self._clock.now() - last_event >= PROGRESS_EVENT_SECONDS:
                last_event = self._clock.now()
                await self._events.emit(
                    run.id,
                    EventType.BACKFILL_PROGRESS,
                    f"{rows_done} of ~{progress.rows_total_estimate} rows",
                    stage=step.stage,
                    step_id=step.id,
                    data=progress.model_dump(mode="json"),
                )
            if pause_ms:
                await self._stop.wait(pause_ms / 1000)
        await self._verify(run, step, work, key)
        await self._store.save_backfill_checkpoint(
            run.id, BackfillCheckpoint(step.id, after, rows_done, done=True)
        )
        final = _progress(
            step.id, rows_done, rows_done, rows_done - rows_at_start, self._clock.now() - started, sizer.size
        )
        await self._store.set_progress(run.id, _with_backfill(base, final))

    def _retune(self, sizer: ChunkSizer, work: BackfillWork) -> int:
        """Apply the run-time tuning before a chunk; returns the pause to take after it."""
        tuning = self._tuning()
        target_ms = tuning.chunk_target_ms or work.chunk_target_ms
        fixed = (
            tuning.batch_size
            if tuning.batch_size is not None
            else (None if work.adaptive else work.batch_size)
        )
        sizer.retune(target_seconds=target_ms / 1000, fixed_size=fixed)
        return tuning.pause_ms if tuning.pause_ms is not None else work.pause_ms

    async def _hold_while_throttled(self, run: Run, step: Step) -> None:
        """No write while a signal says hold; the hold and its end are events, not per-chunk noise."""
        if self._throttle is None:
            return
        reason = self._throttle.reason(run.target)
        if reason is None:
            return
        held = self._clock.now()
        await self._events.emit(run.id, EventType.THROTTLED, reason, stage=step.stage, step_id=step.id)
        await self._set_throttled(run.id, reason)
        while reason is not None:
            await self._stop.wait(THROTTLE_POLL_SECONDS)
            current = self._throttle.reason(run.target)
            if current is not None and current != reason:
                await self._set_throttled(run.id, current)
            reason = current
        await self._set_throttled(run.id, None)
        await self._events.emit(
            run.id,
            EventType.UNTHROTTLED,
            f"resumed after {self._clock.now() - held:.1f} s",
            stage=step.stage,
            step_id=step.id,
        )

    async def _set_throttled(self, run_id: str, reason: str | None) -> None:
        progress = (await self._store.get_run(run_id)).progress
        if progress.backfill is not None:
            backfill = progress.backfill.model_copy(update={"throttled": reason})
            await self._store.set_progress(run_id, progress.model_copy(update={"backfill": backfill}))
        self._events.changed(run_id)

    async def _verify(self, run: Run, step: Step, work: BackfillWork, key: Sequence[KeyColumn]) -> None:
        """Before contract may run: no row may differ from what the expression gives.

        A difference means something still writes other values (an old application version, a
        bug in the new one). The stage fails with the count and sample keys, and the checkpoint is
        reset so that retrying the stage, once that is fixed, walks the table again.
        """
        after: list[Any] | None = None
        scanned = mismatches = 0
        samples: list[list[Any]] = []
        while True:
            self._stop.check()
            result = await self._target.verify_chunk(work, key, after, VERIFY_ROWS)
            if result.high_water is None:
                break
            after = result.high_water
            scanned += result.rows_scanned
            mismatches += result.mismatches
            samples.extend(result.sample_keys[: SAMPLE_KEYS - len(samples)])
        if mismatches:
            await self._store.save_backfill_checkpoint(
                run.id, BackfillCheckpoint(step.id, None, 0, done=False)
            )
            raise StepFailedError(
                step.id,
                step.description,
                f"verification found {mismatches} of {scanned} rows where {work.column} differs from "
                f"{work.expression} (sample keys: {samples}); something still writes other values. "
                "Fix it, then retry the backfill stage: it walks the table again.",
            )
        await self._events.emit(
            run.id,
            EventType.BACKFILL_VERIFIED,
            f"every one of {scanned} rows holds {work.expression}",
            stage=step.stage,
            step_id=step.id,
            data={"rows": scanned},
        )


def _progress(
    step_id: str, rows_done: int, total: int, rows_this_run: int, seconds: float, chunk_size: int
) -> BackfillProgress:
    # The estimate comes from planner statistics and lags behind inserts; never report less than done.
    total = max(total, rows_done)
    rate = rows_this_run / seconds if seconds > 0 else 0.0
    eta = (total - rows_done) / rate if rate > 0 else None
    return BackfillProgress(
        step_id=step_id,
        rows_done=rows_done,
        rows_total_estimate=total,
        rows_per_second=round(rate, 1),
        eta_seconds=round(eta, 1) if eta is not None else None,
        chunk_size=chunk_size,
    )


def _with_backfill(base: Progress, backfill: BackfillProgress) -> Progress:
    return base.model_copy(update={"backfill": backfill})
