"""The CLI side of the contract safety proof: the override flag and the evidence in a refusal."""

from __future__ import annotations

import pytest

from orchestrator.cli import EXIT_BAD_INPUT, _problem_text, main


def test_override_usage_is_for_contract_only(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "advance",
            "some-id",
            "expand",
            "--override-usage",
            "a reason long enough",
            "--api",
            "http://127.0.0.1:9",
        ]
    )
    assert code == EXIT_BAD_INPUT
    assert "--override-usage applies to contract only" in capsys.readouterr().err


def test_a_refusal_lists_what_was_in_use_and_how_to_override() -> None:
    body = {
        "title": "Contract refused: what it drops was used since the deploy gate",
        "detail": "cannot start stage contract a migration that is awaiting_contract: usage seen",
        "current_state": "awaiting_contract",
        "allowed_actions": ["contract", "rollback"],
        "override": 'start contract again with {"override_usage": {"reason": "..."}} to drop it anyway',
        "evidence": {
            "findings": [
                {
                    "target": "column accounts.legacy_status",
                    "detail": "SELECT legacy_status ... ran 3 time(s)",
                    "blocking": True,
                },
                {
                    "target": "column accounts.legacy_status",
                    "detail": "SELECT * ... ran 1 time(s)",
                    "blocking": False,
                },
            ],
            "notes": ["pg_stat_statements.track is top: statements inside functions are not counted"],
        },
    }
    text = _problem_text(body, 409)
    assert "in use: column accounts.legacy_status: SELECT legacy_status ... ran 3 time(s)" in text
    assert "SELECT * ..." not in text
    assert "note: pg_stat_statements.track is top" in text
    assert "--override-usage REASON" in text
