"""The live plan's pure parts: duration estimates from sizes and a read rate, and how they are shown."""

from __future__ import annotations

import pytest

from orchestrator.domain.data_checks import TableSize
from orchestrator.domain.plan import Stage
from orchestrator.domain.spec import parse_spec
from orchestrator.engine.planner import plan_migration
from orchestrator.lint.live import (
    CATALOG_STEP_SECONDS,
    INDEX_BUILD_COST,
    WRITE_COST,
    CheckResult,
    LivePreflight,
    ReadRate,
    estimate_stages,
    with_estimates,
)
from orchestrator.lint.live_render import duration, render_live_text
from orchestrator.lint.plan_document import render_plan_document

SPEC = parse_spec(
    {
        "name": "m",
        "operations": [
            {"add_column": {"table": "accounts", "column": {"name": "band", "type": "text"}}},
            {"create_index": {"table": "accounts", "name": "accounts_email_idx", "columns": ["email"]}},
            {
                "backfill": {
                    "table": "accounts",
                    "column": "band",
                    "expression": "lower(email)",
                    "pause_ms": 50,
                }
            },
            {"drop_column": {"table": "accounts", "column": "legacy_status"}},
        ],
    }
)
PLAN = plan_migration(SPEC, "postgres")
SIZE = TableSize("accounts", total_bytes=100 * 1_048_576, estimated_rows=1_000_000)
RATE = ReadRate("accounts", rows=5_000, bytes=5 * 524_288, seconds=0.05)  # 100,000 rows/s, 50 MB/s


def test_each_stage_is_estimated_from_the_size_and_the_measured_rate() -> None:
    estimates = {
        estimate.stage: estimate for estimate in estimate_stages(PLAN, {"accounts": SIZE}, {"accounts": RATE})
    }
    index_build = SIZE.total_bytes * INDEX_BUILD_COST / RATE.bytes_per_second
    assert estimates[Stage.EXPAND].seconds == pytest.approx(CATALOG_STEP_SECONDS + index_build)
    rewrite = SIZE.estimated_rows * WRITE_COST / RATE.rows_per_second
    pauses = SIZE.estimated_rows / 1000 * 0.05
    assert estimates[Stage.BACKFILL].seconds == pytest.approx(rewrite + pauses)
    assert estimates[Stage.CONTRACT].seconds == pytest.approx(CATALOG_STEP_SECONDS)
    assert estimates[Stage.DEPLOY_GATE].seconds is None


def test_unknown_sizes_and_rates_are_said_not_guessed() -> None:
    estimates = {estimate.stage: estimate for estimate in estimate_stages(PLAN, {}, {})}
    assert estimates[Stage.BACKFILL].seconds == 0
    assert "size of accounts unknown" in estimates[Stage.BACKFILL].basis[0]
    empty = TableSize("accounts", total_bytes=8192, estimated_rows=0)
    estimates = {estimate.stage: estimate for estimate in estimate_stages(PLAN, {"accounts": empty}, {})}
    assert "accounts is empty" in estimates[Stage.BACKFILL].basis[0]


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(0.2, "under 1 s"), (42, "about 42 s"), (600, "about 10 min"), (9000, "about 2.5 h")],
)
def test_durations_read_like_people_say_them(seconds: float, shown: str) -> None:
    assert duration(seconds) == shown


def live(*, problems: list[tuple[str, str]]) -> LivePreflight:
    checks = [
        CheckResult(
            "operations.1.create_index.columns", not problems, problems[0][1] if problems else "no duplicate"
        )
    ]
    preflight = LivePreflight(
        target="postgresql://app@db/app",
        problems=problems,
        warnings=[
            ("settings.preflight.long_transaction_seconds", "long transaction: pid 7 idle in transaction")
        ],
        checks=checks,
        notes=["table accounts: 100.0 MB, about 1000000 rows"],
        sizes={"accounts": SIZE},
        rates={"accounts": RATE},
        estimates=[],
        data_checked=True,
    )
    return with_estimates(preflight, PLAN)


def test_the_document_replaces_the_offline_guesses_with_the_measured_figures() -> None:
    document = render_plan_document(PLAN, live=live(problems=[]))
    assert "Measured on postgresql://app@db/app" in document
    assert "read rate on accounts: 5000 rows" in document and "100,000 rows/s" in document
    assert "Table sizes are not known offline" not in document
    assert "Not run: the live preflight" not in document
    assert "- Passed (`operations.1.create_index.columns`): no duplicate" in document
    assert "- Warning (`settings.preflight.long_transaction_seconds`): long transaction" in document


def test_a_refused_preflight_makes_the_risk_high_and_says_why() -> None:
    refused = live(problems=[("operations.1.create_index.columns", "2 duplicate groups in accounts")])
    document = render_plan_document(PLAN, live=refused)
    assert "## Risk: high" in document
    assert "- the live preflight refuses the plan: 2 duplicate groups in accounts" in document
    text = "\n".join(render_live_text(refused))
    assert "REFUSED" in text and "FAILED operations.1.create_index.columns: 2 duplicate groups" in text
    assert text.count("2 duplicate groups") == 1, "a failed check is not repeated as a refusal"
