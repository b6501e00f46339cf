"""The backfill loop: keyset chunks along the primary key, a checkpoint after each one."""

from __future__ import annotations

import structlog

from orchestrator.domain.plan import BackfillWork, Step
from orchestrator.domain.run import BackfillProgress, EventType, Progress, Run
from orchestrator.engine.control import StopSignal
from orchestrator.engine.events import EventSink
from orchestrator.ports import BackfillCheckpoint, Clock, StateStore, TargetDatabase

log = structlog.get_logger(__name__)

PROGRESS_EVENT_SECONDS = 5.0


class BackfillRunner:
    def __init__(
        self, store: StateStore, target: TargetDatabase, events: EventSink, clock: Clock, stop: StopSignal
    ) -> None:
        self._store = store
        self._target = target
        self._events = events
        self._clock = clock
        self._stop = stop

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
        started, rows_at_start = self._clock.now(), rows_done
        last_event = started
        base = (await self._store.get_run(run.id)).progress
        while True:
            self._stop.check()
            result = await self._target.backfill_chunk(work, key, after, work.batch_size)
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
            progress = _progress(
                step.id, rows_done, total, rows_done - rows_at_start, self._clock.now() - started
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
            if work.pause_ms:
                await self._stop.wait(work.pause_ms / 1000)
        await self._store.save_backfill_checkpoint(
            run.id, BackfillCheckpoint(step.id, after, rows_done, done=True)
        )
        final = _progress(
            step.id, rows_done, rows_done, rows_done - rows_at_start, self._clock.now() - started
        )
        await self._store.set_progress(run.id, _with_backfill(base, final))


def _progress(
    step_id: str, rows_done: int, total: int, rows_this_run: int, seconds: float
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
    )


def _with_backfill(base: Progress, backfill: BackfillProgress) -> Progress:
    return base.model_copy(update={"backfill": backfill})
