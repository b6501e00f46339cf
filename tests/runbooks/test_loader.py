"""Runbook files are validated into the typed model; every problem names the file, the line and the
fix, and a bad runbook stops `osctl serve` before it binds its port."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.runbooks.loader import RunbookCatalogue, RunbookError, load_directory, parse_runbook
from orchestrator.runbooks.model import StepKind

GOOD = """\
id: pg-test
description: a runbook for the tests of the loader
applies_to:
  engine: postgres
  stages: [expand]
  strategies: [direct]
steps:
  - pause_migration
  - notify: "started"
  - reverse_ddl
  - wait_for_replicas: {max_lag_seconds: 2, timeout_seconds: 30}
"""


def problems(text: str, source: str = "rb.yaml") -> list[tuple[str, str]]:
    with pytest.raises(RunbookError) as raised:
        parse_runbook(text, source)
    return raised.value.problems


def test_a_good_runbook_reads_into_the_typed_model_with_shorthands_and_settings() -> None:
    runbook = parse_runbook(GOOD, "rb.yaml")
    assert [step.kind for step in runbook.steps] == [
        StepKind.PAUSE_MIGRATION,
        StepKind.NOTIFY,
        StepKind.REVERSE_DDL,
        StepKind.WAIT_FOR_REPLICAS,
    ]
    wait = runbook.steps[3]
    assert wait.model_dump() == {
        "kind": "wait_for_replicas",
        "max_lag_seconds": 2.0,
        "timeout_seconds": 30.0,
        "if_unmeasured": "proceed",
    }
    assert runbook.applies_to.covers("postgres", "expand", "direct")
    assert not runbook.applies_to.covers("postgres", "backfill", "direct")
    assert not runbook.applies_to.covers("postgres", "expand", "shadow")
    assert runbook.digest() == parse_runbook(GOOD, "elsewhere.yaml").digest(), (
        "the file name is no part of it"
    )
    assert (
        runbook.digest()
        != parse_runbook(GOOD.replace("max_lag_seconds: 2", "max_lag_seconds: 3"), "x").digest()
    )


def test_every_problem_of_a_file_is_reported_at_once_with_its_line_and_field() -> None:
    text = GOOD.replace("id: pg-test", "id: Pg_Test").replace("[expand]", "[expand, gate]")
    text = text.replace("  - reverse_ddl\n", "  - reverse_ddl\n  - drop_everything\n")
    text = text.replace("{max_lag_seconds: 2, timeout_seconds: 30}", "{max_lag_seconds: -1, timeout: 4}")
    found = problems(text)
    assert ("rb.yaml:1: id", "String should match pattern '^[a-z0-9][a-z0-9-]{1,62}$'") in found
    assert any(where == "rb.yaml:5: applies_to.stages.1" and "'deploy_gate'" in why for where, why in found)
    assert any(
        where == "rb.yaml:11: steps.3" and "unknown step 'drop_everything'" in why for where, why in found
    )
    assert (
        "rb.yaml:12: steps.4.wait_for_replicas.max_lag_seconds",
        "Input should be greater than 0",
    ) in found
    assert ("rb.yaml:12: steps.4.wait_for_replicas.timeout", "Extra inputs are not permitted") in found


def test_steps_must_make_sense_together_and_where_the_runbook_applies() -> None:
    text = GOOD.replace("[direct]", "[direct, gh_ost]").replace(
        "  - wait_for_replicas",
        "  - abort_copy\n  - require_confirmation: late\n  - pause_migration\n  - wait_for_replicas",
    )
    found = dict(problems(text))
    assert "'gh_ost' is not a postgres strategy" in found["rb.yaml:6: applies_to.strategies.1"]
    assert "only means something on mysql" in found["rb.yaml:11: steps.3.abort_copy"]
    assert "must come before reverse_ddl" in found["rb.yaml:12: steps.4.require_confirmation"]
    assert "appears twice" in found["rb.yaml:13: steps.5.pause_migration"]
    without_reverse = dict(problems(GOOD.replace("  - reverse_ddl\n", "")))
    assert "needs reverse_ddl" in without_reverse["rb.yaml:8: steps"]


@pytest.mark.parametrize(
    ("text", "where", "why"),
    [
        ("", "rb.yaml", "the file is empty"),
        ("id: x\n  bad: [\n", "rb.yaml:2", "not valid YAML"),
        ("- a list\n", "rb.yaml:1: (runbook)", "a runbook is a mapping"),
        (GOOD + "id: again\n", "rb.yaml:12: id", "'id' is given twice"),
        (
            GOOD.replace("  - pause_migration\n", "  - {pause_migration: {}, reverse_ddl: {}}\n"),
            "rb.yaml:8: steps.0",
            "a step is one name",
        ),
        (
            GOOD.replace('  - notify: "started"', "  - notify: [1, 2]"),
            "rb.yaml:9: steps.1.notify",
            "settings of a step are a mapping",
        ),
    ],
)
def test_malformed_files_are_refused_with_where_and_why(text: str, where: str, why: str) -> None:
    found = problems(text)
    assert any(place == where and why in message for place, message in found), found


def test_a_catalogue_refuses_two_runbooks_claiming_the_same_combination_or_id() -> None:
    first = parse_runbook(GOOD, "a.yaml")
    twin = parse_runbook(GOOD.replace("id: pg-test", "id: pg-twin"), "b.yaml")
    with pytest.raises(RunbookError) as raised:
        RunbookCatalogue([first, twin])
    assert raised.value.problems == [
        (
            "b.yaml:1",
            "runbooks pg-test (a.yaml) and pg-twin both apply to postgres expand direct: narrow applies_to "
            "so one runbook answers each",
        )
    ]
    with pytest.raises(RunbookError, match=r"id .pg-test. is also used by a\.yaml"):
        RunbookCatalogue([first, parse_runbook(GOOD.replace("[expand]", "[backfill]"), "c.yaml")])
    # A runbook for `any` strategy is the fallback: an explicit one wins without a conflict.
    fallback = parse_runbook(GOOD.replace("id: pg-test", "id: pg-any").replace("[direct]", "any"), "d.yaml")
    catalogue = RunbookCatalogue([first, fallback])
    assert catalogue.covering("postgres", "expand", "direct") is first
    assert catalogue.covering("postgres", "expand", "shadow") is fallback
    assert catalogue.covering("postgres", "backfill", "shadow") is None


def test_a_directory_reports_the_problems_of_every_file(tmp_path: Path) -> None:
    (tmp_path / "good.yaml").write_text(GOOD)
    (tmp_path / "bad.yml").write_text(
        GOOD.replace("id: pg-test", "id: other").replace("pause_migration", "pause")
    )
    (tmp_path / "notes.txt").write_text("not a runbook")
    with pytest.raises(RunbookError) as raised:
        load_directory(tmp_path)
    assert [where for where, _ in raised.value.problems] == [f"{tmp_path / 'bad.yml'}:8: steps.0"]
    with pytest.raises(RunbookError, match="no such runbooks directory"):
        load_directory(tmp_path / "missing")


def test_a_bad_runbook_stops_the_service_before_it_serves(tmp_path: Path) -> None:
    (tmp_path / "broken.yaml").write_text(GOOD.replace("max_lag_seconds: 2", "max_lag_seconds: soon"))
    osctl = Path(sys.executable).parent / "osctl"
    env = {
        **os.environ,
        "OSCTL_RUNBOOKS_DIR": str(tmp_path),
        "OSCTL_STATE_URL": f"sqlite+aiosqlite:///{tmp_path / 'state.db'}",
        "OSCTL_PORT": "1",  # never bound: the service must stop before
    }
    done = subprocess.run([str(osctl), "serve"], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert "invalid runbooks, the service does not start" in done.stderr
    assert f"{tmp_path / 'broken.yaml'}:11: steps.3.wait_for_replicas.max_lag_seconds" in done.stderr
    assert not (tmp_path / "state.db").exists(), "nothing was started"
