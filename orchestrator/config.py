"""Settings from the environment (12-factor: Kubernetes secrets arrive as variables or files)."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from orchestrator.domain.errors import SpecError

TARGET_PREFIX = "OSCTL_TARGET_"
DEFAULT_STATE_URL = "sqlite+aiosqlite:///.osctl/state.db"


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
    return Settings(
        state_url=env.get("OSCTL_STATE_URL", DEFAULT_STATE_URL),
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
    )
