"""alter_table: a raw MySQL ALTER clause list, run through a copy tool (gh-ost or pt-online-schema-change)
or, with `strategy: direct`, the server's own online DDL. `strategy: auto` takes the server's own DDL
when, planned against the live table, the server makes the change without blocking writes and either
reads no rows (INSTANT, catalog only) or the table is within the configured size (domain/direct_ddl.py);
otherwise a copy tool. The plan says which and why.

Stage placement follows what old application code survives:
- an additive change (new nullable column, new index, table options) is copied and cut over in expand;
- anything else (drop, rename, type change, new unique or foreign key) is cut over only after the
  deploy gate. gh-ost copies in expand and postpones its cut-over until then (it keeps the copy in sync
  from the binary log); pt-osc cannot postpone, and its triggers would tax every write for as long as
  the gate stays open, so it copies in the backfill stage, right before the cut-over.
The copy steps verify the copy against the original (row counts and a checksum of the shared columns)
before anything is swapped; the cut-over keeps the old table when a revert window is asked for.
The tool is chosen again at run time, when the live table and the service's gh-ost binary are known.
"""

from __future__ import annotations

from orchestrator.domain.copy_tools import AlterFacts, CopyPhase, CopyWork, choose_tool, old_table_name
from orchestrator.domain.copy_tools import CopyTool as Tool
from orchestrator.domain.direct_ddl import DirectChoice, OnlineCost, TableSize, choose_direct
from orchestrator.domain.errors import SpecError
from orchestrator.domain.operations import AlterTable
from orchestrator.domain.plan import Stage, Step, StepAction
from orchestrator.engine.planner.context import PlanContext, step_id
from orchestrator.engine.planner.mysql import online_ddl
from orchestrator.engine.planner.mysql.alter_clause import analyse, parse_clause
from orchestrator.engine.planner.mysql.sql import quote_name

ESTIMATE = (
    "about 10 s per million rows on idle hardware (measured: pt-osc 9.4 s, gh-ost 13.5 s on MariaDB "
    "10.11), plus the verification (one checksum pass over both tables); longer while throttled"
)
TOOL_RISK = {
    Tool.GH_OST: (
        "gh-ost copies in chunks and replays the binary log onto its copy: no triggers, a replica "
        "stream's worth of load; the cut-over holds a brief lock (at most lock_timeout per attempt)."
    ),
    Tool.PT_OSC: (
        "pt-osc copies in chunks and keeps the copy in sync with three triggers: every write to the "
        "table also writes the copy for as long as it runs (slower writes, possible deadlocks the "
        "application must retry). The swap is osctl's own RENAME, waited for at most lock_timeout."
    ),
}
COMMON_RISK = (
    "Throttled by replica lag (--max-lag / --max-lag-millis), server load (--max-load), osctl's throttle "
    "and pause; aborted at --critical-load. Needs free disk for a second copy of the table. A mismatch "
    "between copy and original stops the migration before the swap and keeps both tables for a human."
)


def _describe_facts(facts: AlterFacts) -> str:
    if facts.backward_compatible:
        return "additive (old code keeps working): cut over in expand"
    return "breaking for old code (" + "; ".join(facts.incompatible) + "): cut over after the deploy gate"


def plan(op: AlterTable, index: int, context: PlanContext) -> None:
    facts = analyse(op.table, op.alter)
    clause = op.alter.strip().rstrip(";").strip()
    if op.strategy == "direct":
        _plan_direct(op, index, context, clause, facts)
        return
    not_direct = ""
    if op.strategy == "auto":
        direct, online = _direct_choice(op, context)
        if direct.direct:
            _plan_direct(op, index, context, clause, facts, why=direct.why, online=online)
            return
        not_direct = f"; not the server's own DDL: {direct.why}"
    choice = choose_tool(op.strategy, facts, None, ghost_available=None)
    if choice.tool is None and op.strategy == "auto" and context.tables is None:
        # Offline, only the live table can tell whether the server makes it online: plan that, the
        # one way left; planned against the table, the choice is made again (or refused, with reasons).
        why = (
            f"{choice.why}; the server's own online DDL is left, whether it can make it depends on the "
            "live table (LOCK=NONE: refused rather than blocking writes)"
        )
        _plan_direct(op, index, context, clause, facts, why=why)
        return
    if choice.tool is None:
        raise SpecError([("strategy" if op.strategy != "auto" else "alter", choice.why + not_direct)])
    gated = not facts.backward_compatible
    base = CopyWork(
        table=op.table,
        alter=clause,
        phase=CopyPhase.COPY,
        strategy=op.strategy,
        facts=facts,
        gated=gated,
        keep_old_table=op.keep_old_table,
        verify=op.verify,
        max_lag_seconds=op.max_lag_seconds,
        chunk_time_seconds=op.chunk_time_seconds,
        chunk_size=op.chunk_size,
        max_load=op.max_load,
        critical_load=op.critical_load,
    )
    tools = [tool for tool in (Tool.GH_OST, Tool.PT_OSC) if not choice.refusals.get(tool)]
    risk = " ".join(TOOL_RISK[tool] for tool in tools) + " " + COMMON_RISK
    placement = _describe_facts(facts)
    copy_stage = Stage.EXPAND if not gated else Stage.BACKFILL
    if gated:
        _add_copy(
            context,
            index,
            op,
            Stage.EXPAND,
            base.model_copy(update={"deferrable": True}),
            f"copy {op.table} ({clause}) and hold the cut-over for the deploy gate "
            f"[{choice.why}{not_direct}; pt-osc, which cannot hold a cut-over, copies in the backfill stage "
            "instead]",
            risk + " " + placement,
        )
    _add_copy(
        context,
        index,
        op,
        copy_stage,
        base,
        f"copy {op.table} ({clause}), keep the copy in sync and verify it [{choice.why}{not_direct}]"
        + (" (reuses the copy gh-ost holds since expand)" if gated and Tool.GH_OST in tools else ""),
        risk + " " + placement,
    )
    olds = " or ".join(old_table_name(op.table, tool) for tool in tools)
    kept = (
        f"the pre-change table stays as {olds} until contract (revert window)"
        if op.keep_old_table
        else f"the pre-change table ({olds}) is dropped right after the swap"
    )
    context.add(
        Step(
            id=step_id(copy_stage, index, op.kind, f"{op.table}.cut_over"),
            stage=copy_stage,
            operation_index=index,
            action=StepAction.COPY_TABLE,
            description=f"cut over {op.table} to its altered copy; {kept}",
            table=op.table,
            lock_timeout_ms=context.lock_timeout_ms,
            copy_work=base.model_copy(update={"phase": CopyPhase.CUT_OVER}),
            risk=(
                "A brief exclusive metadata lock for the swap (RENAME, or gh-ost's atomic cut-over), waited "
                "for at most lock_timeout per attempt while writes queue behind it. " + placement
            ),
            estimate="< 1 s once the lock is granted",
            irreversible_reason=(
                f"after the cut-over {op.table} takes writes its pre-change copy never sees; undo the change "
                "with a reverse alter_table in a new migration"
                + (f" (the pre-change table is kept as {olds})" if op.keep_old_table else "")
            ),
        )
    )
    if op.keep_old_table:
        context.add(
            Step(
                id=step_id(Stage.CONTRACT, index, op.kind, f"{op.table}.drop_old"),
                stage=Stage.CONTRACT,
                operation_index=index,
                action=StepAction.COPY_TABLE,
                description=f"drop {olds}, the pre-change copy of {op.table} kept as a revert window",
                table=op.table,
                lock_timeout_ms=context.lock_timeout_ms,
                copy_work=base.model_copy(update={"phase": CopyPhase.DROP_OLD}),
                risk="DROP TABLE of a table nobody uses; a large one can stall the server briefly.",
                estimate="seconds",
                irreversible_reason=f"dropping {olds} discards the revert window",
            )
        )


def _add_copy(
    context: PlanContext,
    index: int,
    op: AlterTable,
    stage: Stage,
    work: CopyWork,
    description: str,
    risk: str,
) -> None:
    forward_id = step_id(stage, index, op.kind, f"{op.table}.copy")
    context.add(
        Step(
            id=forward_id,
            stage=stage,
            operation_index=index,
            action=StepAction.COPY_TABLE,
            description=description,
            table=op.table,
            lock_timeout_ms=context.lock_timeout_ms,
            copy_work=work,
            risk=risk,
            estimate=ESTIMATE,
            rollback=Step(
                id=f"rollback.{forward_id}",
                stage=Stage.ROLLBACK,
                operation_index=index,
                action=StepAction.COPY_TABLE,
                description=f"stop the copy tool on {op.table} and drop its copy, triggers and changelog",
                table=op.table,
                lock_timeout_ms=context.lock_timeout_ms,
                copy_work=work.model_copy(update={"phase": CopyPhase.CLEANUP}),
            ),
        )
    )


def _direct_choice(op: AlterTable, context: PlanContext) -> tuple[DirectChoice, online_ddl.Online | None]:
    """Whether auto lets the server make the change itself: only when planned against the live table,
    whose server version and size decide it."""
    live = context.tables.get(op.table) if context.tables is not None else None
    if live is None:
        return DirectChoice(False, "planned without the live table, whose server and size decide that"), None
    version = online_ddl.server_version(live.server_version)
    if version is None:
        return DirectChoice(
            False, f"osctl does not know what server {live.server_version!r} runs online"
        ), None
    tree, understood = parse_clause(op.table, op.alter)
    verdict = online_ddl.verdict(tree, understood, live, version)
    size = TableSize(rows=live.estimated_rows, bytes=live.estimated_bytes)
    choice = choose_direct(verdict, size, context.direct_limits, keep_old_table=op.keep_old_table)
    return choice, online_ddl.Online(version, verdict)


def _plan_direct(
    op: AlterTable,
    index: int,
    context: PlanContext,
    clause: str,
    facts: AlterFacts,
    *,
    why: str | None = None,
    online: online_ddl.Online | None = None,
) -> None:
    if op.keep_old_table:
        raise SpecError(
            [("keep_old_table", "strategy direct changes the table in place: there is no old table")]
        )
    stage = Stage.EXPAND if facts.backward_compatible else Stage.CONTRACT
    # LOCK=NONE: the server refuses rather than blocks writes when it cannot do this online. MariaDB
    # takes INSTANT under INPLACE by itself; MySQL rebuilds under INPLACE, so an all-instant change
    # says INSTANT there (refused, too, rather than done another way).
    algorithm = "ALGORITHM=INPLACE, LOCK=NONE"
    if online is not None and online.version.flavor == "mysql" and online.verdict.cost is OnlineCost.INSTANT:
        algorithm = "ALGORITHM=INSTANT"
    context.add(
        Step(
            id=step_id(stage, index, op.kind, op.table),
            stage=stage,
            operation_index=index,
            action=StepAction.DDL,
            description=op.describe() + " (the server's online DDL)" + (f" [auto: {why}]" if why else ""),
            sql=f"ALTER TABLE {quote_name(op.table)} {clause}, {algorithm}",
            transactional=False,
            table=op.table,
            lock_timeout_ms=context.lock_timeout_ms,
            risk=(
                "In-place online DDL (MariaDB also takes INSTANT under INPLACE): brief exclusive metadata "
                "locks at start and end, waited for at most lock_timeout per attempt; replicas replay it "
                "after the primary (lag for as long as it runs). Refused by the server when the change "
                "needs a table copy: use strategy auto, pt_osc or gh_ost then. " + _describe_facts(facts)
            ),
            estimate="instant, or one rebuild of the table",
            irreversible_reason="a raw ALTER has no inverse osctl can derive; write the reverse as a new migration",
        )
    )
