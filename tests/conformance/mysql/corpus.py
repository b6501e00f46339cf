"""The MySQL conformance corpus: one folder per case under `cases/`, read into `Case`.

A case folder holds:
- `schema.sql`: the tables (and triggers) the case starts from; statements end with `;` at a line end.
- `seed.sql`: the rows, as SQL (MariaDB's `seq_1_to_N` tables make a few thousand rows one statement).
- `dml.sql`: the application's concurrent writes, one statement per line, each run in one transaction
  against the table under change and against its untouched mirror. `{t}` names the table; `:id` is a
  random seeded id, `:new` a fresh id nobody used, `:n` a random number below 1000, `:s` a random
  string with non-ASCII characters. Empty for a case with no writer.
- `alter.sql`: the ALTER clause list, as an alter_table operation carries it.
- `expect.yaml`: what must happen (see `_expectation` and `Case` for the fields):

      table: items
      about: why the case exists
      outcome: migrated              # or refused, with `reason`: a substring of the refusal
      tools:                         # per tool, where it differs: direct, pt_osc, gh_ost
        gh_ost: {outcome: refused, reason: "foreign keys"}
      auto: direct                   # what strategy auto plans on this table: direct, copy, refused
      after: {columns: {qty: bigint(20)}, absent: [legacy], indexes: [qty_idx]}
      compare: {renamed: {name: full_name}, skip: [flag]}
      zero: ["SELECT COUNT(*) FROM {t} WHERE flag <> 0"]   # queries that must count 0 afterwards

"Migrated" means: every stage completed, the table has the shape `after` describes, its rows equal the
mirror's (the writer's changes included), no tool left anything behind, and the replica matches.
"Refused" means: the migration was refused at creation or failed with `reason`, and the table is
exactly as before: same shape, same rows as the mirror, nothing left behind.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

CASES_DIR = Path(__file__).parent / "cases"
TOOLS = ("direct", "pt_osc", "gh_ost")
Outcome = Literal["migrated", "refused"]
AutoChoice = Literal["direct", "copy", "refused"]
PLACEHOLDER = re.compile(r":(id|new|n|s)\b")


@dataclass(frozen=True)
class Expectation:
    outcome: Outcome
    reason: str | None = None


@dataclass(frozen=True)
class Case:
    name: str
    table: str
    about: str
    schema: tuple[str, ...]
    seed: tuple[str, ...]
    dml: tuple[str, ...]
    alter: str
    expected: Expectation
    per_tool: dict[str, Expectation]
    auto: AutoChoice
    columns_after: dict[str, str] = field(default_factory=dict)  # name -> COLUMN_TYPE afterwards
    absent_after: tuple[str, ...] = ()
    indexes_after: tuple[str, ...] = ()
    renamed: dict[str, str] = field(default_factory=dict)  # mirror's column -> the table's
    skip: tuple[str, ...] = ()  # mirror columns whose values the change rightly replaces
    zero: tuple[str, ...] = ()

    def expect(self, tool: str) -> Expectation:
        return self.per_tool.get(tool, self.expected)


class CorpusError(ValueError):
    """A case folder that does not say what it means: the file, the field, the fix."""


def statements(text: str) -> tuple[str, ...]:
    """SQL statements ending with `;` at a line end; `--` comment lines dropped."""
    kept = "\n".join(line for line in text.splitlines() if not line.strip().startswith("--"))
    return tuple(part.strip() for part in re.split(r";\s*(?:\n|$)", kept) if part.strip())


def dml_lines(text: str) -> tuple[str, ...]:
    return tuple(
        line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("--")
    )


def _expectation(data: Any, where: str) -> Expectation:
    if not isinstance(data, dict) or data.get("outcome") not in ("migrated", "refused"):
        raise CorpusError(f"{where}.outcome: write migrated or refused")
    reason = data.get("reason")
    if data["outcome"] == "refused" and not (isinstance(reason, str) and reason):
        raise CorpusError(f"{where}.reason: a refusal names a substring of its reason")
    return Expectation(data["outcome"], reason)


def load_case(folder: Path) -> Case:
    expect_file = folder / "expect.yaml"
    data = yaml.safe_load(expect_file.read_text())
    if not isinstance(data, dict):
        raise CorpusError(f"{expect_file}: a mapping of expectations")
    known = {"table", "about", "outcome", "reason", "tools", "auto", "after", "compare", "zero"}
    unknown = set(data) - known
    if unknown:
        raise CorpusError(f"{expect_file}: unknown fields {sorted(unknown)}; known: {sorted(known)}")
    tools = data.get("tools") or {}
    if set(tools) - set(TOOLS):
        raise CorpusError(f"{expect_file}.tools: name only {', '.join(TOOLS)}")
    if data.get("auto") not in ("direct", "copy", "refused"):
        raise CorpusError(f"{expect_file}.auto: write direct, copy or refused")
    after = data.get("after") or {}
    compare = data.get("compare") or {}
    dml = dml_lines((folder / "dml.sql").read_text())
    for line in dml:
        if "{t}" not in line:
            raise CorpusError(f"{folder / 'dml.sql'}: {line!r} does not name the table as {{t}}")
    return Case(
        name=folder.name,
        table=str(data["table"]),
        about=str(data.get("about", "")),
        schema=statements((folder / "schema.sql").read_text()),
        seed=statements((folder / "seed.sql").read_text()),
        dml=dml,
        alter=(folder / "alter.sql").read_text().strip().rstrip(";").strip(),
        expected=_expectation(data, str(expect_file)),
        per_tool={tool: _expectation(value, f"{expect_file}.tools.{tool}") for tool, value in tools.items()},
        auto=data["auto"],
        columns_after={str(k): str(v) for k, v in (after.get("columns") or {}).items()},
        absent_after=tuple(after.get("absent") or ()),
        indexes_after=tuple(after.get("indexes") or ()),
        renamed={str(k): str(v) for k, v in (compare.get("renamed") or {}).items()},
        skip=tuple(compare.get("skip") or ()),
        zero=tuple(data.get("zero") or ()),
    )


def load_corpus(directory: Path = CASES_DIR) -> list[Case]:
    return [load_case(folder) for folder in sorted(directory.iterdir()) if folder.is_dir()]
