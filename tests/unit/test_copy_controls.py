"""The runner's side of a copy step: stop and throttle answered at once, progress into the run like a
backfill's, an event when a hold starts or ends (not for every new lag figure)."""

from __future__ import annotations

from orchestrator.domain.plan import Stage
from orchestrator.domain.run import EventType
from orchestrator.engine.control import StopSignal
from orchestrator.engine.copy_controls import RunStepControls
from orchestrator.engine.events import EventSink, new_event
from orchestrator.ports import CopyStatus
from tests.unit.fakes import FakeClock, InMemoryStateStore, RecordingNotifier, make_run, make_spec


class Held:
    def __init__(self) -> None:
        self.why: str | None = None

    def reason(self, target: str) -> str | None:
        return self.why


async def test_controls_answer_and_record() -> None:
    store = InMemoryStateStore()
    run = make_run(make_spec({"add_column": {"table": "t", "column": {"name": "c", "type": "text"}}}))
    await store.create_run(run, new_event(run.id, EventType.CREATED, "created"))
    clock, stop, throttle = FakeClock(), StopSignal(), Held()
    events = EventSink(store, RecordingNotifier(), lambda _run_id: None)
    controls = RunStepControls(run, Stage.EXPAND, store, events, clock, stop, throttle)

    assert controls.stop_reason() is None and controls.hold_reason() is None
    throttle.why = "replica-lag 3s >= 1s"
    assert controls.hold_reason() == "replica-lag 3s >= 1s"

    step = "expand.00.alter_table.t.copy"
    await controls.report(step, CopyStatus("pt_osc", "copying", 10.0, 9.0, 100, 1000, None))
    await controls.report(
        step, CopyStatus("pt_osc", "copying", 20.0, 8.0, 200, 1000, "replica lag 4 s on r1")
    )
    await controls.report(
        step, CopyStatus("pt_osc", "copying", 20.0, 8.0, 200, 1000, "replica lag 3 s on r1")
    )
    await controls.report(step, CopyStatus("pt_osc", "copying", 30.0, 7.0, 300, 1000, None))
    kinds = [
        event.type for event in store.events if event.type in (EventType.THROTTLED, EventType.UNTHROTTLED)
    ]
    assert kinds == [EventType.THROTTLED, EventType.UNTHROTTLED], "one event per hold, not per lag figure"
    progress = (await store.get_run(run.id)).progress.backfill
    assert progress is not None
    assert (progress.step_id, progress.rows_done, progress.rows_total_estimate) == (step, 300, 1000)

    await controls.note(step, "copy tool: pt-online-schema-change", {"tool": "pt_osc"})
    assert store.events[-1].type is EventType.COPY_PROGRESS and store.events[-1].data == {"tool": "pt_osc"}
    stop.request("paused by request")
    assert controls.stop_reason() == "paused by request"
