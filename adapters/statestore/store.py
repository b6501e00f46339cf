"""SqlStateStore: the StateStore port over SQLAlchemy 2 async Core. Schema versioned by Alembic.

The same code runs on SQLite (aiosqlite, one replica) and PostgreSQL (asyncpg, several replicas).
A store built with `fenced(epoch)` checks the leader epoch at the start of every write transaction,
under a share lock on the `leader` row on PostgreSQL: a new leader's epoch increment waits for the
old leader's transactions in flight, and every write after it sees the new epoch and is refused.
"""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from adapters.statestore.schema import (
    active_tables,
    backfill_checkpoints,
    events,
    idempotency_keys,
    leader,
    migrations,
    step_checkpoints,
)
from orchestrator.domain.errors import ConflictError, FencedError, NotFoundError
from orchestrator.domain.plan import Plan, Stage
from orchestrator.domain.run import BackfillTuning, MigrationEvent, Progress, Run, Waiting
from orchestrator.domain.spec import MigrationSpec
from orchestrator.domain.states import TERMINAL, RunStatus
from orchestrator.domain.usage import ContractProofRecord
from orchestrator.ports import (
    BackfillCheckpoint,
    IdempotencyClaim,
    LeaderRecord,
    StepCheckpoint,
    StoredResponse,
)

_MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# pg_advisory_xact_lock key serialising schema upgrades of replicas starting at once ("osctl" + 2).
SCHEMA_LOCK_KEY = 0x6F7363746C02
# A PostgreSQL session that sits inside a transaction this long is ended by the server, releasing its
# locks: a paused replica cannot hold the `leader` row's share lock (and so block a new leader) forever.
IDLE_IN_TRANSACTION_MS = 10_000


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
    def __init__(self, url: str, *, application_name: str = "osctl") -> None:
        self._url = url
        self._postgres = url.startswith("postgresql")
        self._epoch: int | None = None  # set on fenced views only
        if self._postgres:
            self._engine: AsyncEngine = create_async_engine(
                url,
                pool_pre_ping=True,
                connect_args={
                    "server_settings": {
                        "application_name": application_name[:63],
                        "idle_in_transaction_session_timeout": str(IDLE_IN_TRANSACTION_MS),
                    }
                },
            )
        else:
            self._engine = create_async_engine(url)
            sa.event.listen(self._engine.sync_engine, "connect", _sqlite_pragmas)

    @property
    def is_postgres(self) -> bool:
        return self._postgres

    def fenced(self, epoch: int) -> SqlStateStore:
        """The same store (same engine and pool) with every write checked against `epoch`."""
        view = copy.copy(self)
        view._epoch = epoch
        return view

    async def initialize(self) -> None:
        if not self._postgres:
            database = sa.engine.make_url(self._url).database
            if database and database != ":memory:":
                Path(database).parent.mkdir(parents=True, exist_ok=True)
        async with self._engine.begin() as conn:
            if self._postgres:
                # Two replicas starting together must not both create the tables.
                await conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": SCHEMA_LOCK_KEY})
            await conn.run_sync(upgrade_schema)

    async def close(self) -> None:
        if self._epoch is None:  # a fenced view shares its parent's engine
            await self._engine.dispose()

    @asynccontextmanager
    async def _write(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction; on a fenced view it first checks that our epoch is still current."""
        async with self._engine.begin() as conn:
            if self._epoch is not None:
                query = sa.select(leader.c.epoch).where(leader.c.id == 1)
                if self._postgres:
                    query = query.with_for_update(read=True)
                current = (await conn.execute(query)).scalar_one_or_none()
                if current != self._epoch:
                    raise FencedError(self._epoch, None if current is None else int(current))
            yield conn

    # -- leadership ---------------------------------------------------------------------------------

    async def claim_epoch(self, holder: str) -> int:
        async with self._engine.begin() as conn:
            result = await conn.execute(
                leader.update()
                .where(leader.c.id == 1)
                .values(epoch=leader.c.epoch + 1, holder=holder, acquired_at=_now())
                .returning(leader.c.epoch)
            )
            return int(result.scalar_one())

    async def leader(self) -> LeaderRecord:
        async with self._engine.connect() as conn:
            row = (await conn.execute(sa.select(leader).where(leader.c.id == 1))).one()
        return LeaderRecord(
            epoch=int(row.epoch),
            holder=row.holder,
            acquired_at=_aware(row.acquired_at) if row.acquired_at else None,
        )

    # -- runs ---------------------------------------------------------------------------------------

    async def create_run(self, run: Run, event: MigrationEvent) -> None:
        try:
            async with self._write() as conn:
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
        try:
            async with self._write() as conn:
                result = await conn.execute(
                    migrations.update()
                    .where(migrations.c.id == run.id, migrations.c.status == expected_status.value)
                    .values(**row)
                )
                if result.rowcount != 1:
                    raise ConflictError(f"migration {run.id} is no longer {expected_status.value}")
                if run.status in TERMINAL:
                    await conn.execute(active_tables.delete().where(active_tables.c.migration_id == run.id))
                elif expected_status in TERMINAL:
                    # A completed migration being reverted takes its tables back: nothing else may be
                    # changing them meanwhile, or its revert and that migration would collide.
                    for table in run.plan.tables():
                        await conn.execute(
                            active_tables.insert().values(
                                target=run.target, table_name=table, migration_id=run.id
                            )
                        )
                if event is not None:
                    await conn.execute(events.insert().values(**_event_row(event)))
        except IntegrityError as error:
            holder = await self._active_holder(run)
            raise ConflictError(
                f"migration {holder or '?'} is active on target {run.target!r} for one of the tables "
                f"{', '.join(run.plan.tables())}; finish, cancel or roll it back before reverting {run.id}"
            ) from error
        return run

    async def set_progress(self, run_id: str, progress: Progress) -> None:
        async with self._write() as conn:
            await conn.execute(
                migrations.update()
                .where(migrations.c.id == run_id)
                .values(progress=progress.model_dump(mode="json"), updated_at=_now())
            )

    async def set_tuning(self, run_id: str, tuning: BackfillTuning) -> None:
        async with self._write() as conn:
            result = await conn.execute(
                migrations.update()
                .where(migrations.c.id == run_id)
                .values(tuning=tuning.model_dump(mode="json", exclude_none=True), updated_at=_now())
            )
        if result.rowcount != 1:
            raise NotFoundError("migration", run_id)

    async def set_notification_ref(self, run_id: str, ref: dict[str, Any]) -> None:
        async with self._write() as conn:
            await conn.execute(
                migrations.update().where(migrations.c.id == run_id).values(notification_ref=ref)
            )

    async def set_waiting(self, run_id: str, waiting: Waiting | None, *, expected_status: RunStatus) -> Run:
        value = waiting.model_dump(mode="json") if waiting is not None else None
        async with self._write() as conn:
            result = await conn.execute(
                migrations.update()
                .where(migrations.c.id == run_id, migrations.c.status == expected_status.value)
                .values(waiting=value, updated_at=_now())
            )
        if result.rowcount != 1:
            run = await self.get_run(run_id)  # NotFoundError for an unknown id
            raise ConflictError(f"migration {run.id} is no longer {expected_status.value}")
        return await self.get_run(run_id)

    async def runs_waiting(self) -> list[Run]:
        query = (
            sa.select(migrations).where(migrations.c.waiting.is_not(None)).order_by(migrations.c.created_at)
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).fetchall()
        return [_run_from_row(row._mapping) for row in rows]

    async def count_by_status(self) -> dict[RunStatus, int]:
        query = sa.select(migrations.c.status, sa.func.count()).group_by(migrations.c.status)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).fetchall()
        return {RunStatus(status): int(count) for status, count in rows}

    # -- idempotency --------------------------------------------------------------------------------

    async def claim_request(
        self, principal: str, key: str, fingerprint: str, *, stale_after_seconds: float
    ) -> IdempotencyClaim:
        where = (idempotency_keys.c.principal == principal) & (idempotency_keys.c.key == key)
        now = _now()
        try:
            async with self._write() as conn:
                query = sa.select(idempotency_keys).where(where)
                if self._postgres:
                    query = query.with_for_update()
                row = (await conn.execute(query)).first()
                if row is None:
                    await conn.execute(
                        idempotency_keys.insert().values(
                            principal=principal, key=key, fingerprint=fingerprint, created_at=now
                        )
                    )
                    return IdempotencyClaim("claimed")
                if row.fingerprint != fingerprint:
                    return IdempotencyClaim("mismatch")
                if row.status is not None:
                    return IdempotencyClaim(
                        "replay",
                        StoredResponse(
                            int(row.status), bytes(row.body or b""), row.content_type, row.location
                        ),
                    )
                if now - _aware(row.created_at) > timedelta(seconds=stale_after_seconds):
                    # Its replica died mid-request: the command may or may not have run, and running it
                    # again is what the client asks for by retrying. Commands refuse a repeat themselves
                    # (a stage already started is a 409), so taking the claim over is safe.
                    await conn.execute(idempotency_keys.update().where(where).values(created_at=now))
                    return IdempotencyClaim("claimed")
                return IdempotencyClaim("in_progress")
        except IntegrityError:
            return IdempotencyClaim("in_progress")  # the same key inserted by a concurrent request

    async def complete_request(self, principal: str, key: str, response: StoredResponse) -> None:
        where = (idempotency_keys.c.principal == principal) & (idempotency_keys.c.key == key)
        async with self._write() as conn:
            await conn.execute(
                idempotency_keys.update()
                .where(where)
                .values(
                    status=response.status,
                    body=response.body,
                    content_type=response.content_type,
                    location=response.location,
                )
            )

    async def release_request(self, principal: str, key: str) -> None:
        async with self._write() as conn:
            await conn.execute(
                idempotency_keys.delete().where(
                    idempotency_keys.c.principal == principal,
                    idempotency_keys.c.key == key,
                    idempotency_keys.c.status.is_(None),
                )
            )

    async def purge_requests(self, older_than: datetime) -> int:
        async with self._write() as conn:
            result = await conn.execute(
                idempotency_keys.delete().where(idempotency_keys.c.created_at < older_than)
            )
        return int(result.rowcount)

    # -- events -------------------------------------------------------------------------------------

    async def append_event(self, event: MigrationEvent) -> MigrationEvent:
        async with self._write() as conn:
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
        async with self._write() as conn:
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
        async with self._write() as conn:
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
        "waiting": run.waiting.model_dump(mode="json") if run.waiting is not None else None,
        "contract_proof": run.contract_proof.model_dump(mode="json") if run.contract_proof else None,
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
        waiting=Waiting.model_validate(row["waiting"]) if row["waiting"] else None,
        contract_proof=_contract_proof(row["contract_proof"]),
        created_at=_aware(row["created_at"]),
        updated_at=_aware(row["updated_at"]),
    )


def _contract_proof(value: Any) -> ContractProofRecord | None:
    return ContractProofRecord.model_validate(value) if value else None


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
