"""Settings from the environment (12-factor: Kubernetes secrets arrive as variables or files)."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from orchestrator.access import Scope, TokenRecord, parse_tokens
from orchestrator.domain.direct_ddl import DEFAULT_DIRECT_MAX_BYTES, DEFAULT_DIRECT_MAX_ROWS, DirectLimits
from orchestrator.domain.errors import SpecError
from orchestrator.domain.plan import Stage
from orchestrator.signals_config import TargetSignals, parse_signals
from orchestrator.slack_actions import parse_users
from orchestrator.windows import DEFAULT_WINDOWED_STAGES, MaintenanceWindow, parse_windows

TARGET_PREFIX = "OSCTL_TARGET_"
WINDOWS_PREFIX = "OSCTL_WINDOWS_"
MAX_COPYING_PREFIX = "OSCTL_MAX_COPYING_"
DEFAULT_STATE_URL = "sqlite+aiosqlite:///.osctl/state.db"
DEFAULT_LEADER_LOCK_KEY = 0x6F7363746C01


class TargetConfig(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    engine: Literal["postgres", "mysql"]
    dsn: SecretStr


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True)

    state_url: str = DEFAULT_STATE_URL
    targets: dict[str, TargetConfig] = Field(default_factory=dict)
    host: str = "127.0.0.1"
    port: int = 8080
    api_url: str = "http://127.0.0.1:8080"
    log_format: Literal["json", "console"] = "json"
    log_level: str = "info"
    slack_bot_token: SecretStr | None = None
    slack_channel: str | None = None
    slack_webhook_url: SecretStr | None = None
    slack_base_url: str | None = None
    # Buttons on the Slack message: requests signed with this secret; Slack user ID -> scopes.
    slack_signing_secret: SecretStr | None = None
    slack_users: dict[str, frozenset[Scope]] = Field(default_factory=dict)
    # Service (issue 7): leadership, access, windows, concurrency, webhooks.
    replica_id: str | None = None
    leader_election: bool | None = None  # None: on when the state store is PostgreSQL
    leader_lock_key: int = DEFAULT_LEADER_LOCK_KEY
    leader_lease_seconds: float = 10.0
    leader_retry_seconds: float = 1.0
    tokens: tuple[TokenRecord, ...] = ()
    windows: dict[str, tuple[MaintenanceWindow, ...]] = Field(default_factory=dict)
    windowed_stages: frozenset[Stage] = DEFAULT_WINDOWED_STAGES
    max_copying: int = 2
    max_copying_per_target: dict[str, int] = Field(default_factory=dict)
    webhook_urls: tuple[SecretStr, ...] = ()
    webhook_secret: SecretStr | None = None
    # Throttling (issue 5): which signals hold work on which target, from OSCTL_SIGNALS[_FILE].
    signals: dict[str, TargetSignals] = Field(default_factory=dict)
    # MySQL alter_table, strategy auto: the largest table the server may rebuild or index in place
    # itself (one unthrottled statement); larger ones go through gh-ost or pt-osc.
    direct_limits: DirectLimits = Field(default_factory=DirectLimits)

    @property
    def postgres_state(self) -> bool:
        return self.state_url.startswith("postgresql")

    @property
    def elect_leader(self) -> bool:
        return self.postgres_state if self.leader_election is None else self.leader_election


def engine_of(dsn: str) -> Literal["postgres", "mysql"]:
    scheme = urlsplit(dsn).scheme.split("+")[0]
    if scheme in ("postgres", "postgresql"):
        return "postgres"
    if scheme in ("mysql", "mariadb"):
        return "mysql"
    raise SpecError([("target_dsn", f"unsupported DSN scheme {scheme!r}: use postgresql:// or mysql://")])


def redact_dsn(dsn: str) -> str:
    """The DSN with any password removed: safe for logs, the store, the API and Slack.

    Works on the text rather than through urlsplit, which gives up on passwords holding '/', '?' or
    '#': everything between the user name and the last '@' of the authority is the password.
    """
    redacted = re.sub(r"(?i)(password=)[^&\s]*", r"\1***", dsn)
    scheme, separator, rest = redacted.partition("://")
    if not separator or "@" not in rest:
        return redacted
    credentials, _, host_and_rest = rest.rpartition("@")
    user, colon, _password = credentials.partition(":")
    if not colon:
        return redacted
    return f"{scheme}://{user + ':' if user else ''}***@{host_and_rest}"


def _secret(environ: Mapping[str, str], name: str) -> SecretStr | None:
    """`NAME` or, for mounted secrets, `NAME_FILE` naming a file that holds the value."""
    if environ.get(name):
        return SecretStr(environ[name])
    path = environ.get(f"{name}_FILE")
    if path:
        return SecretStr(Path(path).read_text().strip())
    return None


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if environ is None else environ
    targets: dict[str, TargetConfig] = {}
    for key in env:
        if key.startswith(TARGET_PREFIX):
            base = key.removesuffix("_FILE")
            name = base.removeprefix(TARGET_PREFIX).lower().replace("_", "-")
            dsn = _secret(env, base)
            if dsn is not None:
                targets[name] = TargetConfig(name=name, engine=engine_of(dsn.get_secret_value()), dsn=dsn)
    port = int(env.get("OSCTL_PORT", "8080"))
    host = env.get("OSCTL_HOST", "127.0.0.1")
    state_url = _secret(env, "OSCTL_STATE_URL")
    return Settings(
        state_url=state_url.get_secret_value() if state_url else DEFAULT_STATE_URL,
        targets=targets,
        host=host,
        port=port,
        api_url=env.get("OSCTL_API_URL", f"http://{host}:{port}"),
        log_format="console" if env.get("OSCTL_LOG_FORMAT") == "console" else "json",
        log_level=env.get("OSCTL_LOG_LEVEL", "info"),
        slack_bot_token=_secret(env, "OSCTL_SLACK_BOT_TOKEN"),
        slack_channel=env.get("OSCTL_SLACK_CHANNEL"),
        slack_webhook_url=_secret(env, "OSCTL_SLACK_WEBHOOK_URL"),
        slack_base_url=env.get("OSCTL_SLACK_BASE_URL"),
        slack_signing_secret=_secret(env, "OSCTL_SLACK_SIGNING_SECRET"),
        slack_users=_slack_users(env),
        replica_id=env.get("OSCTL_REPLICA_ID") or env.get("OSCTL_POD_NAME") or None,
        leader_election=_flag(env, "OSCTL_LEADER_ELECTION"),
        leader_lock_key=int(env.get("OSCTL_LEADER_LOCK_KEY", str(DEFAULT_LEADER_LOCK_KEY))),
        leader_lease_seconds=float(env.get("OSCTL_LEADER_LEASE_SECONDS", "10")),
        leader_retry_seconds=float(env.get("OSCTL_LEADER_RETRY_SECONDS", "1")),
        tokens=tuple(_tokens(env)),
        windows=_windows(env),
        windowed_stages=_stages(env.get("OSCTL_WINDOW_STAGES")),
        max_copying=int(env.get("OSCTL_MAX_COPYING", "2")),
        max_copying_per_target={
            _target_name(key, MAX_COPYING_PREFIX): int(value)
            for key, value in env.items()
            if key.startswith(MAX_COPYING_PREFIX)
        },
        webhook_urls=tuple(SecretStr(url) for url in _split(_secret(env, "OSCTL_WEBHOOK_URLS"))),
        webhook_secret=_secret(env, "OSCTL_WEBHOOK_SECRET"),
        signals=_signals(env),
        direct_limits=DirectLimits(
            max_rows=_count(env, "OSCTL_DIRECT_MAX_ROWS", DEFAULT_DIRECT_MAX_ROWS),
            max_bytes=_count(env, "OSCTL_DIRECT_MAX_BYTES", DEFAULT_DIRECT_MAX_BYTES),
        ),
    )


_UNITS = {"": 1, "k": 1000, "m": 1000**2, "g": 1000**3, "ki": 1024, "mi": 1024**2, "gi": 1024**3}


def _count(env: Mapping[str, str], name: str, default: int) -> int:
    """A whole number, with an optional unit: 100000, 100k, 256Mi, 1G (bytes may end in B)."""
    text = env.get(name, "").strip()
    if not text:
        return default
    match = re.fullmatch(r"(\d+)\s*([kmg]i?)?b?", text.lower())
    if match is None:
        raise SpecError([(name, f"{text!r} is not a count: write e.g. 100000, 100k, 256Mi or 1G")])
    return int(match.group(1)) * _UNITS[match.group(2) or ""]


def _signals(env: Mapping[str, str]) -> dict[str, TargetSignals]:
    text = _secret(env, "OSCTL_SIGNALS")
    if text is None:
        return {}
    try:
        return parse_signals(yaml.safe_load(text.get_secret_value()))
    except yaml.YAMLError as error:
        raise SpecError([("OSCTL_SIGNALS", f"not valid YAML or JSON: {error}")]) from error


def _target_name(key: str, prefix: str) -> str:
    return key.removeprefix(prefix).lower().replace("_", "-")


def _flag(env: Mapping[str, str], name: str) -> bool | None:
    value = env.get(name, "").strip().lower()
    if not value:
        return None
    return value in ("1", "true", "yes", "on")


def _split(value: SecretStr | None) -> list[str]:
    if value is None:
        return []
    return [part for part in re.split(r"[\s,]+", value.get_secret_value()) if part]


def _tokens(env: Mapping[str, str]) -> list[TokenRecord]:
    """OSCTL_TOKENS[_FILE] (OSCTL_API_TOKENS[_FILE] as the chart names it): YAML or JSON."""
    text = _secret(env, "OSCTL_TOKENS") or _secret(env, "OSCTL_API_TOKENS")
    if text is None:
        return []
    try:
        return parse_tokens(yaml.safe_load(text.get_secret_value()))
    except (ValueError, yaml.YAMLError) as error:
        raise SpecError([("OSCTL_TOKENS", str(error))]) from error


def _slack_users(env: Mapping[str, str]) -> dict[str, frozenset[Scope]]:
    """OSCTL_SLACK_USERS[_FILE]: `{U012ABC: [oncall], U034DEF: [pipeline, oncall]}`, YAML or JSON."""
    text = _secret(env, "OSCTL_SLACK_USERS")
    if text is None:
        return {}
    try:
        return parse_users(yaml.safe_load(text.get_secret_value()))
    except (ValueError, yaml.YAMLError) as error:
        raise SpecError([("OSCTL_SLACK_USERS", str(error))]) from error


def _windows(env: Mapping[str, str]) -> dict[str, tuple[MaintenanceWindow, ...]]:
    timezone = env.get("OSCTL_WINDOW_TIMEZONE", "UTC")
    windows = {}
    for key, value in env.items():
        if key.startswith(WINDOWS_PREFIX) and value.strip():
            try:
                windows[_target_name(key, WINDOWS_PREFIX)] = tuple(parse_windows(value, timezone))
            except ValueError as error:
                raise SpecError([(key, str(error))]) from error
    return windows


def _stages(value: str | None) -> frozenset[Stage]:
    if not value:
        return DEFAULT_WINDOWED_STAGES
    try:
        return frozenset(Stage(part) for part in _split(SecretStr(value)))
    except ValueError:
        raise SpecError(
            [("OSCTL_WINDOW_STAGES", f"{value!r}: name stages such as contract,backfill")]
        ) from None
