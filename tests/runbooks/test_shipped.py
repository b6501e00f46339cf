"""The runbooks shipped in runbooks/: they load, every engine x stage x strategy combination has one,
each applies to what it claims, and their dry runs of real planned migrations list the statements
the rollback will run, in the order it runs them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from orchestrator.domain.plan import Stage
from orchestrator.domain.run import EventType
from orchestrator.domain.states import RunStatus
from orchestrator.runbooks.desk import RunbookDesk
from orchestrator.runbooks.loader import RunbookCatalogue, load_directory, shipped_directory
from orchestrator.runbooks.model import STAGES_REACHED, STRATEGIES, StepKind
from orchestrator.runbooks.planner import RunbookPlan
from tests.runbooks.plans import event, planned_run, started

SHIPPED = shipped_directory()
E, G, B, C = Stage.EXPAND, Stage.DEPLOY_GATE, Stage.BACKFILL, Stage.CONTRACT

ADD_BAND: list[dict[str, Any]] = [
    {"add_column": {"table": "items", "column": {"name": "band", "type": "text"}}},
    {"create_index": {"table": "items", "name": "items_band_idx", "columns": ["band"]}},
    {"backfill": {"table": "items", "column": "band", "expression": "upper(name)"}},
]
ARCHIVE_NOTE: list[dict[str, Any]] = [{"drop_column": {"table": "items", "column": "note", "archive": True}}]
SHADOW_QTY: list[dict[str, Any]] = [
    {"alter_column": {"table": "items", "column": "qty", "type": "bigint", "strategy": "shadow"}}
]
RENAME_NOTE: list[dict[str, Any]] = [
    {"rename_column": {"table": "items", "column": "note", "new_name": "memo"}}
]
MY_ADD_BAND: list[dict[str, Any]] = [
    {"add_column": {"table": "accounts", "column": {"name": "band", "type": "varchar(10)"}}},
    {"create_index": {"table": "accounts", "name": "accounts_band", "columns": ["band"]}},
]
MY_COPY: list[dict[str, Any]] = [
    {"alter_table": {"table": "accounts", "alter": "DROP COLUMN legacy_status", "strategy": "pt_osc"}}
]


@pytest.fixture(scope="module")
def catalogue() -> RunbookCatalogue:
    return load_directory(SHIPPED)


def statements(plan: RunbookPlan, kind: StepKind) -> list[str]:
    return [line for action in plan.actions if action.kind is kind for line in action.statements]


def test_the_shipped_runbooks_load_and_cover_every_combination(catalogue: RunbookCatalogue) -> None:
    assert SHIPPED.name == "runbooks" and len(catalogue.runbooks) >= 8
    assert catalogue.uncovered() == []
    for engine, strategies in STRATEGIES.items():
        for stage in STAGES_REACHED:
            for strategy in strategies:
                runbook = catalogue.covering(engine, stage, strategy)
                assert runbook is not None
                assert runbook.applies_to.covers(engine, stage, strategy)
                assert runbook.id.startswith(engine), (runbook.id, engine)
                # Past the deploy gate the new application version may use what expand added.
                assert (runbook.confirmation is not None) == (stage != "expand"), runbook.id


def test_each_shipped_runbook_applies_to_exactly_what_it_claims(catalogue: RunbookCatalogue) -> None:
    for runbook in catalogue.runbooks:
        applies = runbook.applies_to
        for engine, strategies in STRATEGIES.items():
            for stage in STAGES_REACHED:
                for strategy in strategies:
                    claims = (
                        engine == applies.engine
                        and stage in applies.stages
                        and (applies.strategies == "any" or strategy in applies.strategies)
                    )
                    assert applies.covers(engine, stage, strategy) is claims
                    if claims and applies.strategies != "any":
                        assert catalogue.covering(engine, stage, strategy) is runbook


def test_postgres_expand_drops_the_index_then_the_column_and_asks_nothing(
    catalogue: RunbookCatalogue,
) -> None:
    run = planned_run("postgres", ADD_BAND, RunStatus.AWAITING_DEPLOY)
    plan = RunbookDesk(catalogue, None).plan(run, started(run, [E]))
    assert plan.runbook == "postgres-expand" and not plan.confirmation_required and plan.refused is None
    assert statements(plan, StepKind.REVERSE_DDL) == [
        'DROP INDEX CONCURRENTLY IF EXISTS "items_band_idx"',
        'ALTER TABLE "items" DROP COLUMN IF EXISTS "band"',
    ]
    assert next(action.kind for action in plan.actions) is StepKind.PAUSE_MIGRATION


def test_postgres_after_the_gate_asks_for_a_confirmation_and_undoes_the_backfilled_column(
    catalogue: RunbookCatalogue,
) -> None:
    run = planned_run("postgres", ADD_BAND, RunStatus.AWAITING_CONTRACT)
    plan = RunbookDesk(catalogue, None).plan(run, started(run, [E, B]))
    assert plan.runbook == "postgres-after-gate" and plan.confirmation_required
    assert "Roll the application back" in (plan.confirmation_message or "")
    assert statements(plan, StepKind.REVERSE_DDL)[-1] == 'ALTER TABLE "items" DROP COLUMN IF EXISTS "band"'


def test_postgres_contract_restores_the_archived_column_before_the_rest(catalogue: RunbookCatalogue) -> None:
    run = planned_run("postgres", ADD_BAND + ARCHIVE_NOTE, RunStatus.FAILED, stage=Stage.CONTRACT)
    plan = RunbookDesk(catalogue, None).plan(run, started(run, [E, B, C]))
    assert plan.runbook == "postgres-contract" and plan.refused is None
    restore = statements(plan, StepKind.RESTORE_ARCHIVED_COLUMN)
    assert "ADD COLUMN IF NOT EXISTS %I %s" in restore[0]
    assert restore[1].startswith(
        'UPDATE "items" SET "note" = CASE WHEN EXISTS (SELECT FROM "_osc_archive_items_note"'
    )
    assert restore[-1] == 'DROP TABLE IF EXISTS "_osc_archive_items_note"'
    kinds = [
        action.kind for action in plan.actions if action.statements and "nothing" not in action.statements[0]
    ]
    assert kinds.index(StepKind.RESTORE_ARCHIVED_COLUMN) < kinds.index(StepKind.REVERSE_DDL)


def test_a_drop_without_archive_is_refused_with_the_reason(catalogue: RunbookCatalogue) -> None:
    drop = [{"drop_column": {"table": "items", "column": "note"}}]
    run = planned_run("postgres", drop, RunStatus.COMPLETED)
    plan = RunbookDesk(catalogue, None).plan(run, started(run, [C]))
    assert plan.runbook == "postgres-contract"
    assert plan.refused is not None and "dropping items.note discards its values" in plan.refused


def test_postgres_shadow_swaps_back_before_dropping_the_work_tables(catalogue: RunbookCatalogue) -> None:
    run = planned_run("postgres", SHADOW_QTY, RunStatus.AWAITING_CONTRACT)
    plan = RunbookDesk(catalogue, None).plan(run, started(run, [E, B]))
    assert plan.runbook == "postgres-shadow-after-gate", plan.facts
    assert "strategy shadow" in plan.facts
    order = [action.kind for action in plan.actions]
    assert order.index(StepKind.SWAP_SHADOW_BACK) < order.index(StepKind.DROP_COPY_ARTIFACTS)
    assert statements(plan, StepKind.SWAP_SHADOW_BACK) == [
        "[shadow table, swap_back] catch _osc_old_items up with the writes made since the swap, then swap "
        "the names back (its statements are made from the live catalog when it runs)"
    ]
    assert "[shadow table, drop]" in statements(plan, StepKind.DROP_COPY_ARTIFACTS)[0]
    # After expand only the preparation is undone, by the expand runbook.
    early = planned_run("postgres", SHADOW_QTY, RunStatus.AWAITING_DEPLOY)
    early_plan = RunbookDesk(catalogue, None).plan(early, started(early, [E]))
    assert early_plan.runbook == "postgres-expand"
    assert "[shadow table, drop]" in statements(early_plan, StepKind.DROP_COPY_ARTIFACTS)[0]


def test_postgres_sync_column_after_the_gate_drops_its_triggers_and_column(
    catalogue: RunbookCatalogue,
) -> None:
    run = planned_run("postgres", RENAME_NOTE, RunStatus.AWAITING_BACKFILL)
    history = started(run, [E])
    history.events.append(event(EventType.TRANSITION, action="approve_deploy"))
    plan = RunbookDesk(catalogue, None).plan(run, history)
    assert plan.runbook == "postgres-after-gate" and "stage deploy_gate" in plan.facts
    assert "strategy sync_column" in plan.facts
    reverse = "\n".join(statements(plan, StepKind.REVERSE_DDL))
    assert 'DROP TRIGGER IF EXISTS "_osc_items_note_sync" ON "items"' in reverse
    assert '"memo"' in reverse


def test_mysql_direct_reverses_its_own_ddl(catalogue: RunbookCatalogue) -> None:
    run = planned_run("mysql", MY_ADD_BAND, RunStatus.AWAITING_DEPLOY)
    plan = RunbookDesk(catalogue, None).plan(run, started(run, [E]))
    assert plan.runbook == "mysql-direct-expand" and not plan.confirmation_required
    assert statements(plan, StepKind.REVERSE_DDL) == [
        "ALTER TABLE `accounts` DROP INDEX `accounts_band`, ALGORITHM=INPLACE, LOCK=NONE",
        "ALTER TABLE `accounts` DROP COLUMN `band`, ALGORITHM=INSTANT",
    ]


def test_mysql_copy_aborts_the_tool_that_ran_and_drops_what_it_left(catalogue: RunbookCatalogue) -> None:
    run = planned_run("mysql", MY_COPY, RunStatus.BACKFILLING)
    history = started(run, [E, B], but=["cut_over"])
    history.events.append(event(EventType.COPY_PROGRESS, tool="gh_ost"))
    plan = RunbookDesk(catalogue, None).plan(run, history)
    assert plan.runbook == "mysql-copy-after-gate" and "strategy gh_ost: gh_ost ran" in plan.facts
    abort = statements(plan, StepKind.ABORT_COPY)
    assert abort[0].startswith("stop the copy tool on accounts: gh-ost gets `panic`")
    assert "DROP TABLE IF EXISTS `_accounts_new`" in abort and "DROP TABLE IF EXISTS `_accounts_ghc`" in abort
    order = [action.kind for action in plan.actions]
    assert order.index(StepKind.THROTTLE_COPY) < order.index(StepKind.ABORT_COPY)
    assert order.index(StepKind.WAIT_FOR_REPLICAS) < order.index(StepKind.ABORT_COPY)


def test_mysql_after_the_cut_over_is_refused_with_the_planners_reason(catalogue: RunbookCatalogue) -> None:
    run = planned_run("mysql", MY_COPY, RunStatus.AWAITING_CONTRACT)
    plan = RunbookDesk(catalogue, None).plan(run, started(run, [E, B]))
    assert (
        plan.runbook == "mysql-copy-after-gate" and "strategy pt_osc: the spec asks for pt_osc" in plan.facts
    )
    assert plan.refused is not None and "after the cut-over accounts takes writes" in plan.refused


def test_no_runbook_falls_back_to_the_plain_inverse_steps() -> None:
    run = planned_run("postgres", ADD_BAND, RunStatus.AWAITING_DEPLOY)
    plan = RunbookDesk(RunbookCatalogue([]), None).plan(run, started(run, [E]))
    assert plan.runbook == "builtin-reverse-ddl" and not plan.confirmation_required
    assert [action.kind for action in plan.actions] == [StepKind.REVERSE_DDL]
    assert len(plan.actions[0].statements) == 2


def test_every_shipped_file_is_a_runbook_file() -> None:
    assert sorted(path.suffix for path in Path(SHIPPED).iterdir()) == [".yaml"] * len(list(SHIPPED.iterdir()))
