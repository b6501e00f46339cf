"""Settings from a plain mapping (no real environment needed), and password redaction everywhere."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import SecretStr

from orchestrator.config import DEFAULT_STATE_URL, TargetConfig, engine_of, load_settings, redact_dsn
from orchestrator.domain.errors import SpecError
from orchestrator.logging import scrub

PASSWORD = "hunter2-Secret"
DSN = f"postgresql://app_user:{PASSWORD}@db.internal:5432/app?sslmode=require"


# --- load_settings -----------------------------------------------------------------------------


def test_a_target_from_one_variable() -> None:
    settings = load_settings({"OSCTL_TARGET_APP": "postgresql://u:pw@h/db"})
    assert list(settings.targets) == ["app"]
    target = settings.targets["app"]
    assert (target.name, target.engine) == ("app", "postgres")
    assert target.dsn.get_secret_value() == "postgresql://u:pw@h/db"


@pytest.mark.parametrize(
    ("variable", "dsn", "name", "engine"),
    [
        ("OSCTL_TARGET_APP", "postgres://u@h/db", "app", "postgres"),
        ("OSCTL_TARGET_BILLING_EU", "postgresql+asyncpg://u@h/db", "billing-eu", "postgres"),
        ("OSCTL_TARGET_SHOP", "mysql://u@h/shop", "shop", "mysql"),
        ("OSCTL_TARGET_LEGACY", "mysql+pymysql://u@h/shop", "legacy", "mysql"),
        ("OSCTL_TARGET_MARIA", "mariadb://u@h/shop", "maria", "mysql"),
    ],
)
def test_target_names_and_engines(variable: str, dsn: str, name: str, engine: str) -> None:
    settings = load_settings({variable: dsn})
    assert settings.targets[name].engine == engine
    assert settings.targets[name].name == name


def test_several_targets_and_unrelated_variables() -> None:
    settings = load_settings(
        {
            "OSCTL_TARGET_APP": "postgresql://u@h/app",
            "OSCTL_TARGET_SHOP": "mysql://u@h/shop",
            "OSCTL_TARGETS": "ignored",  # not OSCTL_TARGET_<NAME>
            "PATH": "/usr/bin",
        }
    )
    assert sorted(settings.targets) == ["app", "shop"]


def test_an_empty_target_variable_is_no_target() -> None:
    assert load_settings({"OSCTL_TARGET_APP": ""}).targets == {}


@pytest.mark.parametrize("dsn", ["oracle://u@h/db", "sqlite:///x.db", "h:5432/db", ""])
def test_unsupported_scheme_is_refused(dsn: str) -> None:
    with pytest.raises(SpecError) as caught:
        engine_of(dsn)
    [(path, message)] = caught.value.problems
    assert path == "target_dsn"
    assert "unsupported DSN scheme" in message


def test_an_unsupported_target_dsn_fails_loading() -> None:
    with pytest.raises(SpecError):
        load_settings({"OSCTL_TARGET_APP": "oracle://u:pw@h/db"})


def test_defaults() -> None:
    settings = load_settings({})
    assert settings.state_url == DEFAULT_STATE_URL
    assert settings.targets == {}
    assert (settings.host, settings.port, settings.api_url) == ("127.0.0.1", 8080, "http://127.0.0.1:8080")
    assert (settings.log_format, settings.log_level) == ("json", "info")
    assert settings.slack_bot_token is None
    assert settings.slack_webhook_url is None
    assert settings.slack_channel is None


def test_service_settings() -> None:
    settings = load_settings(
        {
            "OSCTL_STATE_URL": "postgresql+asyncpg://osctl@state/osctl",
            "OSCTL_HOST": "0.0.0.0",
            "OSCTL_PORT": "9000",
            "OSCTL_LOG_FORMAT": "console",
            "OSCTL_LOG_LEVEL": "debug",
            "OSCTL_SLACK_CHANNEL": "#migrations",
            "OSCTL_SLACK_BOT_TOKEN": "xoxb-1",
            "OSCTL_SLACK_WEBHOOK_URL": "https://hooks.example/T/B/x",
        }
    )
    assert settings.state_url == "postgresql+asyncpg://osctl@state/osctl"
    assert (settings.host, settings.port) == ("0.0.0.0", 9000)
    assert settings.api_url == "http://0.0.0.0:9000"  # derived from host and port
    assert (settings.log_format, settings.log_level) == ("console", "debug")
    assert settings.slack_channel == "#migrations"
    assert settings.slack_bot_token is not None
    assert settings.slack_bot_token.get_secret_value() == "xoxb-1"
    assert settings.slack_webhook_url is not None
    assert settings.slack_webhook_url.get_secret_value() == "https://hooks.example/T/B/x"


def test_explicit_api_url_wins_and_unknown_log_format_is_json() -> None:
    settings = load_settings({"OSCTL_API_URL": "https://osctl.example", "OSCTL_LOG_FORMAT": "xml"})
    assert settings.api_url == "https://osctl.example"
    assert settings.log_format == "json"


def test_secrets_from_files(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("xoxb-from-file\n")
    webhook = tmp_path / "webhook"
    webhook.write_text("  https://hooks.example/T/B/y  \n")
    settings = load_settings(
        {"OSCTL_SLACK_BOT_TOKEN_FILE": str(token), "OSCTL_SLACK_WEBHOOK_URL_FILE": str(webhook)}
    )
    assert settings.slack_bot_token is not None
    assert settings.slack_bot_token.get_secret_value() == "xoxb-from-file"
    assert settings.slack_webhook_url is not None
    assert settings.slack_webhook_url.get_secret_value() == "https://hooks.example/T/B/y"


def test_a_variable_wins_over_its_file(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("from-file")
    settings = load_settings({"OSCTL_SLACK_BOT_TOKEN": "from-env", "OSCTL_SLACK_BOT_TOKEN_FILE": str(token)})
    assert settings.slack_bot_token is not None
    assert settings.slack_bot_token.get_secret_value() == "from-env"


def test_target_dsn_from_a_file_next_to_an_empty_variable(tmp_path: Path) -> None:
    dsn_file = tmp_path / "dsn"
    dsn_file.write_text(DSN + "\n")
    settings = load_settings({"OSCTL_TARGET_APP": "", "OSCTL_TARGET_APP_FILE": str(dsn_file)})
    assert settings.targets["app"].dsn.get_secret_value() == DSN
    assert settings.targets["app"].engine == "postgres"


def test_target_dsn_from_a_file_alone(tmp_path: Path) -> None:
    dsn_file = tmp_path / "dsn"
    dsn_file.write_text(DSN + "\n")
    settings = load_settings({"OSCTL_TARGET_APP_FILE": str(dsn_file)})
    assert "app" in settings.targets
    assert settings.targets["app"].dsn.get_secret_value() == DSN


def test_none_reads_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OSCTL_TARGET_UNITTEST_ONLY", "postgresql://u@h/db")
    assert load_settings().targets["unittest-only"].engine == "postgres"


# --- secrets never shown -----------------------------------------------------------------------


def test_secret_str_hides_the_dsn() -> None:
    target = TargetConfig(name="app", engine="postgres", dsn=SecretStr(DSN))
    for rendered in (
        repr(target),
        str(target),
        target.model_dump_json(),
        json.dumps(target.model_dump(mode="json")),
    ):
        assert PASSWORD not in rendered
        assert "db.internal" not in rendered  # the whole DSN is secret, not just the password
    assert target.dsn.get_secret_value() == DSN


def test_settings_never_show_secrets() -> None:
    settings = load_settings(
        {
            "OSCTL_TARGET_APP": DSN,
            "OSCTL_SLACK_BOT_TOKEN": "xoxb-very-secret",
            "OSCTL_SLACK_WEBHOOK_URL": "https://h/s3cr3t",
        }
    )
    for rendered in (repr(settings), str(settings), settings.model_dump_json(), str(settings.model_dump())):
        assert PASSWORD not in rendered
        assert "xoxb-very-secret" not in rendered
        assert "s3cr3t" not in rendered


# --- redact_dsn --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dsn", "redacted"),
    [
        ("postgresql://u:pw@h/db", "postgresql://u:***@h/db"),
        (DSN, "postgresql://app_user:***@db.internal:5432/app?sslmode=require"),
        (
            "postgresql://u:pw@h:5433/db?password=pw&sslmode=require",
            "postgresql://u:***@h:5433/db?password=***&sslmode=require",
        ),
        ("postgresql://h/db?user=u&password=secret", "postgresql://h/db?user=u&password=***"),
        ("postgresql://h/db?user=u&PASSWORD=secret&x=1", "postgresql://h/db?user=u&PASSWORD=***&x=1"),
        ("mysql://:pw@h:3306/shop", "mysql://***@h:3306/shop"),
        ("mysql+pymysql://root:pw@h/shop", "mysql+pymysql://root:***@h/shop"),
        ("postgresql://u:p%40ss@h/db", "postgresql://u:***@h/db"),
        ("postgresql://u:p@ss@h/db", "postgresql://u:***@h/db"),  # an unencoded '@' in the password
        ("postgresql://u@h/db", "postgresql://u@h/db"),  # nothing to hide: unchanged
        ("postgresql://u:@h/db", "postgresql://u:***@h/db"),
    ],
)
def test_redact_dsn(dsn: str, redacted: str) -> None:
    assert redact_dsn(dsn) == redacted


@pytest.mark.parametrize(
    "dsn", ["postgresql:///db?host=/run/postgresql", "postgresql:///db?host=/run/postgresql&password=x"]
)
def test_redact_dsn_keeps_an_empty_authority(dsn: str) -> None:
    assert redact_dsn(dsn).startswith("postgresql:///db?host=/run/postgresql")


def test_redact_dsn_keeps_ipv6_brackets() -> None:
    assert redact_dsn("postgresql://u:pw@[::1]:5432/db") == "postgresql://u:***@[::1]:5432/db"


@pytest.mark.parametrize("password", ["pa/ss", "pa#ss", "pa?ss"])
def test_redact_dsn_never_returns_the_password(password: str) -> None:
    assert password not in redact_dsn(f"postgresql://u:{password}@h/db")


# --- scrub -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "scrubbed"),
    [
        ("connect to postgresql://u:pw@h/db failed", "connect to postgresql://u:***@h/db failed"),
        (f"dsn={DSN}", "dsn=postgresql://app_user:***@db.internal:5432/app?sslmode=require"),
        ("host=h password=secret user=u", "host=h password=*** user=u"),
        ("Password=abc;host=h", "Password=***;host=h"),
        ("?password=abc&sslmode=require", "?password=***&sslmode=require"),
        (
            "a mysql://root:x@h1/db and postgresql://u:y@h2/db",
            "a mysql://root:***@h1/db and postgresql://u:***@h2/db",
        ),
        ("postgresql://u:pa/ss@h/db", "postgresql://u:***@h/db"),
        (
            "postgresql://u@h/db and https://example.com/a:b",
            "postgresql://u@h/db and https://example.com/a:b",
        ),
        ("no secrets here", "no secrets here"),
    ],
)
def test_scrub(text: str, scrubbed: str) -> None:
    assert scrub(text) == scrubbed


def test_scrub_hides_a_password_containing_at() -> None:
    assert "ss@h" not in scrub("postgresql://u:p@ss@h/db")
    assert scrub("postgresql://u:p@ss@h/db") == "postgresql://u:***@h/db"
