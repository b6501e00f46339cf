"""Precision and recall of `osctl lint` over the corpus in tests/lint/corpus, measured in one run.

A prediction is a (case, statement index, rule) triple for every finding of severity error or
warning: the findings that claim a live table is at risk. The corpus says which triples are true.
Cases osctl is known to get wrong (`known_gap`) count like any other. Figures are given for the
whole corpus and per group: "authored" cases were written alongside the rules, "held-out" cases
(patterns from other projects' migrations) were labelled before osctl was run on them.
Mismatches go to stderr; the last line of stdout is one JSON object with the figures.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.lint.corpus_cases import load_cases, risk_triples


def _ratio(hits: int, misses: int) -> float:
    return round(hits / (hits + misses), 4) if hits + misses else 1.0


def main() -> int:
    cases = load_cases()
    counts: dict[str, Counter[str]] = {"all": Counter()}
    for case in cases:
        predicted, statements = risk_triples(case)
        expected = case.expected_triples()
        for group in ("all", case.group):
            tally = counts.setdefault(group, Counter())
            tally["cases"] += 1
            tally["statements"] += statements
            tally["true_positives"] += len(predicted & expected)
            tally["false_positives"] += len(predicted - expected)
            tally["false_negatives"] += len(expected - predicted)
            tally["safe_cases"] += not expected
            tally["safe_cases_flagged"] += not expected and bool(predicted)
        for extra in sorted(predicted - expected):
            print(f"false positive  {case.id}: statement {extra[1]} {extra[2]}", file=sys.stderr)
        for missed in sorted(expected - predicted):
            print(f"false negative  {case.id}: statement {missed[1]} {missed[2]}", file=sys.stderr)

    def figures(tally: Counter[str]) -> dict[str, float | int]:
        return {
            **dict(tally),
            "precision": _ratio(tally["true_positives"], tally["false_positives"]),
            "recall": _ratio(tally["true_positives"], tally["false_negatives"]),
        }

    overall = figures(counts.pop("all"))
    result = {
        **overall,
        "engines": sorted({case.engine for case in cases}),
        "groups": {group: figures(tally) for group, tally in sorted(counts.items())},
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
