"""The plan as a change-ticket document (`osctl plan --format markdown`): purpose, risk level with its
reasons, what each stage does, rollback per stage, estimated time, the checks that passed, and for a
plan converted from SQL what was left out and why the SQL as written was not run.

Offline, without the live preflight, estimates are per step and sizes are unknown; the document says
so rather than inventing numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

from orchestrator.domain.plan import Plan, Stage, Step, StepAction
from orchestrator.lint.convert import Conversion, Outcome
from orchestrator.lint.findings import Severity
from orchestrator.lint.live import LivePreflight
from orchestrator.lint.live_render import markdown_checks, markdown_estimates


@dataclass(frozen=True)
class Risk:
    level: str  # low, medium, high
    reasons: list[str]


def assess_risk(plan: Plan, conversion: Conversion | None = None) -> Risk:
    """High: something cannot be undone. Medium: long writes or a step that can fail on the data.
    Low: additive, catalog-only or concurrent steps only."""
    high: list[str] = []
    medium: list[str] = []
    for step in plan.steps():
        if step.irreversible_reason:
            high.append(f"{step.id}: no rollback - {step.irreversible_reason}")
        if step.action is StepAction.BACKFILL:
            medium.append(f"{step.id}: writes every row of {step.table} (in short chunks; replicas follow)")
        if step.action is StepAction.CREATE_INDEX_CONCURRENTLY and "duplicates" in step.risk:
            medium.append(f"{step.id}: a unique index fails if {step.table} holds duplicates")
    if conversion is not None:
        left_out = [note for note in conversion.notes if note.outcome is Outcome.NOT_CONVERTED]
        if left_out:
            medium.append(
                f"{len(left_out)} statement(s) of {conversion.source} are not in this plan and need their own "
                "change (listed below)"
            )
    if high:
        return Risk("high", high + medium)
    if medium:
        return Risk("medium", medium)
    return Risk(
        "low", ["only additive steps: catalog-only changes under lock_timeout and concurrent index builds"]
    )


def render_plan_document(
    plan: Plan, conversion: Conversion | None = None, *, purpose: str = "", live: LivePreflight | None = None
) -> str:
    """`purpose` is the spec's description; a conversion brings its own. `live`: the live preflight
    (sizes, data checks, measured durations), when planned against a target."""
    lines = [f"# Migration plan: {plan.migration}", "", "## Purpose", ""]
    steps = plan.steps()
    if conversion is not None and conversion.spec is not None:
        purpose = purpose or conversion.spec.description
    if purpose:
        lines += [purpose, ""]
    lines.append(f"Changes on {', '.join(plan.tables()) or 'no table'} ({plan.engine}):")
    lines.extend(f"- {step.description}" for step in steps)

    risk = assess_risk(plan, conversion)
    if live is not None and not live.passed:
        refused = [f"the live preflight refuses the plan: {message}" for _, message in live.problems]
        risk = Risk("high", refused + risk.reasons)
    lines += ["", f"## Risk: {risk.level}", ""]
    lines.extend(f"- {reason}" for reason in risk.reasons)

    lines += ["", "## Stages", ""]
    lines.append(
        f"Every DDL step runs under lock_timeout {plan.lock_timeout_ms} ms and is retried up to "
        f"{plan.ddl_attempts} times, so it never queues application traffic for longer than that."
    )
    for number, staged in enumerate(plan.stages, start=1):
        lines += ["", f"### {number}. {staged.stage.value}", "", staged.purpose, ""]
        if not staged.steps:
            detail = (
                "Waits for approval: nothing runs on the database."
                if staged.stage is Stage.DEPLOY_GATE
                else "Nothing to do."
            )
            lines.append(detail)
        for step in staged.steps:
            lines.append(f"- **{step.description}** (`{step.id}`)")
            if step.sql:
                lines.append(f"  - SQL: `{step.sql}`")
            if step.backfill is not None:
                lines.append(
                    f"  - Sets `{step.backfill.column} = {step.backfill.expression}` in chunks of "
                    f"{step.backfill.batch_size} rows along the primary key, one transaction each"
                )
            if step.risk:
                lines.append(f"  - Risk: {step.risk}")
        if staged.steps:
            lines += ["", f"Rollback of {staged.stage.value}:"]
            lines.extend(_stage_rollback(staged.steps))

    lines += ["", "## Estimated time", ""]
    if live is not None:
        lines.extend(markdown_estimates(live))
    else:
        for staged in plan.stages:
            estimates = [f"{step.description}: {step.estimate}" for step in staged.steps if step.estimate]
            if estimates:
                lines.append(f"- {staged.stage.value}: " + "; ".join(estimates))
        lines.append(
            "- Table sizes are not known offline: the live preflight (`--target-dsn DSN`) turns these into "
            "durations from the table's size and a copy rate measured on the target."
        )

    lines += ["", "## Checks", ""]
    if live is not None:
        lines.extend(markdown_checks(live))
    else:
        lines.append("- Passed: the spec validates (identifiers, type names, constants, expressions parse).")
    lines.append(
        "- Passed: the planner's checks (nothing added, indexed or dropped twice; nothing backfilled that "
        "the plan drops; unique indexes only as btree)."
    )
    if live is None:
        lines.append(
            "- Not run: the live preflight (sizes, NULLs, duplicates, orphans, casts, blocking "
            "transactions): give `--target-dsn DSN`."
        )

    if conversion is not None:
        lines.extend(_conversion_sections(conversion))
    return "\n".join(lines) + "\n"


def _stage_rollback(steps: list[Step]) -> list[str]:
    lines = []
    for step in reversed(steps):
        if step.rollback is not None:
            lines.append(f"- {step.rollback.description}: `{step.rollback.sql or step.rollback.description}`")
        elif step.irreversible_reason:
            lines.append(
                f"- none for {step.description}: {step.irreversible_reason} (refused up front once run)"
            )
        else:
            lines.append(f"- nothing to undo for {step.description}")
    return lines


def _conversion_sections(conversion: Conversion) -> list[str]:
    lines = ["", f"## Statements of {conversion.source}", ""]
    lines.append("| # | line | statement | outcome | why |")
    lines.append("|---|---|---|---|---|")
    for note in conversion.notes:
        sql = note.sql.replace("|", "\\|")
        outcome = note.outcome.value + (f": {'; '.join(note.operations)}" if note.operations else "")
        lines.append(f"| {note.statement_index} | {note.line} | `{sql}` | {outcome} | {note.reason} |")
    risky = [f for f in conversion.lint.findings if f.severity in (Severity.ERROR, Severity.WARNING)]
    lines += ["", "## The SQL as written", ""]
    if not risky:
        lines.append("The linter found nothing that puts a live table at risk in the SQL as written.")
    for finding in risky:
        lines.append(
            f"- statement {finding.statement_index} (line {finding.line}), {finding.severity.value} "
            f"`{finding.rule}`: {finding.message}"
        )
    return lines
