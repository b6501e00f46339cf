"""`osctl migrate`: drive every stage in-process against one database, with the embedded store.

Running it again after a crash picks the unfinished migration of the same name back up from its
checkpoints instead of planning a new one.
"""

from __future__ import annotations

from collections.abc import Callable

from pydantic import SecretStr

from orchestrator.bootstrap import build_service
from orchestrator.config import Settings, TargetConfig, engine_of, redact_dsn
from orchestrator.domain.plan import Stage
from orchestrator.domain.run import Run
from orchestrator.domain.spec import MigrationSpec
from orchestrator.domain.states import TERMINAL, RunStatus
from orchestrator.service import MigrationService

EXIT_OK, EXIT_FAILED = 0, 1
STAGE_TIMEOUT = 24 * 3600.0


async def run_locally(
    spec: MigrationSpec,
    *,
    settings: Settings,
    target_dsn: str | None,
    through: str,
    approve_deploy: bool,
    state_url: str | None,
    report: Callable[[str], None],
) -> int:
    if target_dsn:
        target = redact_dsn(target_dsn)
        config = TargetConfig(name=target, engine=engine_of(target_dsn), dsn=SecretStr(target_dsn))
        settings = settings.model_copy(update={"targets": {target: config}})
    else:
        assert spec.target is not None
        target = spec.target
    if state_url:
        settings = settings.model_copy(update={"state_url": state_url})
    service = build_service(settings)
    await service.start()
    try:
        run = await _existing(service, spec, target) or await service.create(spec, target_override=target)
        report(f"migration {run.id} on {target}: {run.status.value}")
        return await _drive(
            service, run, through=Stage(through), approve_deploy=approve_deploy, report=report
        )
    finally:
        await service.stop()


async def _existing(service: MigrationService, spec: MigrationSpec, target: str) -> Run | None:
    for run in await service.list_runs(limit=1000):
        if run.name == spec.name and run.target == target and run.status not in TERMINAL:
            return run
    return None


async def _drive(
    service: MigrationService,
    run: Run,
    *,
    through: Stage,
    approve_deploy: bool,
    report: Callable[[str], None],
) -> int:
    order = [Stage.EXPAND, Stage.BACKFILL, Stage.CONTRACT]
    last = order.index(through)
    while True:
        status = run.status
        if status is RunStatus.COMPLETED:
            report("completed")
            return EXIT_OK
        if status is RunStatus.FAILED:
            report(f"failed in {run.stage.value if run.stage else '?'}: {run.error}")
            return EXIT_FAILED
        if status in (RunStatus.PENDING, RunStatus.AWAITING_BACKFILL, RunStatus.AWAITING_CONTRACT):
            stage = {
                RunStatus.PENDING: Stage.EXPAND,
                RunStatus.AWAITING_BACKFILL: Stage.BACKFILL,
                RunStatus.AWAITING_CONTRACT: Stage.CONTRACT,
            }[status]
            if order.index(stage) > last:
                report(f"stopped before {stage.value} as asked (--through {through.value})")
                return EXIT_OK
            run = await service.start_stage(run.id, stage)
            report(f"{stage.value} started")
        elif status is RunStatus.AWAITING_DEPLOY:
            if last == 0:
                report("expand done; stopped as asked (--through expand)")
                return EXIT_OK
            if not approve_deploy:
                report(
                    "expand done; waiting at the deploy gate: rerun with --approve-deploy once the new code is out"
                )
                return EXIT_OK
            run = await service.approve_deploy(run.id)
            report("deploy gate approved")
        elif status in (RunStatus.PAUSED, RunStatus.ROLLED_BACK, RunStatus.CANCELLED, RunStatus.ROLLING_BACK):
            report(f"migration is {status.value}; nothing to drive")
            return EXIT_FAILED
        else:
            settled = {
                RunStatus.AWAITING_DEPLOY,
                RunStatus.AWAITING_BACKFILL,
                RunStatus.AWAITING_CONTRACT,
                RunStatus.COMPLETED,
            }
            run, _ = await service.wait(run.id, settled, STAGE_TIMEOUT)
            report(f"{run.status.value}")
