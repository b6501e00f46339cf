"""Wiring: the only module that imports both the engine and the adapters."""

from __future__ import annotations

from collections.abc import Callable

from adapters.mysql.target import MysqlTarget
from adapters.postgres.target import PostgresTarget
from adapters.slack import build_notifier
from adapters.statestore.leader import PostgresLeadership
from adapters.statestore.store import SqlStateStore
from adapters.webhooks import FanOutNotifier, SignedWebhookNotifier
from orchestrator.access import TokenBook
from orchestrator.config import Settings, TargetConfig
from orchestrator.domain.errors import SpecError
from orchestrator.engine.runner import RetryPolicy
from orchestrator.leadership import SingleReplicaLeadership, default_identity
from orchestrator.ports import Leadership, Notifier, TargetDatabase
from orchestrator.service import MigrationService, TargetRegistry


def _factory(target: TargetConfig) -> Callable[[], TargetDatabase]:
    dsn = target.dsn.get_secret_value()
    if target.engine == "mysql":
        return lambda: MysqlTarget(dsn)
    return lambda: PostgresTarget(dsn)


def build_targets(settings: Settings) -> TargetRegistry:
    return TargetRegistry(
        {name: (target.engine, _factory(target)) for name, target in settings.targets.items()}
    )


def build_service(settings: Settings, *, retry: RetryPolicy | None = None) -> MigrationService:
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
    return MigrationService(
        store,
        build_targets(settings),
        notifier,
        retry=retry,
        leadership=leadership,
        windows=settings.windows,
        windowed_stages=settings.windowed_stages,
        max_copying=_copy_limits(settings),
    )


def _copy_limits(settings: Settings) -> int | dict[str, int]:
    if not settings.max_copying_per_target:
        return settings.max_copying
    return {
        name: settings.max_copying_per_target.get(name, settings.max_copying) for name in settings.targets
    }


def build_tokens(settings: Settings) -> TokenBook:
    return TokenBook(settings.tokens)
