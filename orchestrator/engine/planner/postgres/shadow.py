"""alter_column by a shadow table: for changes that rewrite the whole table, such as a primary key from
integer to bigint, done without the ACCESS EXCLUSIVE lock a plain `ALTER TABLE ... TYPE` holds for the
length of the rewrite.

- expand: create `_osc_shadow_<table>` (the changed column, the same primary key), the change log
  `_osc_log_<table>` and statement triggers on the original that record the key of every changed row;
- backfill: copy in key order (the backfill engine's chunks: throttled, checkpointed, resumable), replay
  the log and verify every row against the original in consistent snapshots; build the secondary
  indexes and statistics; then swap names in one short transaction under lock_timeout. The original
  stays as `_osc_old_<table>`, kept in step by reverse triggers, so a rollback is a swap back;
- contract: drop `_osc_old_<table>` and the reverse capture: the end of the revert window.

The swap ends the backfill stage rather than opening contract: the deploy gate has passed by then, and
a swap kept reversible until contract is the revert window contract closes.
Why a key log replayed from the original rather than triggers writing the shadow directly: a replay
reads each logged row's current state, so the order in which concurrent transactions commit cannot
leave a stale row behind (a copied chunk that races a delete, say), and the application's writes pay
one small insert, never a write to a table it does not know.
"""

from __future__ import annotations

from orchestrator.domain.errors import SpecError
from orchestrator.domain.operations import AlterColumn
from orchestrator.domain.plan import BackfillWork, Stage, Step, StepAction
from orchestrator.domain.schema import TableInfo
from orchestrator.domain.shadow import (
    MAX_TABLE_NAME,
    ShadowPhase,
    ShadowWork,
    key_type_change_problem,
    log_table_name,
    old_table_name,
    shadow_table_name,
)
from orchestrator.engine.planner.context import PlanContext, step_id
from orchestrator.engine.planner.postgres.backfill import check_expression

# Copy chunks write only the shadow table, which nobody else touches: bigger bites than an UPDATE
# backfill cost the application nothing and save per-chunk overhead.
COPY_BATCH_ROWS = 10_000
COPY_CHUNK_TARGET_MS = 500


def needs_shadow(op: AlterColumn, table: TableInfo | None) -> bool:
    """Whether `op` is done by a shadow table rather than a synced column.

    `shadow` always; `sync_column` never; `auto` when the type of a primary-key column changes (a
    synced column cannot take over a primary key without a second table rewrite). Planned offline
    (`table` None: no live schema), `auto` means a synced column: the plan stored when a migration is
    created is always made against the live table, so what runs is decided by the real schema.
    """
    if op.strategy == "shadow":
        return True
    if op.strategy == "sync_column" or op.type is None or table is None:
        return False
    return op.column in table.primary_key


def plan_shadow(op: AlterColumn, index: int, context: PlanContext) -> None:
    table = context.tables.get(op.table) if context.tables is not None else None
    _check(op, table, context)
    work = ShadowWork(
        table=op.table,
        column=op.column,
        phase=ShadowPhase.PREPARE,
        type=op.type,
        up=op.up,
        down=op.down,
        nullable=op.nullable,
        default=op.default,
        drop_default=op.drop_default,
    )
    shadow, log, old = shadow_table_name(op.table), log_table_name(op.table), old_table_name(op.table)
    _prepare(op, index, context, work, shadow, log)
    _copy(op, index, context, work, shadow)
    _build(op, index, context, work, shadow)
    _swap(op, index, context, work, shadow, old)
    context.add(
        _step(
            context,
            op,
            index,
            Stage.CONTRACT,
            "shadow_drop_old",
            work.model_copy(update={"phase": ShadowPhase.DROP_OLD}),
            f"drop {old} (the pre-change {op.table}) and its reverse change capture",
            risk="DROP TABLE of a table nobody uses any more; the triggers go under lock_timeout.",
            estimate="< 1 s once the lock is granted",
            irreversible_reason=f"dropping {old} ends the revert window of the shadow rewrite of {op.table}",
        )
    )


def _check(op: AlterColumn, table: TableInfo | None, context: PlanContext) -> None:
    problems: list[tuple[str, str]] = []
    if len(op.table) > MAX_TABLE_NAME:
        problems.append(
            (
                "table",
                f"a shadow rewrite names its work tables _osc_shadow_<table>: keep the table name "
                f"to {MAX_TABLE_NAME} characters",
            )
        )
    for name, expression in (("up", op.up), ("down", op.down)):
        if expression is not None:
            try:
                check_expression(expression)
            except SpecError as error:
                problems.extend((name, message) for _, message in error.problems)
    if any(step.table == op.table for steps in context.steps.values() for step in steps):
        problems.append(
            (
                "table",
                f"a shadow rewrite copies all of {op.table}: give the other changes to {op.table} "
                "a migration of their own, before or after this one",
            )
        )
    if table is not None:
        problems.extend(_check_live(op, table))
    if problems:
        raise SpecError(problems)


def _check_live(op: AlterColumn, table: TableInfo) -> list[tuple[str, str]]:
    if op.column not in table.columns:
        return [("column", f"column {op.table}.{op.column} does not exist")]
    refusals = _cannot_carry(table)
    if not table.primary_key:
        refusals.append("it has no primary key to copy and replay along: add one first")
    if refusals:
        return [("table", f"a shadow rewrite cannot carry {op.table} over: {reason}") for reason in refusals]
    if op.column not in table.primary_key:
        return []
    # The change log's keys find rows on both sides by equality: a key's value must survive as is.
    problems: list[tuple[str, str]] = [
        (
            name,
            "a primary-key column's values are carried by a cast in a shadow rewrite: leave out up and down",
        )
        for name, expression in (("up", op.up), ("down", op.down))
        if expression is not None
    ]
    if op.type is not None:
        problem = key_type_change_problem(table.columns[op.column].type, op.type)
        if problem:
            problems.append(("type", problem))
    if op.nullable:
        problems.append(("nullable", "a primary-key column cannot be nullable"))
    return problems


def _cannot_carry(table: TableInfo) -> list[str]:
    """What a swap of names would leave pointing at the old table, or not bring along. The prepare
    step checks again, and for what a snapshot does not show (triggers, policies, publications)."""
    reasons = []
    if table.dependent_views:
        reasons.append(
            f"views {', '.join(table.dependent_views)} read it and would go on reading the old table; "
            "drop them before and create them again after"
        )
    if table.referenced_by:
        reasons.append(
            f"foreign keys {', '.join(table.referenced_by)} reference it and would go on referencing "
            "the old table"
        )
    kinds = {"f": "foreign key", "x": "exclusion constraint"}
    reasons.extend(
        f"its {kinds[constraint.kind]} {name} is not carried over to the shadow table"
        for name, constraint in sorted(table.constraints.items())
        if constraint.kind in kinds
    )
    reasons.extend(
        f"column {name} is an identity column, whose sequence cannot follow it to another table"
        for name, column in table.columns.items()
        if column.identity
    )
    return reasons


def _prepare(
    op: AlterColumn, index: int, context: PlanContext, work: ShadowWork, shadow: str, log: str
) -> None:
    prepare = _step(
        context,
        op,
        index,
        Stage.EXPAND,
        "shadow_prepare",
        work,
        f"create {shadow} ({op.describe()}), the change log {log} and triggers on {op.table} that "
        "record the key of every row written",
        risk=(
            f"CREATE TRIGGER takes a SHARE ROW EXCLUSIVE lock on {op.table} for an instant, waited for at "
            f"most lock_timeout per attempt. From then on every write to {op.table} also inserts its "
            f"keys into {log} (one statement-level trigger per write statement)."
        ),
        estimate="< 1 s once the lock is granted",
    )
    rollback = _step(
        context,
        op,
        index,
        Stage.ROLLBACK,
        "shadow_prepare",
        work.model_copy(update={"phase": ShadowPhase.DROP}),
        f"drop the capture triggers on {op.table}, {log} and {shadow}",
        inverse_of=prepare,
    )
    context.add(prepare.model_copy(update={"rollback": rollback}))


def _copy(op: AlterColumn, index: int, context: PlanContext, work: ShadowWork, shadow: str) -> None:
    expression = op.up or op.column
    if op.type is not None:
        expression = f"CAST(({expression}) AS {op.type})"
    context.add(
        Step(
            id=step_id(Stage.BACKFILL, index, op.kind, f"{op.column}.shadow_copy"),
            stage=Stage.BACKFILL,
            operation_index=index,
            action=StepAction.BACKFILL,
            description=(
                f"copy {op.table} into {shadow} along the primary key ({op.column} = {expression}), "
                "replay the change log and verify every row against the original"
            ),
            table=op.table,
            backfill=BackfillWork(
                table=op.table,
                column=op.column,
                expression=expression,
                batch_size=COPY_BATCH_ROWS,
                pause_ms=0,
                chunk_target_ms=COPY_CHUNK_TARGET_MS,
                shadow=work.model_copy(update={"phase": ShadowPhase.COPY}),
            ),
            risk=(
                f"Reads {op.table} in key ranges without locking rows; writes only {shadow}. WAL and "
                "replica traffic of a second copy of the table; throttled between chunks. Needs free "
                "disk for that copy. A chunk replayed after a crash replaces its range."
            ),
            estimate="about 3-4 s per million rows on idle hardware, plus one verification pass",
        )
    )


def _build(op: AlterColumn, index: int, context: PlanContext, work: ShadowWork, shadow: str) -> None:
    context.add(
        _step(
            context,
            op,
            index,
            Stage.BACKFILL,
            "shadow_build",
            work.model_copy(update={"phase": ShadowPhase.BUILD}),
            f"build the secondary indexes of {op.table} on {shadow}, then ANALYZE it",
            risk=f"Index builds lock only {shadow}, which nothing but osctl uses.",
            estimate="about 0.5-1 s per index per million rows",
        )
    )


def _swap(op: AlterColumn, index: int, context: PlanContext, work: ShadowWork, shadow: str, old: str) -> None:
    swap = _step(
        context,
        op,
        index,
        Stage.BACKFILL,
        "shadow_swap",
        work.model_copy(update={"phase": ShadowPhase.SWAP}),
        f"catch {shadow} up with the change log, then in one transaction lock {op.table}, replay the "
        f"rest, rename {op.table} to {old} and {shadow} to {op.table} (indexes, sequence ownership "
        f"too), and capture writes in reverse so {old} stays in step until contract",
        risk=(
            f"An ACCESS EXCLUSIVE lock on {op.table} for the swap: writes wait at most lock_timeout for "
            "it to be granted, then for the few milliseconds the swap takes. Clients holding prepared "
            "statements that return the changed column may see one 'cached plan must not change "
            "result type' error."
        ),
        estimate="< 1 s once the lock is granted",
    )
    rollback = _step(
        context,
        op,
        index,
        Stage.ROLLBACK,
        "shadow_swap",
        work.model_copy(update={"phase": ShadowPhase.SWAP_BACK}),
        f"catch {old} up with the writes made since the swap, then swap the names back",
        inverse_of=swap,
    )
    context.add(swap.model_copy(update={"rollback": rollback}))


def _step(
    context: PlanContext,
    op: AlterColumn,
    index: int,
    stage: Stage,
    suffix: str,
    work: ShadowWork,
    description: str,
    *,
    risk: str = "",
    estimate: str = "",
    irreversible_reason: str | None = None,
    inverse_of: Step | None = None,
) -> Step:
    forward_id = step_id(stage, index, op.kind, f"{op.column}.{suffix}")
    return Step(
        id=f"rollback.{inverse_of.id}" if inverse_of is not None else forward_id,
        stage=stage,
        operation_index=index,
        action=StepAction.SHADOW_TABLE,
        description=description,
        table=op.table,
        lock_timeout_ms=context.lock_timeout_ms,
        shadow=work,
        risk=risk,
        estimate=estimate,
        irreversible_reason=irreversible_reason,
    )
