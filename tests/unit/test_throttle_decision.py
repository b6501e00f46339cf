"""The throttle decision and policy as tables: thresholds, hysteresis, sustain, stale, no data, expiry."""

from __future__ import annotations

import pytest

from orchestrator.domain.throttle import (
    ManualHold,
    Sample,
    SignalState,
    Threshold,
    ThrottlePolicy,
    decide,
    policy_action,
)

LAG = Threshold(hold_at=1.0, resume_below=0.5)
UNITS = {"replica-lag": "s", "error-rate": "ratio"}


def run(
    sample: Sample | None, *, state: SignalState | None = None, now: float = 100.0, threshold: Threshold = LAG
) -> tuple[str | None, SignalState]:
    decision = decide(
        {"replica-lag": threshold},
        UNITS,
        {"replica-lag": sample},
        {"replica-lag": state or SignalState()},
        now,
    )
    return decision.reason, decision.states["replica-lag"]


@pytest.mark.parametrize(
    ("value", "holding_before", "expected"),
    [
        (0.2, False, None),
        (0.99, False, None),
        (1.0, False, "replica-lag 1.0s >= 1.0s"),
        (2.4, False, "replica-lag 2.4s >= 1.0s"),
        (0.7, True, "replica-lag 0.7s not yet < 0.5s"),  # hysteresis: still holding between the lines
        (0.49, True, None),
        (0.7, False, None),  # between the lines but not holding: stays released
    ],
)
def test_thresholds_with_hysteresis(value: float, holding_before: bool, expected: str | None) -> None:
    reason, state = run(Sample(value=value, at=100.0), state=SignalState(holding=holding_before))
    assert reason == expected
    assert state.holding is (expected is not None)


@pytest.mark.parametrize(
    ("sample", "expected"),
    [
        (None, "replica-lag unknown (no reading yet)"),
        (
            Sample(value=None, at=100.0, error="connection refused"),
            "replica-lag unknown (connection refused)",
        ),
        (Sample(value=float("nan"), at=100.0), "replica-lag unknown (no reading yet)"),
        (Sample(value=0.1, at=85.0), "replica-lag stale (last reading 15.0s ago)"),
    ],
)
def test_no_data_failures_and_stale_readings_hold(sample: Sample | None, expected: str) -> None:
    reason, state = run(sample)
    assert reason == expected
    assert state.holding


def test_a_breach_must_be_sustained_before_it_holds() -> None:
    slow = Threshold(hold_at=1.0, sustained_s=30)
    reason, state = run(Sample(value=5.0, at=100.0), threshold=slow, now=100.0)
    assert reason is None and state.breach_since == 100.0
    reason, state = run(Sample(value=5.0, at=129.0), state=state, threshold=slow, now=129.0)
    assert reason is None
    reason, state = run(Sample(value=5.0, at=130.0), state=state, threshold=slow, now=130.0)
    assert reason == "replica-lag 5.0s >= 1.0s"
    # A dip below the line resets the clock.
    reason, state = run(
        Sample(value=0.1, at=131.0), state=SignalState(breach_since=100.0), threshold=slow, now=131.0
    )
    assert state.breach_since is None


def test_manual_hold_until_it_expires() -> None:
    fine = {"replica-lag": Sample(value=0.0, at=100.0)}
    manual = ManualHold(reason="on-call: ticket 42", until=110.0)
    assert decide({"replica-lag": LAG}, UNITS, fine, {}, 105.0, manual).reason == "manual: on-call: ticket 42"
    assert decide({"replica-lag": LAG}, UNITS, fine, {}, 110.0, manual).reason is None
    assert decide({}, UNITS, {}, {}, 1e9, ManualHold("until lifted")).reason == "manual: until lifted"


def test_reasons_from_several_signals_are_all_given() -> None:
    thresholds = {"replica-lag": LAG, "error-rate": Threshold(hold_at=0.05)}
    samples = {"replica-lag": Sample(value=3.0, at=100.0), "error-rate": Sample(value=0.2, at=100.0)}
    decision = decide(thresholds, UNITS, samples, {}, 100.0)
    assert decision.reasons == ["error-rate 0.2 >= 0.05", "replica-lag 3.0s >= 1.0s"]


def test_critical_needs_its_own_sustained_time() -> None:
    threshold = Threshold(hold_at=0.05, critical_at=0.2, critical_sustained_s=60)
    thresholds, samples = {"error-rate": threshold}, {"error-rate": Sample(value=0.3, at=100.0)}
    first = decide(thresholds, UNITS, samples, {}, 100.0)
    assert first.critical == []
    later = decide(thresholds, UNITS, {"error-rate": Sample(value=0.3, at=160.0)}, first.states, 160.0)
    assert later.critical == ["error-rate 0.3 >= 0.2"]


def test_resume_below_above_hold_is_refused() -> None:
    with pytest.raises(ValueError, match="resume_below"):
        Threshold(hold_at=1.0, resume_below=2.0)


@pytest.mark.parametrize(
    ("status", "held", "critical", "policy", "expected"),
    [
        ("backfilling", 10.0, [], ThrottlePolicy(), None),
        ("backfilling", 600.0, [], ThrottlePolicy(), "pause"),
        ("awaiting_contract", 9999.0, [], ThrottlePolicy(), None),  # nothing running to pause
        ("backfilling", 0.0, ["error-rate 0.3 >= 0.2"], ThrottlePolicy(), "rollback"),
        ("awaiting_contract", 0.0, ["error-rate 0.3 >= 0.2"], ThrottlePolicy(), "rollback"),
        ("backfilling", 0.0, ["error-rate 0.3 >= 0.2"], ThrottlePolicy(auto_rollback=False), "page"),
        ("contracting", 0.0, ["error-rate 0.3 >= 0.2"], ThrottlePolicy(), "page"),
        ("completed", 0.0, ["error-rate 0.3 >= 0.2"], ThrottlePolicy(), None),
        ("backfilling", 1e6, [], ThrottlePolicy(pause_after_s=None), None),
    ],
)
def test_policy(
    status: str, held: float, critical: list[str], policy: ThrottlePolicy, expected: str | None
) -> None:
    action = policy_action(status, held, critical, policy)
    assert (action.action if action else None) == expected
