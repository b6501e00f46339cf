"""Choosing and planning a runbook for a run, and what a confirmation must match. Pure."""

from __future__ import annotations

import pytest

from orchestrator.domain.plan import Stage
from orchestrator.domain.run import EventType
from orchestrator.domain.states import RunStatus
from orchestrator.ports import StepCheckpoint
from orchestrator.runbooks.confirm import Confirmation, how_confirmed
from orchestrator.runbooks.desk import History, RunbookDesk
from orchestrator.runbooks.loader import RunbookCatalogue, parse_runbook
from orchestrator.runbooks.model import StepKind
from orchestrator.runbooks.planner import LiveFindings, checkpoint_id
from orchestrator.runbooks.select import run_facts
from tests.runbooks.plans import event, planned_run, started
from tests.runbooks.test_shipped import ADD_BAND, MY_COPY, SHADOW_QTY

SHADOW_WRONG_ORDER = """\
id: shadow-wrong-order
description: drops the shadow work objects before swapping back
applies_to: {engine: postgres, stages: [backfill], strategies: [shadow]}
steps: [drop_copy_artifacts, swap_shadow_back, reverse_ddl]
"""


def test_the_stage_reached_is_read_from_steps_status_and_events() -> None:
    run = planned_run("postgres", ADD_BAND, RunStatus.PAUSED, paused_from=RunStatus.BACKFILLING)
    assert run_facts(run, {}, []).stage == "backfill"
    failed = planned_run("postgres", ADD_BAND, RunStatus.FAILED, stage=Stage.EXPAND)
    assert run_facts(failed, {}, []).stage == "expand"
    rolling = planned_run("postgres", ADD_BAND, RunStatus.ROLLING_BACK, stage=Stage.ROLLBACK)
    history = started(rolling, [Stage.EXPAND, Stage.BACKFILL])
    facts = run_facts(rolling, history.checkpoints, [])
    assert facts.stage == "backfill" and "step backfill.02.backfill.band was started" in facts.why
    gate = run_facts(
        rolling,
        started(rolling, [Stage.EXPAND]).checkpoints,
        [event(EventType.TRANSITION, action="approve_deploy")],
    )
    assert gate.stage == "deploy_gate"


def test_the_copy_tool_that_ran_decides_the_strategy_over_the_spec() -> None:
    auto = [{"alter_table": {"table": "accounts", "alter": "DROP COLUMN legacy_status"}}]
    run = planned_run("mysql", auto, RunStatus.EXPANDING)
    assert run_facts(run, {}, []).strategy == "pt_osc"
    assert run_facts(run, {}, [event(EventType.COPY_PROGRESS, tool="gh_ost")]).strategy == "gh_ost"
    assert run_facts(planned_run("mysql", MY_COPY, RunStatus.EXPANDING), {}, []).strategy == "pt_osc"


def test_a_rollback_keeps_the_runbook_it_started_with() -> None:
    run = planned_run("postgres", ADD_BAND, RunStatus.ROLLING_BACK, stage=Stage.ROLLBACK)
    expand = parse_runbook(
        SHADOW_WRONG_ORDER.replace("shadow-wrong-order", "pg-e")
        .replace("[backfill]", "[expand]")
        .replace("[shadow]", "any")
        .replace("[drop_copy_artifacts, swap_shadow_back, reverse_ddl]", "[reverse_ddl]"),
        "e.yaml",
    )
    later = parse_runbook(
        SHADOW_WRONG_ORDER.replace("shadow-wrong-order", "pg-b")
        .replace("[shadow]", "any")
        .replace(
            "[drop_copy_artifacts, swap_shadow_back, reverse_ddl]", "[reverse_ddl, notify: {message: done}]"
        ),
        "b.yaml",
    )
    desk = RunbookDesk(RunbookCatalogue([expand, later]), None)
    history = started(run, [Stage.EXPAND, Stage.BACKFILL])
    assert desk.plan(run, history).runbook == "pg-b"
    history.events.append(event(EventType.RUNBOOK, phase="started", runbook="pg-e"))
    assert desk.plan(run, history).runbook == "pg-e"


def test_inverses_of_one_operation_keep_their_order_whatever_the_runbook_says() -> None:
    run = planned_run("postgres", SHADOW_QTY, RunStatus.AWAITING_CONTRACT)
    desk = RunbookDesk(RunbookCatalogue([parse_runbook(SHADOW_WRONG_ORDER, "wrong.yaml")]), None)
    plan = desk.plan(run, started(run, [Stage.EXPAND, Stage.BACKFILL]))
    assert plan.refused is not None
    assert "put swap_shadow_back before drop_copy_artifacts in the runbook" in plan.refused


def test_live_findings_add_invalid_indexes_of_ours_and_name_the_work_tables_present() -> None:
    run = planned_run("postgres", ADD_BAND, RunStatus.FAILED, stage=Stage.EXPAND)
    catalogue = RunbookCatalogue(
        [
            parse_runbook(
                SHADOW_WRONG_ORDER.replace("[backfill]", "[expand]")
                .replace("[shadow]", "any")
                .replace("swap_shadow_back, ", ""),
                "x.yaml",
            )
        ]
    )
    live = LiveFindings(invalid_indexes={"items_band_idx": "items", "someone_elses": "items"})
    plan = RunbookDesk(catalogue, None).plan(run, started(run, [Stage.EXPAND]), live)
    assert plan.token == RunbookDesk(catalogue, None).plan(run, started(run, [Stage.EXPAND])).token, (
        "what only the database shows is no part of the token"
    )
    drops = next(a.statements for a in plan.actions if a.kind is StepKind.DROP_COPY_ARTIFACTS)
    assert drops == ['DROP INDEX CONCURRENTLY IF EXISTS "items_band_idx"'], "only what this migration made"
    copy = planned_run("mysql", MY_COPY, RunStatus.FAILED, stage=Stage.EXPAND)
    mysql_live = LiveFindings(work_tables=["_accounts_new"])
    mysql = RunbookDesk(RunbookCatalogue([]), None).plan(copy, started(copy, [Stage.EXPAND]), mysql_live)
    lines = mysql.actions[0].statements
    assert (
        "DROP TABLE IF EXISTS `_accounts_new`" in lines
        and "DROP TABLE IF EXISTS `_accounts_gho`" not in lines
    )


def test_the_token_binds_a_confirmation_to_the_plan_it_was_shown_for() -> None:
    run = planned_run("postgres", ADD_BAND, RunStatus.BACKFILLING)
    desk = RunbookDesk(RunbookCatalogue([]), None)
    before = desk.plan(run, started(run, [Stage.EXPAND], but=["items_band_idx"]))
    after = desk.plan(run, started(run, [Stage.EXPAND]))
    assert before.token != after.token, "another step started since: another plan"
    assert after.token == desk.plan(run, started(run, [Stage.EXPAND])).token
    assert how_confirmed(after, None) is None, "the built-in rollback asks for nothing"
    asking = after.model_copy(update={"confirmation_required": True, "confirmation_message": "Sure?"})
    with pytest.raises(ValueError, match="asks for a confirmation: Sure"):
        how_confirmed(asking, None)
    with pytest.raises(ValueError, match="the plan changed since the dry run"):
        how_confirmed(asking, Confirmation(token=before.token))
    assert how_confirmed(asking, Confirmation(token=after.token)) == "token"
    assert how_confirmed(asking, Confirmation(confirm=True)) == "confirm"


def test_a_resumed_plan_marks_the_runbook_steps_already_done() -> None:
    run = planned_run("postgres", ADD_BAND, RunStatus.ROLLING_BACK, stage=Stage.ROLLBACK)
    desk = RunbookDesk(RunbookCatalogue([]), None)
    history = started(run, [Stage.EXPAND])
    runbook_id = desk.plan(run, history).actions[0].checkpoint
    history.checkpoints[runbook_id] = StepCheckpoint(runbook_id, "rolled_back", 1)
    assert desk.plan(run, History(history.checkpoints, [])).actions[0].state == "done"
    assert runbook_id.startswith("runbook.builtin-reverse-ddl@") and runbook_id.endswith(".00.reverse_ddl")
    assert checkpoint_id is not None
