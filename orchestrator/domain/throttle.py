"""The throttle decision: latest samples in, hold or proceed out, with the reasons. Pure.

Fails closed: a signal with no reading, a failed reading or a stale one holds work, because a
migration that cannot see the replicas or the application must not assume they are fine.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from pydantic import BaseModel, ConfigDict, Field, model_validator


@dataclass(frozen=True)
class Sample:
    """One reading of one signal. `value` None means no data (which holds work, never passes it)."""

    value: float | None
    at: float  # the reader's monotonic clock when the reading was taken
    error: str | None = None  # why there is no value (unreachable, NaN, query failed)
    detail: str = ""  # what a person wants next to the number, e.g. "replica 127.0.0.1:55433"


class Threshold(BaseModel):
    """When one signal holds work. Values at or above `hold_at` hold; once holding, work resumes only
    below `resume_below` (hysteresis, so a value hovering at the line does not flap)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    hold_at: float = Field(gt=0, description="Hold when the value is at or above this.")
    resume_below: float | None = Field(default=None, gt=0, description="Resume below this (default hold_at).")
    sustained_s: float = Field(default=0.0, ge=0, description="A breach must last this long before it holds.")
    stale_after_s: float = Field(default=10.0, gt=0, description="A reading older than this holds.")
    critical_at: float | None = Field(default=None, gt=0, description="Feeds the policy (pause, roll back).")
    critical_sustained_s: float = Field(default=60.0, ge=0)

    @model_validator(mode="after")
    def _resume_not_above_hold(self) -> Threshold:
        if self.resume_below is not None and self.resume_below > self.hold_at:
            raise ValueError("resume_below must not be above hold_at")
        return self

    @property
    def resume_at(self) -> float:
        return self.resume_below if self.resume_below is not None else self.hold_at


@dataclass(frozen=True)
class SignalState:
    """What the decision remembers about one signal between two calls."""

    holding: bool = False
    breach_since: float | None = None
    critical_since: float | None = None


@dataclass(frozen=True)
class ManualHold:
    reason: str
    until: float | None = None  # monotonic expiry; None holds until lifted


@dataclass(frozen=True)
class Decision:
    reasons: list[str]
    states: dict[str, SignalState]
    critical: list[str] = field(default_factory=list)  # signals critical for their sustained time

    @property
    def hold(self) -> bool:
        return bool(self.reasons)

    @property
    def reason(self) -> str | None:
        return "; ".join(self.reasons) or None


def format_value(value: float, unit: str) -> str:
    if unit == "s":
        if value < 1:
            return f"{value:.3g}s"  # 0.05s stays 0.05s rather than rounding to a misleading 0.1s
        return f"{value:.1f}s" if value < 100 else f"{value:.0f}s"
    if unit == "ratio":
        return f"{value:.3g}"
    if unit == "bytes":
        return f"{value / 1_048_576:.1f}MiB" if value >= 1_048_576 else f"{value:.0f}B"
    return f"{value:g}"


def decide(
    thresholds: Mapping[str, Threshold],
    units: Mapping[str, str],
    samples: Mapping[str, Sample | None],
    states: Mapping[str, SignalState],
    now: float,
    manual: ManualHold | None = None,
) -> Decision:
    reasons: list[str] = []
    critical: list[str] = []
    new_states: dict[str, SignalState] = {}
    if manual is not None and (manual.until is None or now < manual.until):
        reasons.append(f"manual: {manual.reason}")
    for name, threshold in sorted(thresholds.items()):
        unit = units.get(name, "")
        state = states.get(name, SignalState())
        sample = samples.get(name)
        if sample is None or sample.value is None or sample.value != sample.value:  # None or NaN
            why = sample.error if sample is not None and sample.error else "no reading yet"
            reasons.append(f"{name} unknown ({why})")
            new_states[name] = replace(state, holding=True)
            continue
        age = now - sample.at
        if age > threshold.stale_after_s:
            reasons.append(f"{name} stale (last reading {age:.1f}s ago)")
            new_states[name] = replace(state, holding=True)
            continue
        value = sample.value
        breach_since = state.breach_since if value >= threshold.hold_at else None
        if value >= threshold.hold_at and breach_since is None:
            breach_since = now
        if state.holding:
            holding = value >= threshold.resume_at
        else:
            holding = breach_since is not None and now - breach_since >= threshold.sustained_s
        critical_since = None
        if threshold.critical_at is not None and value >= threshold.critical_at:
            critical_since = state.critical_since if state.critical_since is not None else now
            if now - critical_since >= threshold.critical_sustained_s:
                critical.append(
                    f"{name} {format_value(value, unit)} >= {format_value(threshold.critical_at, unit)}"
                )
        if holding:
            line = threshold.hold_at if value >= threshold.hold_at else threshold.resume_at
            sign = ">=" if value >= threshold.hold_at else "not yet <"
            reasons.append(f"{name} {format_value(value, unit)} {sign} {format_value(line, unit)}")
        new_states[name] = SignalState(
            holding=holding, breach_since=breach_since, critical_since=critical_since
        )
    return Decision(reasons=reasons, states=new_states, critical=critical)


class ThrottlePolicy(BaseModel):
    """What happens to a migration beyond holding: pause after long holds, roll back on a critical breach."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    pause_after_s: float | None = Field(
        default=600.0, gt=0, description="Pause the migration (and tell people) after holding this long."
    )
    auto_rollback: bool = Field(
        default=True, description="On a sustained critical breach before contract, roll back by itself."
    )


@dataclass(frozen=True)
class PolicyAction:
    action: str  # "pause" | "rollback" | "page"
    reason: str


# Before contract everything done is reversible by design; from contract on a human decides.
_BEFORE_CONTRACT = {
    "expanding",
    "awaiting_deploy",
    "awaiting_backfill",
    "backfilling",
    "awaiting_contract",
    "paused",
}
_WORKING = {"expanding", "backfilling", "contracting"}


def policy_action(
    status: str, held_for_s: float, critical: list[str], policy: ThrottlePolicy
) -> PolicyAction | None:
    if critical:
        why = "; ".join(critical)
        if status in _BEFORE_CONTRACT and policy.auto_rollback:
            return PolicyAction("rollback", f"critical: {why}")
        if status in _BEFORE_CONTRACT or status == "contracting":
            return PolicyAction("page", f"critical: {why}")
        return None
    if policy.pause_after_s is not None and status in _WORKING and held_for_s >= policy.pause_after_s:
        return PolicyAction("pause", f"throttled for {held_for_s:.0f}s (limit {policy.pause_after_s:.0f}s)")
    return None
