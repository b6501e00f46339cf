"""SqlStateStore: the StateStore port over SQLAlchemy 2 async Core. Schema versioned by Alembic."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from adapters.statestore.schema import (
    active_tables,
    backfill_checkpoints,
    events,
    migrations,
    step_checkpoints,
)
from orchestrator.domain.errors import ConflictError, NotFoundError
from orchestrator.domain.plan import Plan, Stage
from orchestrator.domain.run import BackfillTuning, MigrationEvent, Progress, Run
from orchestrator.domain.spec import MigrationSpec
from orchestrator.domain.states import TERMINAL, RunStatus
from orchestrator.ports import BackfillCheckpoint, StepCheckpoint

_MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def _now() -> datetime:
    return datetime.now(UTC)


def _aware(value: datetime) -> datetime:
    # SQLite hands timestamps back naive; everything the store writes is UTC.
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def upgrade_schema(connection: Connection) -> None:
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


class SqlStateStore:
    def __init__(self, url: str) -> None:
        self._url = url
        self._engine: AsyncEngine = create_async_engine(url)
        if url.startswith("sqlite"):
            sa.event.listen(self._engine.sync_engine, "connect", _sqlite_pragmas)

    async def initialize(self) -> None:
        if self._url.startswith("sqlite"):
            database = sa.engine.make_url(self._url).database
            if database and database != ":memory:":
                Path(database).parent.mkdir(parents=True, exist_ok=True)
        async with self._engine.begin() as conn:
            await conn.run_sync(upgrade_schema)

    async def close(self) -> None:
        await self._engine.dispose()

    # -- runs ---------------------------------------------------------------------------------------

    async def create_run(self, run: Run, event: MigrationEvent) -> None:
        try:
            async with self._engine.begin() as conn:
                await conn.execute(migrations.insert().values(**_run_row(run)))
                for table in run.plan.tables():
                    await conn.execute(
                        active_tables.insert().values(
                            target=run.target, table_name=table, migration_id=run.id
                        )
                    )
                await conn.execute(events.insert().values(**_event_row(event)))
        except IntegrityError as error:
            holder = await self._active_holder(run)
            raise ConflictError(
                f"migration {holder or '?'} is still active on target {run.target!r} for one of the "
                f"tables {', '.join(run.plan.tables())}; finish, cancel or roll it back first"
            ) from error

    async def _active_holder(self, run: Run) -> str | None:
        async with self._engine.connect() as conn:
            row = await conn.execute(
                sa.select(active_tables.c.migration_id).where(
                    active_tables.c.target == run.target, active_tables.c.table_name.in_(run.plan.tables())
                )
            )
            found = row.first()
        return str(found[0]) if found else None

    async def get_run(self, run_id: str) -> Run:
        async with self._engine.connect() as conn:
            row = (await conn.execute(sa.select(migrations).where(migrations.c.id == run_id))).first()
        if row is None:
            raise NotFoundError("migration", run_id)
        return _run_from_row(row._mapping)

    async def list_runs(self, *, limit: int = 100) -> list[Run]:
        query = sa.select(migrations).order_by(migrations.c.created_at.desc()).limit(limit)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).fetchall()
        return [_run_from_row(row._mapping) for row in rows]

    async def runs_in_status(self, statuses: Sequence[RunStatus]) -> list[Run]:
        query = (
            sa.select(migrations)
            .where(migrations.c.status.in_([status.value for status in statuses]))
            .order_by(migrations.c.created_at)
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).fetchall()
        return [_run_from_row(row._mapping) for row in rows]

    async def update_run(self, run: Run, *, expected_status: RunStatus, event: MigrationEvent | None) -> Run:
        row = _run_row(run)
        # The notifier owns notification_ref (set_notification_ref) and the API owns tuning
        # (set_tuning); a run read before either changed must not write its stale copy back over it.
        for key in ("id", "created_at", "notification_ref", "tuning"):
            row.pop(key)
        async with self._engine.begin() as conn:
            result = await conn.execute(
                migrations.update()
                .where(migrations.c.id == run.id, migrations.c.status == expected_status.value)
                .values(**row)
            )
            if result.rowcount != 1:
                raise ConflictError(f"migration {run.id} is no longer {expected_status.value}")
            if run.status in TERMINAL:
                await conn.execute(active_tables.delete().where(active_tables.c.migration_id == run.id))
            if event is not None:
                await conn.execute(events.insert().values(**_event_row(event)))
        return run

    async def set_progress(self, run_id: str, progress: Progress) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(
                migrations.update()
                .where(migrations.c.id == run_id)
                .values(progress=progress.model_dump(mode="json"), updated_at=_now())
            )

    async def set_tuning(self, run_id: str, tuning: BackfillTuning) -> None:
        async with self._engine.begin() as conn:
            result = await conn.execute(
                migrations.update()
                .where(migrations.c.id == run_id)
                .values(tuning=tuning.model_dump(mode="json", exclude_none=True), updated_at=_now())
            )
        if result.rowcount != 1:
            raise NotFoundError("migration", run_id)

    async def set_notification_ref(self, run_id: str, ref: dict[str, Any]) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(
                migrations.update().where(migrations.c.id == run_id).values(notification_ref=ref)
            )

    # -- events -------------------------------------------------------------------------------------

    async def append_event(self, event: MigrationEvent) -> MigrationEvent:
        async with self._engine.begin() as conn:
            result = await conn.execute(events.insert().values(**_event_row(event)))
            key = result.inserted_primary_key
        assert key is not None
        return event.model_copy(update={"id": int(key[0])})

    async def list_events(self, run_id: str, *, after_id: int = 0, limit: int = 1000) -> list[MigrationEvent]:
        query = (
            sa.select(events)
            .where(events.c.migration_id == run_id, events.c.id > after_id)
            .order_by(events.c.id)
            .limit(limit)
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).fetchall()
        return [
            MigrationEvent(
                id=row.id,
                migration_id=row.migration_id,
                at=_aware(row.at),
                type=row.type,
                stage=row.stage,
                step_id=row.step_id,
                message=row.message,
                data=row.data,
            )
            for row in rows
        ]

    # -- checkpoints --------------------------------------------------------------------------------

    async def step_checkpoints(self, run_id: str) -> dict[str, StepCheckpoint]:
        query = sa.select(step_checkpoints).where(step_checkpoints.c.migration_id == run_id)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).fetchall()
        return {row.step_id: StepCheckpoint(row.step_id, row.state, row.attempts) for row in rows}

    async def mark_step(self, run_id: str, step_id: str, state: str) -> None:
        key = (step_checkpoints.c.migration_id == run_id) & (step_checkpoints.c.step_id == step_id)
        async with self._engine.begin() as conn:
            current = (await conn.execute(sa.select(step_checkpoints.c.attempts).where(key))).first()
            if current is None:
                await conn.execute(
                    step_checkpoints.insert().values(
                        migration_id=run_id,
                        step_id=step_id,
                        state=state,
                        attempts=1 if state == "started" else 0,
                        updated_at=_now(),
                    )
                )
                return
            attempts = current.attempts + (1 if state == "started" else 0)
            await conn.execute(
                step_checkpoints.update().where(key).values(state=state, attempts=attempts, updated_at=_now())
            )

    async def get_backfill_checkpoint(self, run_id: str, step_id: str) -> BackfillCheckpoint | None:
        query = sa.select(backfill_checkpoints).where(
            backfill_checkpoints.c.migration_id == run_id, backfill_checkpoints.c.step_id == step_id
        )
        async with self._engine.connect() as conn:
            row = (await conn.execute(query)).first()
        if row is None:
            return None
        return BackfillCheckpoint(row.step_id, row.high_water, row.rows_done, bool(row.done))

    async def save_backfill_checkpoint(self, run_id: str, checkpoint: BackfillCheckpoint) -> None:
        values = {
            "high_water": checkpoint.high_water,
            "rows_done": checkpoint.rows_done,
            "done": int(checkpoint.done),
            "updated_at": _now(),
        }
        key = (backfill_checkpoints.c.migration_id == run_id) & (
            backfill_checkpoints.c.step_id == checkpoint.step_id
        )
        async with self._engine.begin() as conn:
            result = await conn.execute(backfill_checkpoints.update().where(key).values(**values))
            if result.rowcount == 0:
                await conn.execute(
                    backfill_checkpoints.insert().values(
                        migration_id=run_id, step_id=checkpoint.step_id, **values
                    )
                )


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL keeps readers (the API) from blocking the runner's writes; NORMAL is durable across a
    # process kill, which is the crash the service must survive.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


def _run_row(run: Run) -> dict[str, Any]:
    return {
        "id": run.id,
        "name": run.name,
        "target": run.target,
        "engine": run.engine,
        "status": run.status.value,
        "stage": run.stage.value if run.stage else None,
        "paused_from": run.paused_from.value if run.paused_from else None,
        "error": run.error,
        "spec": run.spec.model_dump(mode="json"),
        "plan": run.plan.model_dump(mode="json"),
        "progress": run.progress.model_dump(mode="json"),
        "notification_ref": run.notification_ref,
        "tuning": run.tuning.model_dump(mode="json", exclude_none=True),
        "created_at": run.created_at,
        "updated_at": run.updated_at,
    }


def _run_from_row(row: Any) -> Run:
    spec = dict(row["spec"])
    # The stored spec is in tagged form; hand it back in the one-key form users write.
    spec["operations"] = [{op.pop("kind"): op} for op in (dict(op) for op in spec["operations"])]
    return Run(
        id=row["id"],
        name=row["name"],
        target=row["target"],
        engine=row["engine"],
        status=RunStatus(row["status"]),
        stage=Stage(row["stage"]) if row["stage"] else None,
        paused_from=RunStatus(row["paused_from"]) if row["paused_from"] else None,
        error=row["error"],
        spec=MigrationSpec.model_validate(spec),
        plan=Plan.model_validate(row["plan"]),
        progress=Progress.model_validate(row["progress"]),
        notification_ref=row["notification_ref"] or {},
        tuning=BackfillTuning.model_validate(row["tuning"] or {}),
        created_at=_aware(row["created_at"]),
        updated_at=_aware(row["updated_at"]),
    )


def _event_row(event: MigrationEvent) -> dict[str, Any]:
    return {
        "migration_id": event.migration_id,
        "at": event.at,
        "type": event.type.value,
        "stage": event.stage.value if event.stage else None,
        "step_id": event.step_id,
        "message": event.message,
        "data": event.data,
    }
