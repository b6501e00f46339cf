"""The lint corpus (tests/lint/corpus/*.yaml) as typed cases, shared by its test and bench/lint_corpus.py."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from orchestrator.lint import Severity, lint_sql, parse_server_version

CORPUS = Path(__file__).parent / "corpus"
Triple = tuple[str, int, str]  # (case id, statement index, rule)


@dataclass(frozen=True)
class Case:
    id: str
    engine: Literal["postgres", "mysql"]
    sql: str
    expect: tuple[str, ...]
    source: str
    server_version: str | None = None
    known_gap: str | None = None
    # "held-out": labelled before osctl ran on it (heldout_*.yaml); "authored": written with the rules.
    group: str = "authored"

    def expected_triples(self) -> set[Triple]:
        triples = set()
        for item in self.expect:
            index, _, rule = item.rpartition(":")
            triples.add((self.id, int(index) if index else 0, rule))
        return triples


def _case(raw: dict[str, Any], origin: Path) -> Case:
    sql = (CORPUS / raw["file"]).read_text() if "file" in raw else raw["sql"]
    expect = tuple(str(item) for item in raw.get("expect") or ())
    return Case(
        id=raw["id"],
        engine=raw["engine"],
        sql=sql,
        expect=expect,
        source=raw.get("source", str(origin.name)),
        server_version=raw.get("server_version"),
        known_gap=raw.get("known_gap"),
        group="held-out" if origin.name.startswith("heldout_") else "authored",
    )


def load_cases() -> list[Case]:
    cases: list[Case] = []
    for path in sorted(CORPUS.glob("*.yaml")):
        cases.extend(_case(raw, path) for raw in yaml.safe_load(path.read_text()))
    return cases


def risk_triples(case: Case) -> tuple[set[Triple], int]:
    """What osctl claims is risky in the case, and how many statements it read."""
    version = parse_server_version(case.server_version) if case.server_version else None
    report = lint_sql(case.sql, case.engine, server_version=version)
    risky = {
        (case.id, finding.statement_index, finding.rule)
        for finding in report.findings
        if finding.severity in (Severity.ERROR, Severity.WARNING)
    }
    return risky, report.statements
