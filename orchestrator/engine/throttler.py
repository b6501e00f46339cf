"""The throttler: polls every signal of every target on its own task, and answers the Throttle port
from the latest readings through the pure decision. Transitions are logged; readings are not."""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections import deque
from dataclasses import dataclass, field

import structlog

from orchestrator import metrics
from orchestrator.domain.throttle import Decision, ManualHold, Sample, SignalState, Threshold, decide
from orchestrator.ports import Clock, SignalSource

log = structlog.get_logger(__name__)

DEFAULT_POLL_SECONDS = 0.2
# Readings kept per signal for the status page's chart: the last few minutes, bounded in length.
HISTORY_SECONDS = 300.0
HISTORY_MAX_POINTS = 1500
HISTORY_SNAPSHOT_POINTS = 300  # at most this many points per signal in a snapshot (evenly thinned)


@dataclass
class _Target:
    sources: dict[str, SignalSource] = field(default_factory=dict)
    thresholds: dict[str, Threshold] = field(default_factory=dict)
    samples: dict[str, Sample | None] = field(default_factory=dict)
    # (monotonic time, value or None when there was no reading) per signal, oldest first.
    history: dict[str, deque[tuple[float, float | None]]] = field(default_factory=dict)
    states: dict[str, SignalState] = field(default_factory=dict)
    manual: ManualHold | None = None
    holding_since: float | None = None
    last_reason: str | None = None
    decision: Decision | None = None


class Throttler:
    def __init__(self, clock: Clock, *, poll_seconds: float = DEFAULT_POLL_SECONDS) -> None:
        self._clock = clock
        self._poll = poll_seconds
        self._targets: dict[str, _Target] = {}
        self._tasks: list[asyncio.Task[None]] = []

    def add_signal(self, target: str, source: SignalSource, threshold: Threshold) -> None:
        entry = self._targets.setdefault(target, _Target())
        entry.sources[source.name] = source
        entry.thresholds[source.name] = threshold
        entry.samples.setdefault(source.name, None)
        entry.history.setdefault(source.name, deque(maxlen=HISTORY_MAX_POINTS))

    async def start(self) -> None:
        for target, entry in self._targets.items():
            for source in entry.sources.values():
                self._tasks.append(
                    asyncio.create_task(self._poll_loop(target, source), name=f"signal-{source.name}")
                )

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        for entry in self._targets.values():
            for source in entry.sources.values():
                with contextlib.suppress(Exception):
                    await source.close()

    async def _poll_loop(self, target: str, source: SignalSource) -> None:
        entry = self._targets[target]
        history = entry.history.setdefault(source.name, deque(maxlen=HISTORY_MAX_POINTS))
        while True:
            sample = await source.sample()
            entry.samples[source.name] = sample
            if source.name.startswith("replica-lag") and source.unit == "s" and sample.value is not None:
                metrics.replica_lag_seen(target, source.name, sample.value)
            now = self._clock.now()
            history.append((now, sample.value))
            while history and history[0][0] < now - HISTORY_SECONDS:
                history.popleft()
            await asyncio.sleep(self._poll)

    # -- the Throttle port ----------------------------------------------------------------------------

    def reason(self, target: str) -> str | None:
        decision = self.decide(target)
        return decision.reason if decision is not None else None

    def decide(self, target: str) -> Decision | None:
        entry = self._targets.get(target)
        if entry is None:
            return None
        now = self._clock.now()
        units = {name: source.unit for name, source in entry.sources.items()}
        decision = decide(entry.thresholds, units, entry.samples, entry.states, now, entry.manual)
        entry.states = decision.states
        entry.decision = decision
        if decision.reason != entry.last_reason:
            # Transitions only: per-chunk polling stays out of the log.
            log.info("throttle_changed", target=target, reason=decision.reason, was=entry.last_reason)
            metrics.throttle_changed(target, decision.reason)
            entry.last_reason = decision.reason
        if decision.hold and entry.holding_since is None:
            entry.holding_since = now
        elif not decision.hold:
            entry.holding_since = None
        return decision

    # -- controls and views -----------------------------------------------------------------------------

    def held_for(self, target: str) -> float:
        entry = self._targets.get(target)
        if entry is None or entry.holding_since is None:
            return 0.0
        return self._clock.now() - entry.holding_since

    def hold(self, target: str, reason: str, seconds: float | None) -> None:
        entry = self._targets.setdefault(target, _Target())
        until = self._clock.now() + seconds if seconds is not None else None
        entry.manual = ManualHold(reason=reason, until=until)

    def release(self, target: str) -> None:
        entry = self._targets.get(target)
        if entry is not None:
            entry.manual = None

    def set_threshold(self, target: str, name: str, threshold: Threshold) -> None:
        entry = self._targets.get(target)
        if entry is None or name not in entry.sources:
            raise KeyError(name)
        entry.thresholds[name] = threshold

    def targets(self) -> list[str]:
        return sorted(self._targets)

    def history(
        self, target: str, name: str, *, now: float | None = None
    ) -> list[tuple[float, float | None]]:
        """A signal's recent readings as (seconds before now, value), oldest first, thinned to at most
        HISTORY_SNAPSHOT_POINTS evenly spaced points (the newest always kept)."""
        entry = self._targets.get(target)
        points = list(entry.history.get(name, ())) if entry is not None else []
        if not points:
            return []
        now = self._clock.now() if now is None else now
        step = max(1, math.ceil(len(points) / HISTORY_SNAPSHOT_POINTS))
        kept = points[::-1][::step][::-1]  # counted from the newest, so the newest is always there
        return [(round(max(0.0, now - at), 3), value) for at, value in kept]

    def snapshot(self, target: str) -> dict[str, object]:
        """Latest readings, thresholds, recent history and the decision, for the API and the status page."""
        entry = self._targets.get(target)
        if entry is None:
            return {"signals": {}, "reason": None, "history": {}}
        decision = self.decide(target)
        now = self._clock.now()
        signals: dict[str, object] = {}
        for name, source in entry.sources.items():
            sample = entry.samples.get(name)
            signals[name] = {
                "unit": source.unit,
                "value": sample.value if sample else None,
                "age_s": round(now - sample.at, 3) if sample else None,
                "error": sample.error if sample else "no reading yet",
                "detail": sample.detail if sample else "",
                "threshold": entry.thresholds[name].model_dump(),
            }
        manual = entry.manual
        return {
            "signals": signals,
            "reason": decision.reason if decision else None,
            "critical": decision.critical if decision else [],
            "manual": None
            if manual is None
            else {
                "reason": manual.reason,
                "until_in_s": None if manual.until is None else round(manual.until - now, 1),
            },
            "held_for_s": round(self.held_for(target), 1),
            "history": {name: self.history(target, name, now=now) for name in entry.sources},
        }
