"""What the per-operation planners share while walking one spec in order."""

from __future__ import annotations

from dataclasses import dataclass, field

from orchestrator.domain.plan import Stage, Step


@dataclass
class PlanContext:
    lock_timeout_ms: int
    steps: dict[Stage, list[Step]] = field(default_factory=dict)
    # Columns this spec adds, so a later backfill knows dropping them undoes it.
    added_columns: set[tuple[str, str]] = field(default_factory=set)
    dropped_columns: set[tuple[str, str]] = field(default_factory=set)
    backfilled_columns: set[tuple[str, str]] = field(default_factory=set)
    index_names: set[str] = field(default_factory=set)

    def add(self, step: Step) -> None:
        self.steps.setdefault(step.stage, []).append(step)


def step_id(stage: Stage, index: int, kind: str, suffix: str) -> str:
    return f"{stage.value}.{index:02d}.{kind}.{suffix}"
