"""Runbook files -> Runbook models, with the file and line of every problem.

The YAML is composed into nodes first (they keep their line), then constructed and validated; a
problem's field path is mapped back to the line of the deepest node on that path. A bad runbook stops
the service at start-up: a rollback must never discover at 3 a.m. that its runbook does not parse.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path as FilePath
from typing import Any

import yaml
from pydantic import ValidationError

from orchestrator.domain.errors import NotFoundError, OrchestratorError
from orchestrator.runbooks.model import (
    STAGES_REACHED,
    STRATEGIES,
    Path,
    Runbook,
    StepKind,
    runbook_problems,
)

SUFFIXES = (".yaml", ".yml")
# Steps whose one setting may be written as a plain string: `- notify: "rollback started"`.
SHORTHAND = {StepKind.NOTIFY.value: "message", StepKind.REQUIRE_CONFIRMATION.value: "message"}
# Stands in for a step that could not be read, so the rest is still validated at the right indices.
PLACEHOLDER = {"kind": StepKind.NOTIFY.value, "message": "(a step that could not be read)"}


class RunbookError(OrchestratorError):
    """One or more runbooks are invalid. `problems` holds ("file:line: field", message) pairs."""

    def __init__(self, problems: Sequence[tuple[str, str]]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(f"{where}: {message}" for where, message in self.problems))


@dataclass
class _Lines:
    """The line (1-based) of each node of the document, by field path."""

    source: str
    by_path: dict[Path, int] = field(default_factory=dict)
    repeated: dict[Path, int] = field(default_factory=dict)  # a key given twice: where it was again

    def where(self, path: Path) -> str:
        if path in self.repeated:
            return f"{self.source}:{self.repeated[path]}: {'.'.join(str(part) for part in path)}"
        for length in range(len(path), -1, -1):
            line = self.by_path.get(tuple(path[:length]))
            if line is not None:
                dotted = ".".join(str(part) for part in path) or "(runbook)"
                return f"{self.source}:{line}: {dotted}"
        return f"{self.source}: {'.'.join(str(part) for part in path) or '(runbook)'}"


def _walk(node: yaml.Node, path: Path, lines: _Lines, problems: list[tuple[Path, str]]) -> None:
    lines.by_path.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            if key in seen:
                lines.repeated[(*path, key)] = key_node.start_mark.line + 1
                problems.append(((*path, key), f"{key!r} is given twice"))
            seen.add(key)
            _walk(value_node, (*path, key), lines, problems)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _walk(item, (*path, index), lines, problems)


def _normalise_steps(raw: Any, problems: list[tuple[Path, str]]) -> Any:
    """`- name` and `- name: {settings}` become `{"kind": name, ...settings}` (the model's shape)."""
    if not isinstance(raw, list):
        return raw
    vocabulary = ", ".join(kind.value for kind in StepKind)
    steps: list[Any] = []
    for index, item in enumerate(raw):
        if isinstance(item, str):
            name, settings = item, None
        elif isinstance(item, dict) and len(item) == 1:
            name, settings = next(iter(item.items()))
        else:
            problems.append(
                (
                    ("steps", index),
                    "a step is one name, or one name with its settings, e.g. "
                    "`- wait_for_replicas: {max_lag_seconds: 2}`",
                )
            )
            steps.append(PLACEHOLDER)
            continue
        if name not in {kind.value for kind in StepKind}:
            problems.append((("steps", index), f"unknown step {name!r}; one of {vocabulary}"))
            steps.append(PLACEHOLDER)
            continue
        if isinstance(settings, str) and name in SHORTHAND:
            settings = {SHORTHAND[name]: settings}
        if settings is None:
            settings = {}
        if not isinstance(settings, dict):
            problems.append((("steps", index, name), "the settings of a step are a mapping"))
            steps.append(PLACEHOLDER)
            continue
        steps.append({**settings, "kind": name})
    return steps


def parse_runbook(text: str, source: str) -> Runbook:
    """One runbook from YAML text; RunbookError names `source`, the line and the field of each problem."""
    lines = _Lines(source)
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        raise RunbookError(
            [(where, f"not valid YAML: {getattr(error, 'problem', None) or error}")]
        ) from error
    if node is None:
        raise RunbookError([(source, "the file is empty; a runbook has id, description, applies_to, steps")])
    problems: list[tuple[Path, str]] = []
    _walk(node, (), lines, problems)
    data = yaml.SafeLoader("").construct_document(node)
    if not isinstance(data, dict):
        raise RunbookError([(lines.where(()), "a runbook is a mapping: id, description, applies_to, steps")])
    data = {**data, "steps": _normalise_steps(data.get("steps"), problems)}
    runbook: Runbook | None = None
    try:  # validated even after a bad step: every problem of the file at once
        runbook = Runbook.model_validate({**data, "source": source})
    except ValidationError as error:
        for item in error.errors(include_url=False):
            problems.append((tuple(item["loc"]), item["msg"].removeprefix("Value error, ")))
    if runbook is not None:
        problems.extend(runbook_problems(runbook))
    if problems:
        raise RunbookError([(lines.where(path), message) for path, message in problems])
    assert runbook is not None
    return runbook


class RunbookCatalogue:
    """The runbooks the service knows, checked together: unique ids, and no two that claim the same
    engine, stage and strategy with the same precedence (explicit strategies win over `any`)."""

    def __init__(self, runbooks: Iterable[Runbook]) -> None:
        self.runbooks = tuple(sorted(runbooks, key=lambda runbook: runbook.id))
        problems = _catalogue_problems(self.runbooks)
        if problems:
            raise RunbookError(problems)

    def get(self, runbook_id: str) -> Runbook:
        for runbook in self.runbooks:
            if runbook.id == runbook_id:
                return runbook
        raise NotFoundError("runbook", runbook_id)

    def covering(self, engine: str, stage: str, strategy: str) -> Runbook | None:
        """The runbook for this combination: one naming the strategy, else one for `any`."""
        found = [runbook for runbook in self.runbooks if runbook.applies_to.covers(engine, stage, strategy)]
        explicit = [runbook for runbook in found if runbook.applies_to.strategies != "any"]
        chosen = explicit or found
        return chosen[0] if chosen else None

    def uncovered(self) -> list[tuple[str, str, str]]:
        """Engine, stage and strategy combinations no runbook applies to."""
        return [
            (engine, stage, strategy)
            for engine, strategies in STRATEGIES.items()
            for stage in STAGES_REACHED
            for strategy in strategies
            if self.covering(engine, stage, strategy) is None
        ]


def _catalogue_problems(runbooks: Sequence[Runbook]) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    by_id: dict[str, Runbook] = {}
    for runbook in runbooks:
        if runbook.id in by_id:
            problems.append((runbook.source, f"id {runbook.id!r} is also used by {by_id[runbook.id].source}"))
        by_id[runbook.id] = runbook
    # Two runbooks claiming the same combination with the same precedence: which one runs would be an
    # accident of file names. Reported once per pair, with every combination they share.
    shared: dict[tuple[str, str], list[str]] = {}
    for engine, strategies in STRATEGIES.items():
        for stage in STAGES_REACHED:
            for strategy in strategies:
                found = [r for r in runbooks if r.applies_to.covers(engine, stage, strategy)]
                for explicit in (True, False):
                    same = [r for r in found if (r.applies_to.strategies != "any") is explicit]
                    for one, other in itertools.pairwise(same):
                        shared.setdefault((one.id, other.id), []).append(f"{engine} {stage} {strategy}")
    sources = {runbook.id: runbook.source for runbook in runbooks}
    for (first, second), combinations in shared.items():
        problems.append(
            (
                f"{sources[second]}:1",
                f"runbooks {first} ({sources[first]}) and {second} both apply to "
                f"{', '.join(combinations)}: narrow applies_to so one runbook answers each",
            )
        )
    return problems


def load_directory(directory: FilePath) -> RunbookCatalogue:
    """Every *.yaml / *.yml in `directory`, all problems of all files at once."""
    if not directory.is_dir():
        raise RunbookError([(str(directory), "no such runbooks directory (OSCTL_RUNBOOKS_DIR)")])
    runbooks: list[Runbook] = []
    problems: list[tuple[str, str]] = []
    for path in sorted(directory.iterdir()):
        if path.suffix not in SUFFIXES or not path.is_file():
            continue
        try:
            runbooks.append(parse_runbook(path.read_text(encoding="utf-8"), str(path)))
        except RunbookError as error:
            problems.extend(error.problems)
        except (OSError, UnicodeDecodeError) as error:
            problems.append((str(path), f"cannot read it: {error}"))
    if problems:
        raise RunbookError(problems)
    return RunbookCatalogue(runbooks)


def shipped_directory() -> FilePath:
    """`runbooks/` beside the package in a source checkout; the image sets OSCTL_RUNBOOKS_DIR."""
    return FilePath(__file__).resolve().parents[2] / "runbooks"


def configured_catalogue(environ: Mapping[str, str]) -> RunbookCatalogue | None:
    """The runbooks `osctl serve` runs: OSCTL_RUNBOOKS_DIR, else the shipped ones when present.
    RunbookError (file, line, reason) for any bad runbook: the service must not start with it."""
    named = environ.get("OSCTL_RUNBOOKS_DIR")
    if named:
        return load_directory(FilePath(named))
    shipped = shipped_directory()
    return load_directory(shipped) if shipped.is_dir() else None
