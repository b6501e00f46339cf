from __future__ import annotations

import pytest
import yaml

from orchestrator.domain.errors import SpecError
from orchestrator.signals_config import parse_signals

GOOD = """
app:
  replica_lag: {replicas: ["postgresql://u:s3cret@replica/app"], hold_at: 1.0, resume_below: 0.5}
  error_rate: {prometheus: "http://prom:9090", query: "vector(0)", hold_at: 0.02, critical_at: 0.1}
  custom: [{name: queue-depth, sql: "SELECT 1", hold_at: 100}]
  http: [{name: app-health, url: "http://app/healthz"}]
  policy: {pause_after_s: 60}
"""


def test_a_full_file_parses_and_keeps_secrets_secret() -> None:
    signals = parse_signals(yaml.safe_load(GOOD))["app"]
    assert signals.replica_lag is not None and signals.replica_lag.resume_at == 0.5
    assert "s3cret" not in repr(signals)
    assert signals.replica_lag.replicas[0].get_secret_value().endswith("@replica/app")
    assert signals.http[0].hold_at == 1.0
    assert signals.policy.pause_after_s == 60


@pytest.mark.parametrize(
    ("text", "path"),
    [
        ("app: {replica_lag: {replicas: [], hold_at: 1}}", "OSCTL_SIGNALS.app.replica_lag.replicas"),
        ("app: {replica_lag: {replicas: [x], hold_at: -1}}", "OSCTL_SIGNALS.app.replica_lag.hold_at"),
        ("app: {error_rate: {prometheus: p, hold_at: 1}}", "OSCTL_SIGNALS.app.error_rate.query"),
        ("app: {replica_lagg: {}}", "OSCTL_SIGNALS.app.replica_lagg"),
        ("app: {custom: [{name: Bad Name, sql: x, hold_at: 1}]}", "OSCTL_SIGNALS.app.custom.0.name"),
    ],
)
def test_bad_files_name_the_field(text: str, path: str) -> None:
    with pytest.raises(SpecError) as refused:
        parse_signals(yaml.safe_load(text))
    assert path in [field for field, _ in refused.value.problems]


def test_nothing_configured_is_no_signals() -> None:
    assert parse_signals(None) == {}
