"""`plan --from-sql --engine mysql` for real: MySQL statements the linter calls risky are converted to
alter_table operations and run through the service on the MariaDB primary and its replica while a
mirrored writer inserts, updates and deletes; nothing it writes fails or goes missing."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.domain.plan import Stage
from orchestrator.domain.states import RunStatus
from orchestrator.lint import lint_sql
from orchestrator.lint.convert import Outcome, writable_spec
from orchestrator.lint.convert_mysql import convert_mysql_sql
from tests.integration.test_mysql_copy_tools import build, checksum, column_type, leftovers, with_mirror
from tests.support.mirror_writer import MirroredWriter
from tests.support.mysql import fresh_database, settle, wait_for_replica

pytestmark = pytest.mark.integration

CASES = {
    "mysql-blocking-alter": "ALTER TABLE accounts MODIFY legacy_status varchar(64) NULL;",
    "mysql-blocking-alter-forced-copy": "ALTER TABLE accounts ADD INDEX accounts_score_idx (score), ALGORITHM=COPY;",
    "mysql-table-rebuild": "ALTER TABLE accounts ENGINE=InnoDB;",
}


@pytest.mark.parametrize("case", sorted(CASES))
async def test_the_converted_plan_runs_under_writes(case: str, tmp_path: Path) -> None:
    sql = CASES[case]
    rule = case.removesuffix("-forced-copy")
    assert rule in {finding.rule for finding in lint_sql(sql, "mysql").findings}
    conversion = convert_mysql_sql(sql, f"{case}.sql")
    assert [note.outcome for note in conversion.notes] == [Outcome.CONVERTED], conversion.notes
    assert conversion.spec is not None
    spec = {**writable_spec(conversion.spec), "target": "app"}

    async with fresh_database() as pair:
        await with_mirror(pair, 20_000)
        writer = MirroredWriter(pair.primary, "accounts", "accounts_mirror")
        service = build(pair, tmp_path)
        await service.start()
        await writer.start()
        try:
            run = await service.create(spec)
            await service.start_stage(run.id, Stage.EXPAND)
            await settle(service, run.id, RunStatus.AWAITING_DEPLOY, timeout=180)
            await service.approve_deploy(run.id)
            await service.start_stage(run.id, Stage.BACKFILL)
            await settle(service, run.id, RunStatus.AWAITING_CONTRACT, timeout=180)
            await service.start_stage(run.id, Stage.CONTRACT)
            await settle(service, run.id, RunStatus.COMPLETED, timeout=180)
        finally:
            stats = await writer.stop()
            await service.stop()

        assert stats.inserts and stats.updates and stats.deletes
        assert stats.errors == [], stats.errors[:5]
        assert await leftovers(pair.primary) == []
        assert await checksum(pair.primary, "accounts") == await checksum(pair.primary, "accounts_mirror")
        if case == "mysql-blocking-alter":
            assert await column_type(pair.primary, "legacy_status") == "varchar(64)"
        await wait_for_replica(pair)
        assert await checksum(pair.replica, "accounts") == await checksum(pair.primary, "accounts")
