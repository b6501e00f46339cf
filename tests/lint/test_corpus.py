"""Every corpus case gets exactly the risk findings it expects; known gaps must stay visible."""

from __future__ import annotations

import pytest

from tests.lint.corpus_cases import Case, load_cases, risk_triples

CASES = load_cases()


def _param(case: Case) -> object:
    marks = [pytest.mark.xfail(reason=case.known_gap, strict=True)] if case.known_gap else []
    return pytest.param(case, id=case.id, marks=marks)


@pytest.mark.parametrize("case", [_param(case) for case in CASES])
def test_case_gets_exactly_the_expected_risk_findings(case: Case) -> None:
    predicted, _statements = risk_triples(case)
    assert predicted == case.expected_triples()


def test_corpus_is_large_enough_and_covers_both_engines_safe_sql_and_frameworks() -> None:
    statements = sum(risk_triples(case)[1] for case in CASES)
    assert statements >= 80
    assert len({case.id for case in CASES}) == len(CASES), "case ids must be unique"
    assert {case.engine for case in CASES} == {"postgres", "mysql"}
    safe = [case for case in CASES if not case.expect]
    assert len(safe) >= 20, "safe statements that must not be flagged"
    sources = " ".join(case.source.lower() for case in CASES)
    for framework in ("django", "ecto", "structure.sql", "rails"):
        assert framework in sources
    assert any(case.sql.lstrip().upper().startswith("BEGIN") for case in CASES)


def test_expectations_name_rules_that_exist() -> None:
    from orchestrator.lint import RULES

    for case in CASES:
        for _case_id, _index, rule in case.expected_triples():
            assert rule in RULES, f"{case.id} expects unknown rule {rule}"
