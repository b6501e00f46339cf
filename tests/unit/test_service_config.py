"""Service settings (issue 7) from the environment: tokens, windows, copy limits, leadership, webhooks."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.access import Scope, hash_token
from orchestrator.config import DEFAULT_LEADER_LOCK_KEY, load_settings
from orchestrator.domain.errors import SpecError
from orchestrator.domain.plan import Stage


def test_defaults_keep_local_use_simple() -> None:
    settings = load_settings({})
    assert settings.tokens == ()  # an open API, with a warning at start
    assert settings.windows == {}
    assert settings.max_copying == 2
    assert settings.elect_leader is False  # SQLite: one replica, always the leader
    assert settings.leader_lock_key == DEFAULT_LEADER_LOCK_KEY
    assert settings.webhook_urls == ()


def test_a_postgres_state_store_elects_a_leader_unless_told_not_to() -> None:
    url = "postgresql+asyncpg://osctl@state/osctl"
    assert load_settings({"OSCTL_STATE_URL": url}).elect_leader is True
    assert load_settings({"OSCTL_STATE_URL": url, "OSCTL_LEADER_ELECTION": "false"}).elect_leader is False


def test_the_state_url_can_come_from_a_mounted_secret(tmp_path: Path) -> None:
    secret = tmp_path / "state-url"
    secret.write_text("postgresql+asyncpg://osctl:pw@state/osctl\n")
    assert (
        load_settings({"OSCTL_STATE_URL_FILE": str(secret)}).state_url
        == "postgresql+asyncpg://osctl:pw@state/osctl"
    )


@pytest.mark.parametrize("variable", ["OSCTL_TOKENS_FILE", "OSCTL_API_TOKENS_FILE"])
def test_tokens_from_a_file(tmp_path: Path, variable: str) -> None:
    tokens = tmp_path / "tokens.yaml"
    tokens.write_text(f"release:\n  hash: {hash_token('t0k')}\n  scopes: [pipeline]\n")
    (record,) = load_settings({variable: str(tokens)}).tokens
    assert (record.name, record.scopes) == ("release", frozenset({Scope.PIPELINE}))


def test_a_bad_tokens_file_refuses_to_start() -> None:
    with pytest.raises(SpecError, match="unknown scope"):
        load_settings({"OSCTL_TOKENS": "release: {hash: '" + hash_token("x") + "', scopes: [everything]}"})


def test_windows_limits_and_webhooks_per_target() -> None:
    settings = load_settings(
        {
            "OSCTL_TARGET_BILLING_DB": "postgresql://u@h/db",
            "OSCTL_WINDOWS_BILLING_DB": "0 2 * * mon-fri for 2h; 0 3 * * sat for 1h",
            "OSCTL_WINDOW_STAGES": "contract,backfill",
            "OSCTL_MAX_COPYING": "3",
            "OSCTL_MAX_COPYING_BILLING_DB": "1",
            "OSCTL_WEBHOOK_URLS": "https://a.example/hook, https://b.example/hook?token=s3cret",
            "OSCTL_WEBHOOK_SECRET": "whsec",
            "OSCTL_POD_NAME": "osctl-7f9c-abcde",
        }
    )
    assert [window.describe() for window in settings.windows["billing-db"]] == [
        "0 2 * * mon-fri for 2h (UTC)",
        "0 3 * * sat for 1h (UTC)",
    ]
    assert settings.windowed_stages == {Stage.CONTRACT, Stage.BACKFILL}
    assert (settings.max_copying, settings.max_copying_per_target) == (3, {"billing-db": 1})
    assert [url.get_secret_value() for url in settings.webhook_urls][1].endswith("token=s3cret")
    assert "s3cret" not in repr(settings)
    assert settings.replica_id == "osctl-7f9c-abcde"


def test_a_bad_window_names_its_variable() -> None:
    with pytest.raises(SpecError) as caught:
        load_settings({"OSCTL_WINDOWS_APP": "0 2 * * 1 for 2h"})
    [(field, message)] = caught.value.problems
    assert field == "OSCTL_WINDOWS_APP" and "weekdays" in message
