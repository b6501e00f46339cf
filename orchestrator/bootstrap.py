"""Wiring: the only module that imports both the engine and the adapters."""

from __future__ import annotations

from collections.abc import Callable

from adapters.mysql.target import MysqlTarget
from adapters.postgres.target import PostgresTarget
from adapters.slack import build_notifier
from adapters.statestore.store import SqlStateStore
from orchestrator.config import Settings, TargetConfig
from orchestrator.engine.runner import RetryPolicy
from orchestrator.ports import TargetDatabase
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
    store = SqlStateStore(settings.state_url)
    notifier = build_notifier(
        bot_token=settings.slack_bot_token.get_secret_value() if settings.slack_bot_token else None,
        channel=settings.slack_channel,
        webhook_url=settings.slack_webhook_url.get_secret_value() if settings.slack_webhook_url else None,
        base_url=settings.slack_base_url,
        save_ref=store.set_notification_ref,
    )
    return MigrationService(store, build_targets(settings), notifier, retry=retry)
