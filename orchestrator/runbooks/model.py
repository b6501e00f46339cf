"""A runbook as data: where it applies and its steps, each from a fixed vocabulary. Pure.

The vocabulary is closed on purpose: a runbook says *what* to do in words on-call knows (pause, abort
the copy, reverse the DDL); how each word is done on each engine lives in the planner and the
adapters, which are tested. Nothing in a runbook is SQL.
"""

from __future__ import annotations

import hashlib
import json
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

StageReached = Literal["expand", "deploy_gate", "backfill", "contract"]
STAGES_REACHED: tuple[StageReached, ...] = ("expand", "deploy_gate", "backfill", "contract")
Engine = Literal["postgres", "mysql"]

# What each engine can do, and therefore what a runbook for it may name.
STRATEGIES: dict[str, tuple[str, ...]] = {
    "postgres": ("direct", "sync_column", "shadow"),
    "mysql": ("direct", "pt_osc", "gh_ost"),
}


class StepKind(StrEnum):
    PAUSE_MIGRATION = "pause_migration"
    THROTTLE_COPY = "throttle_copy"
    ABORT_COPY = "abort_copy"
    DROP_COPY_ARTIFACTS = "drop_copy_artifacts"
    REVERSE_DDL = "reverse_ddl"
    SWAP_SHADOW_BACK = "swap_shadow_back"
    RESTORE_ARCHIVED_COLUMN = "restore_archived_column"
    WAIT_FOR_REPLICAS = "wait_for_replicas"
    REQUIRE_CONFIRMATION = "require_confirmation"
    NOTIFY = "notify"


# Steps that change the database: a confirmation must come before all of them.
CHANGES_DATABASE = frozenset(
    {
        StepKind.ABORT_COPY,
        StepKind.DROP_COPY_ARTIFACTS,
        StepKind.REVERSE_DDL,
        StepKind.SWAP_SHADOW_BACK,
        StepKind.RESTORE_ARCHIVED_COLUMN,
    }
)
# Steps that may appear more than once (a notification at the start and at the end, say).
REPEATABLE = frozenset({StepKind.NOTIFY, StepKind.WAIT_FOR_REPLICAS})
# Which engine and strategies a step has a meaning for; a runbook naming it elsewhere is refused.
ONLY_FOR: dict[StepKind, tuple[str, frozenset[str]]] = {
    StepKind.THROTTLE_COPY: ("mysql", frozenset({"pt_osc", "gh_ost"})),
    StepKind.ABORT_COPY: ("mysql", frozenset({"pt_osc", "gh_ost"})),
    StepKind.SWAP_SHADOW_BACK: ("postgres", frozenset({"shadow"})),
    StepKind.RESTORE_ARCHIVED_COLUMN: ("postgres", frozenset({"direct", "sync_column", "shadow"})),
}


class _Step(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)


class PauseMigration(_Step):
    """Stop the running stage at its next safe point: between statements, chunks, or with a copy
    tool held in place. Done by the service before anything else, so it is always the first effect."""

    kind: Literal["pause_migration"] = "pause_migration"


class ThrottleCopy(_Step):
    """Hold the copy tool where it is: pt-osc's pause file, gh-ost's `throttle`."""

    kind: Literal["throttle_copy"] = "throttle_copy"


class AbortCopy(_Step):
    """Stop the copy tool for good (gh-ost `panic`, pt-osc terminated); its copy goes with it."""

    kind: Literal["abort_copy"] = "abort_copy"


class DropCopyArtifacts(_Step):
    """Drop what copies and failed builds leave: shadow tables and their triggers, `_gho`/`_ghc`,
    `_new` and pt-osc's triggers, INVALID indexes the migration created."""

    kind: Literal["drop_copy_artifacts"] = "drop_copy_artifacts"


class ReverseDdl(_Step):
    """The inverse of every started step no other runbook step undoes, newest first."""

    kind: Literal["reverse_ddl"] = "reverse_ddl"


class SwapShadowBack(_Step):
    """Catch the pre-change table up and swap the names back (a shadow rewrite past its swap)."""

    kind: Literal["swap_shadow_back"] = "swap_shadow_back"


class RestoreArchivedColumn(_Step):
    """Re-add a column drop_column archived and write its values back from the archive, in chunks."""

    kind: Literal["restore_archived_column"] = "restore_archived_column"


class WaitForReplicas(_Step):
    """Wait until every replica's lag is below `max_lag_seconds`, for at most `timeout_seconds`."""

    kind: Literal["wait_for_replicas"] = "wait_for_replicas"
    max_lag_seconds: float = Field(default=1.0, gt=0, le=3600)
    timeout_seconds: float = Field(default=600.0, gt=0, le=86_400)
    # Without a replica-lag signal for the target there is nothing to read: go on (and say so in the
    # plan and the event) or fail the step so a human checks the replicas by hand.
    if_unmeasured: Literal["proceed", "fail"] = "proceed"


class RequireConfirmation(_Step):
    """The rollback starts only when the caller confirms (`{"confirm": true}` or the dry run's token)."""

    kind: Literal["require_confirmation"] = "require_confirmation"
    message: str = Field(min_length=1, max_length=500)


class Notify(_Step):
    """A line in the migration's event log (and its Slack thread)."""

    kind: Literal["notify"] = "notify"
    message: str = Field(min_length=1, max_length=500)


RunbookStep = Annotated[
    PauseMigration
    | ThrottleCopy
    | AbortCopy
    | DropCopyArtifacts
    | ReverseDdl
    | SwapShadowBack
    | RestoreArchivedColumn
    | WaitForReplicas
    | RequireConfirmation
    | Notify,
    Field(discriminator="kind"),
]


class Applicability(BaseModel):
    """The runs a runbook is for: an engine, the stages reached, and strategies (or `any`)."""

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)

    engine: Engine
    stages: list[StageReached] = Field(min_length=1)
    strategies: list[str] | Literal["any"] = Field(min_length=1)

    def covers(self, engine: str, stage: str, strategy: str) -> bool:
        if engine != self.engine or stage not in self.stages:
            return False
        return self.strategies == "any" or strategy in self.strategies

    def strategy_set(self) -> frozenset[str]:
        if self.strategies == "any":
            return frozenset(STRATEGIES[self.engine])
        return frozenset(self.strategies)


class Runbook(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{1,62}$")
    description: str = Field(min_length=10, max_length=2000)
    applies_to: Applicability
    steps: list[RunbookStep] = Field(min_length=1)
    source: str = Field(default="", exclude=True)  # file name, set by the loader; not part of the digest

    @property
    def confirmation(self) -> RequireConfirmation | None:
        return next((step for step in self.steps if isinstance(step, RequireConfirmation)), None)

    def digest(self) -> str:
        """Identifies this version of the runbook: checkpoints of a rollback carry it, so a runbook
        edited between a crash and the restart does not have its steps mistaken for the old ones."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:12]


Path = tuple[str | int, ...]


def runbook_problems(runbook: Runbook) -> list[tuple[Path, str]]:
    """What the types cannot say: the steps make sense together and for where the runbook applies."""
    problems: list[tuple[Path, str]] = []
    applies = runbook.applies_to
    known = STRATEGIES[applies.engine]
    if applies.strategies != "any":
        for index, strategy in enumerate(applies.strategies):
            if strategy not in known:
                problems.append(
                    (
                        ("applies_to", "strategies", index),
                        f"{strategy!r} is not a {applies.engine} strategy; one of {', '.join(known)} or any",
                    )
                )
        if len(set(applies.strategies)) != len(applies.strategies):
            problems.append((("applies_to", "strategies"), "a strategy is listed twice"))
    if len(set(applies.stages)) != len(applies.stages):
        problems.append((("applies_to", "stages"), "a stage is listed twice"))
    kinds = [StepKind(step.kind) for step in runbook.steps]
    if StepKind.REVERSE_DDL not in kinds:
        problems.append(
            (
                ("steps",),
                "a rollback runbook needs reverse_ddl: it undoes every started step the other steps "
                "do not, so nothing done is left behind",
            )
        )
    seen: set[StepKind] = set()
    first_change = next((index for index, kind in enumerate(kinds) if kind in CHANGES_DATABASE), None)
    for index, kind in enumerate(kinds):
        path: Path = ("steps", index, kind.value)
        if kind in seen and kind not in REPEATABLE:
            problems.append((path, f"{kind.value} appears twice; once is enough (every step is idempotent)"))
        seen.add(kind)
        if kind is StepKind.REQUIRE_CONFIRMATION and first_change is not None and index > first_change:
            problems.append(
                (
                    path,
                    f"require_confirmation must come before {kinds[first_change].value}: the confirmation "
                    "is asked before the rollback starts, so write it where it takes effect",
                )
            )
        if kind in ONLY_FOR:
            engine, strategies = ONLY_FOR[kind]
            if applies.engine != engine or not (applies.strategy_set() & strategies):
                problems.append(
                    (
                        path,
                        f"{kind.value} only means something on {engine} with strategy "
                        f"{' or '.join(sorted(strategies))}; this runbook applies to {applies.engine} "
                        f"({applies.strategies if applies.strategies == 'any' else ', '.join(applies.strategies)})",
                    )
                )
    return problems
