"""Wiring: the only module that imports both the engine and the adapters."""

from __future__ import annotations

from collections.abc import Callable

from adapters.mysql.target import MysqlTarget
from adapters.mysql.usage import MysqlUsageReader
from adapters.postgres.read_rate import PgReadRateProbe
from adapters.postgres.target import PostgresTarget
from adapters.postgres.usage import PgUsageReader
from adapters.signals.custom_sql import CustomSqlSource
from adapters.signals.http_check import HttpCheckSource
from adapters.signals.load import (
    MysqlThreadsRunningSource,
    PgActiveSessionsSource,
    PgLongestTransactionSource,
)
from adapters.signals.mysql_replica_lag import MysqlReplicaLagSource
from adapters.signals.pg_replica_lag import PgReplicaByteLagSource, PgReplicaLagSource
from adapters.signals.prometheus import PrometheusQuerySource
from adapters.slack import build_notifier
from adapters.statestore.leader import PostgresLeadership
from adapters.statestore.store import SqlStateStore
from adapters.webhooks import FanOutNotifier, SignedWebhookNotifier
from orchestrator.access import TokenBook
from orchestrator.config import Settings, TargetConfig
from orchestrator.domain.errors import SpecError
from orchestrator.domain.throttle import Threshold
from orchestrator.engine.clock import SystemClock
from orchestrator.engine.contract_proof import UsageReader
from orchestrator.engine.policy import PolicyEnforcer
from orchestrator.engine.runner import RetryPolicy
from orchestrator.engine.throttler import Throttler
from orchestrator.leadership import SingleReplicaLeadership, default_identity
from orchestrator.lint.live import RateProbe
from orchestrator.ports import Leadership, Notifier, SignalSource, TargetDatabase
from orchestrator.runbooks.loader import RunbookCatalogue
from orchestrator.service import MigrationService, TargetRegistry
from orchestrator.signals_config import TargetSignals


def _factory(target: TargetConfig) -> Callable[[], TargetDatabase]:
    dsn = target.dsn.get_secret_value()
    if target.engine == "mysql":
        return lambda: MysqlTarget(dsn)
    return lambda: PostgresTarget(dsn)


def build_targets(settings: Settings) -> TargetRegistry:
    return TargetRegistry(
        {name: (target.engine, _factory(target)) for name, target in settings.targets.items()}
    )


def build_service(
    settings: Settings, *, retry: RetryPolicy | None = None, runbooks: RunbookCatalogue | None = None
) -> MigrationService:
    identity = settings.replica_id or default_identity()
    store = SqlStateStore(settings.state_url, application_name=f"osctl {identity}")
    notifier: Notifier = build_notifier(
        bot_token=settings.slack_bot_token.get_secret_value() if settings.slack_bot_token else None,
        channel=settings.slack_channel,
        webhook_url=settings.slack_webhook_url.get_secret_value() if settings.slack_webhook_url else None,
        base_url=settings.slack_base_url,
        save_ref=store.set_notification_ref,
    )
    if settings.webhook_urls:
        if settings.webhook_secret is None:
            raise SpecError([("OSCTL_WEBHOOK_SECRET", "webhooks are signed: set a secret with the URLs")])
        webhooks = SignedWebhookNotifier(
            [url.get_secret_value() for url in settings.webhook_urls],
            settings.webhook_secret.get_secret_value(),
        )
        notifier = FanOutNotifier([notifier, webhooks])
    leadership: Leadership
    if settings.elect_leader:
        if not settings.postgres_state:
            raise SpecError([("OSCTL_LEADER_ELECTION", "leader election needs the PostgreSQL state store")])
        leadership = PostgresLeadership(
            settings.state_url,
            identity,
            lock_key=settings.leader_lock_key,
            lease_seconds=settings.leader_lease_seconds,
            retry_seconds=settings.leader_retry_seconds,
        )
    else:
        leadership = SingleReplicaLeadership(store, identity)
    throttler = build_throttler(settings)
    service = MigrationService(
        store,
        build_targets(settings),
        notifier,
        retry=retry,
        leadership=leadership,
        windows=settings.windows,
        windowed_stages=settings.windowed_stages,
        max_copying=_copy_limits(settings),
        throttle=throttler,
        direct_limits=settings.direct_limits,
        usage_readers=build_usage_readers(settings),
        runbooks=runbooks,
    )
    if throttler is not None:
        service.add_companion(throttler)
        policies = {name: signals.policy for name, signals in settings.signals.items()}
        service.add_companion(PolicyEnforcer(service, throttler, policies))
    return service


def build_usage_readers(settings: Settings) -> Callable[[str], UsageReader | None]:
    """A reader of each target's usage statistics, for the contract safety proof."""

    def open_reader(name: str) -> UsageReader | None:
        target = settings.targets.get(name)
        if target is None:
            return None
        dsn = target.dsn.get_secret_value()
        return MysqlUsageReader(dsn) if target.engine == "mysql" else PgUsageReader(dsn)

    return open_reader


def open_plan_target(dsn: str) -> tuple[TargetDatabase, RateProbe]:
    """What `osctl plan --target-dsn` reads: the target (PostgreSQL) and a read-rate probe on it."""
    return PostgresTarget(dsn), PgReadRateProbe(dsn)


def build_throttler(settings: Settings) -> Throttler | None:
    """One Throttler polling every configured signal of every target; None when none is configured."""
    if not settings.signals:
        return None
    throttler = Throttler(SystemClock())
    for name, signals in settings.signals.items():
        target = settings.targets.get(name)
        if target is None:
            raise SpecError(
                [(f"OSCTL_SIGNALS.{name}", f"no target {name!r} is configured (OSCTL_TARGET_...)")]
            )
        for source, threshold in _sources(target, signals):
            throttler.add_signal(name, source, threshold)
    return throttler


def _sources(target: TargetConfig, signals: TargetSignals) -> list[tuple[SignalSource, Threshold]]:
    dsn = target.dsn.get_secret_value()
    mysql = target.engine == "mysql"
    found: list[tuple[SignalSource, Threshold]] = []
    if signals.replica_lag is not None:
        lag = signals.replica_lag
        several = len(lag.replicas) > 1
        for number, replica in enumerate(lag.replicas, start=1):
            suffix = f"-{number}" if several else ""
            if mysql:
                found.append(
                    (MysqlReplicaLagSource(dsn, replica.get_secret_value(), name=f"replica-lag{suffix}"), lag)
                )
                continue
            found.append(
                (PgReplicaLagSource(dsn, replica.get_secret_value(), name=f"replica-lag{suffix}"), lag)
            )
            if lag.bytes_hold_at is not None:
                by_bytes = Threshold(hold_at=lag.bytes_hold_at, stale_after_s=lag.stale_after_s)
                source = PgReplicaByteLagSource(
                    dsn, replica.get_secret_value(), name=f"replica-lag-bytes{suffix}"
                )
                found.append((source, by_bytes))
    if signals.error_rate is not None:
        rate = signals.error_rate
        found.append((PrometheusQuerySource(rate.prometheus, rate.query, name="error-rate"), rate))
    if signals.active_sessions is not None and not mysql:
        found.append((PgActiveSessionsSource(dsn), signals.active_sessions))
    if signals.threads_running is not None and mysql:
        found.append((MysqlThreadsRunningSource(dsn), signals.threads_running))
    if signals.longest_transaction is not None and not mysql:
        found.append((PgLongestTransactionSource(dsn), signals.longest_transaction))
    for custom in signals.custom:
        query_dsn = custom.dsn.get_secret_value() if custom.dsn else dsn
        found.append((CustomSqlSource(custom.name, query_dsn, custom.sql), custom))
    for check in signals.http:
        found.append((HttpCheckSource(check.url, name=check.name), check))
    return found


def _copy_limits(settings: Settings) -> int | dict[str, int]:
    if not settings.max_copying_per_target:
        return settings.max_copying
    return {
        name: settings.max_copying_per_target.get(name, settings.max_copying) for name in settings.targets
    }


def build_tokens(settings: Settings) -> TokenBook:
    return TokenBook(settings.tokens)
