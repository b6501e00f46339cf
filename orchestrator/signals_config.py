"""Which signals throttle which target, from OSCTL_SIGNALS (YAML or JSON) or OSCTL_SIGNALS_FILE.

The file may hold replica DSNs with passwords, so it is read like the other secrets and never shown.

    app:                                   # a configured target
      replica_lag: {replicas: ["postgresql://...@replica-1/app"], hold_at: 1.0, resume_below: 0.5}
      error_rate:
        prometheus: http://prometheus:9090
        query: sum(rate(http_requests_total{code=~"5.."}[5m])) / sum(rate(http_requests_total[5m]))
        hold_at: 0.02
        critical_at: 0.10
        critical_sustained_s: 120
      active_sessions: {hold_at: 64}       # PostgreSQL; threads_running on MySQL
      longest_transaction: {hold_at: 300}
      custom: [{name: queue-depth, sql: "SELECT count(*) FROM jobs", hold_at: 10000}]
      http: [{name: app-health, url: "http://app/healthz", hold_at: 1}]
      policy: {pause_after_s: 600, auto_rollback: true}
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from orchestrator.domain.errors import SpecError
from orchestrator.domain.spec import spec_problems
from orchestrator.domain.throttle import Threshold, ThrottlePolicy


class _Signal(Threshold):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ReplicaLag(_Signal):
    replicas: list[SecretStr] = Field(min_length=1)
    bytes_hold_at: float | None = Field(
        default=None, gt=0, description="Also hold on WAL bytes behind (PostgreSQL)."
    )


class ErrorRate(_Signal):
    prometheus: str
    query: str = Field(min_length=1)


class CustomQuery(_Signal):
    name: str = Field(pattern=r"^[a-z][a-z0-9-]{0,40}$")
    sql: str = Field(min_length=1)
    dsn: SecretStr | None = Field(default=None, description="Defaults to the target itself.")


class HttpCheck(_Signal):
    name: str = Field(pattern=r"^[a-z][a-z0-9-]{0,40}$")
    url: str
    hold_at: float = 1.0


class TargetSignals(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    replica_lag: ReplicaLag | None = None
    error_rate: ErrorRate | None = None
    active_sessions: _Signal | None = None
    threads_running: _Signal | None = None
    longest_transaction: _Signal | None = None
    custom: list[CustomQuery] = Field(default_factory=list)
    http: list[HttpCheck] = Field(default_factory=list)
    policy: ThrottlePolicy = Field(default_factory=ThrottlePolicy)


def parse_signals(data: Any) -> dict[str, TargetSignals]:
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise SpecError([("OSCTL_SIGNALS", "a mapping of target name to its signals")])
    parsed: dict[str, TargetSignals] = {}
    problems: list[tuple[str, str]] = []
    for target, signals in data.items():
        try:
            parsed[str(target)] = TargetSignals.model_validate(signals or {})
        except ValidationError as error:
            problems.extend(
                (f"OSCTL_SIGNALS.{target}.{path}", message) for path, message in spec_problems(error)
            )
    if problems:
        raise SpecError(problems)
    return parsed
