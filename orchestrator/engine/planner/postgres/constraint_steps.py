"""Steps for indexes and constraints, each with its inverse, shared by add_column, add_unique,
add_foreign_key and add_check.

The pattern is the same for every constraint on a live table: build what needs a scan without a
write lock (an index CONCURRENTLY, a constraint NOT VALID that only checks new writes), and pay for
the scan of existing rows later under SHARE UPDATE EXCLUSIVE (VALIDATE), which writes do not wait on.
"""

from __future__ import annotations

from dataclasses import dataclass

from orchestrator.domain.identifiers import quote_ident
from orchestrator.domain.operations import ForeignKeyReference
from orchestrator.domain.plan import Stage, Step, StepAction
from orchestrator.engine.planner.context import PlanContext, step_id
from orchestrator.engine.planner.postgres.ddl_text import unless_constraint

ON_DELETE_SQL = {
    "no_action": "NO ACTION",
    "restrict": "RESTRICT",
    "cascade": "CASCADE",
    "set_null": "SET NULL",
    "set_default": "SET DEFAULT",
}

_CONCURRENT = (StepAction.CREATE_INDEX_CONCURRENTLY, StepAction.DROP_INDEX_CONCURRENTLY)
CATALOG_ONLY_RISK = "ACCESS EXCLUSIVE lock for a catalog-only change; waits at most lock_timeout per attempt."
CATALOG_ONLY_ESTIMATE = "< 1 s once the lock is granted (no table scan)"


@dataclass(frozen=True)
class Owner:
    """The operation a step belongs to: where it sits in the spec and how its step ids read."""

    index: int
    kind: str
    table: str

    def step_id(self, stage: Stage, suffix: str) -> str:
        return step_id(stage, self.index, self.kind, suffix)


def ddl_step(
    owner: Owner,
    context: PlanContext,
    *,
    stage: Stage,
    suffix: str,
    description: str,
    sql: str | None,
    risk: str,
    estimate: str,
    rollback_sql: str | None = None,
    rollback_description: str = "",
    action: StepAction = StepAction.DDL,
    rollback_action: StepAction | None = None,
    index_name: str | None = None,
    irreversible_reason: str | None = None,
) -> Step:
    """One step and, when `rollback_sql` is given, its inverse side by side. Index builds and drops
    run outside a transaction (CONCURRENTLY); the inverse of a build is a concurrent drop."""
    forward_id = owner.step_id(stage, suffix)
    if rollback_action is None:
        concurrent_build = action is StepAction.CREATE_INDEX_CONCURRENTLY
        rollback_action = StepAction.DROP_INDEX_CONCURRENTLY if concurrent_build else StepAction.DDL
    rollback = None
    if rollback_sql is not None:
        rollback = Step(
            id=f"rollback.{forward_id}",
            stage=Stage.ROLLBACK,
            operation_index=owner.index,
            action=rollback_action,
            description=rollback_description,
            sql=rollback_sql,
            transactional=rollback_action not in _CONCURRENT,
            table=owner.table,
            index_name=index_name,
            lock_timeout_ms=context.lock_timeout_ms,
        )
    return Step(
        id=forward_id,
        stage=stage,
        operation_index=owner.index,
        action=action,
        description=description,
        sql=sql,
        transactional=action not in _CONCURRENT,
        table=owner.table,
        index_name=index_name,
        lock_timeout_ms=context.lock_timeout_ms,
        risk=risk,
        estimate=estimate,
        rollback=rollback,
        irreversible_reason=irreversible_reason,
    )


def drop_constraint_sql(table: str, name: str) -> str:
    return f"ALTER TABLE {quote_ident(table)} DROP CONSTRAINT IF EXISTS {quote_ident(name)}"


def index_step(
    owner: Owner, context: PlanContext, *, name: str, columns: list[str], unique: bool, suffix: str
) -> Step:
    """A btree index over plain columns, built concurrently; undone by dropping it concurrently."""
    kind = "UNIQUE INDEX" if unique else "INDEX"
    keys = ", ".join(quote_ident(column) for column in columns)
    risk = "No write lock: SHARE UPDATE EXCLUSIVE only. Waits for older transactions before each phase."
    if unique:
        risk += " Fails if duplicates exist; the INVALID index is dropped before any retry."
    return ddl_step(
        owner,
        context,
        stage=Stage.EXPAND,
        suffix=suffix,
        description=f"build {kind.lower()} {name} on {owner.table} ({', '.join(columns)}) concurrently",
        sql=f"CREATE {kind} CONCURRENTLY IF NOT EXISTS {quote_ident(name)} ON {quote_ident(owner.table)} "
        f"USING btree ({keys})",
        risk=risk,
        estimate="two table scans plus a sort; roughly 1-3 s per million rows on idle hardware",
        rollback_sql=f"DROP INDEX CONCURRENTLY IF EXISTS {quote_ident(name)}",
        rollback_description=f"drop index {name}",
        action=StepAction.CREATE_INDEX_CONCURRENTLY,
        index_name=name,
    )


def attach_unique_step(owner: Owner, context: PlanContext, *, name: str, suffix: str) -> Step:
    """The unique index (named like the constraint) becomes a UNIQUE constraint: catalog-only."""
    table = quote_ident(owner.table)
    statement = (
        f"ALTER TABLE {table} ADD CONSTRAINT {quote_ident(name)} UNIQUE USING INDEX {quote_ident(name)}"
    )
    return ddl_step(
        owner,
        context,
        stage=Stage.EXPAND,
        suffix=suffix,
        description=f"turn unique index {name} into constraint {name} on {owner.table}",
        sql=unless_constraint(owner.table, name, statement),
        risk=CATALOG_ONLY_RISK + " The index already holds every row, so nothing is scanned.",
        estimate=CATALOG_ONLY_ESTIMATE,
        # Dropping the constraint drops its index too.
        rollback_sql=drop_constraint_sql(owner.table, name),
        rollback_description=f"drop constraint {name} (and its index)",
    )


def foreign_key_sql(table: str, name: str, columns: list[str], references: ForeignKeyReference) -> str:
    local = ", ".join(quote_ident(column) for column in columns)
    remote = ", ".join(quote_ident(column) for column in references.columns)
    return (
        f"ALTER TABLE {quote_ident(table)} ADD CONSTRAINT {quote_ident(name)} FOREIGN KEY ({local}) "
        f"REFERENCES {quote_ident(references.table)} ({remote}) "
        f"ON DELETE {ON_DELETE_SQL[references.on_delete]} NOT VALID"
    )


def foreign_key_step(
    owner: Owner,
    context: PlanContext,
    *,
    name: str,
    columns: list[str],
    references: ForeignKeyReference,
    suffix: str,
) -> Step:
    return ddl_step(
        owner,
        context,
        stage=Stage.EXPAND,
        suffix=suffix,
        description=f"add foreign key {name} on {owner.table} ({', '.join(columns)}) -> "
        f"{references.table} ({', '.join(references.columns)}) NOT VALID",
        sql=unless_constraint(owner.table, name, foreign_key_sql(owner.table, name, columns, references)),
        risk=(
            f"SHARE ROW EXCLUSIVE on {owner.table} and {references.table} for a catalog-only change "
            "(NOT VALID: existing rows are not scanned; new writes are checked from now on); waits at "
            "most lock_timeout per attempt."
        ),
        estimate=CATALOG_ONLY_ESTIMATE,
        rollback_sql=drop_constraint_sql(owner.table, name),
        rollback_description=f"drop foreign key {name}",
    )


def check_step(
    owner: Owner, context: PlanContext, *, name: str, expression: str, suffix: str, stage: Stage
) -> Step:
    statement = (
        f"ALTER TABLE {quote_ident(owner.table)} ADD CONSTRAINT {quote_ident(name)} "
        f"CHECK ({expression}) NOT VALID"
    )
    return ddl_step(
        owner,
        context,
        stage=stage,
        suffix=suffix,
        description=f"add check {name} on {owner.table} ({expression}) NOT VALID",
        sql=unless_constraint(owner.table, name, statement),
        risk=CATALOG_ONLY_RISK
        + " NOT VALID: existing rows are not scanned; new writes are checked from now on.",
        estimate=CATALOG_ONLY_ESTIMATE,
        rollback_sql=drop_constraint_sql(owner.table, name),
        rollback_description=f"drop check {name}",
    )


def validate_step(owner: Owner, context: PlanContext, *, name: str, suffix: str, what: str) -> Step:
    """VALIDATE scans the table under SHARE UPDATE EXCLUSIVE: reads and writes go on. Nothing to
    undo: the constraint's own rollback drops it, validated or not."""
    return ddl_step(
        owner,
        context,
        stage=Stage.BACKFILL,
        suffix=suffix,
        description=f"validate {what} {name} on {owner.table}",
        sql=f"ALTER TABLE {quote_ident(owner.table)} VALIDATE CONSTRAINT {quote_ident(name)}",
        risk=(
            "SHARE UPDATE EXCLUSIVE while every existing row is checked: application reads and writes "
            "go on; other DDL and VACUUM on the table wait. Fails, naming the constraint, if a row "
            "violates it."
        ),
        estimate="one table scan; roughly 0.5-2 s per million rows on idle hardware",
    )
