"""Scopes and tokens: pure decisions."""

from __future__ import annotations

import pytest

from orchestrator.access import (
    Scope,
    TokenBook,
    hash_token,
    new_token,
    parse_tokens,
    permits,
)

READ, PIPE, CALL, ADMIN = Scope.READ, Scope.PIPELINE, Scope.ONCALL, Scope.ADMIN


@pytest.mark.parametrize(
    ("granted", "needed", "allowed"),
    [
        ({READ}, {READ}, True),
        ({READ}, {PIPE}, False),
        ({PIPE}, {READ}, True),  # a pipeline polls what it started
        ({PIPE}, {CALL}, False),  # and cannot roll back
        ({CALL}, {PIPE}, False),  # on-call cannot advance a stage
        ({CALL}, {PIPE, CALL}, True),  # tuning is open to both
        ({ADMIN}, {CALL}, True),
        ({ADMIN}, {PIPE}, True),
        (set(), {READ}, False),
    ],
)
def test_scope_table(granted: set[Scope], needed: set[Scope], allowed: bool) -> None:
    assert permits(granted, needed) is allowed


def test_a_token_is_found_by_its_hash_only() -> None:
    token = new_token()
    assert token.startswith("osctl_") and len(token) > 40
    book = TokenBook(parse_tokens({"release": {"hash": hash_token(token), "scopes": ["pipeline"]}}))
    principal = book.authenticate(token)
    assert principal is not None
    assert principal.name == "release" and principal.scopes == {Scope.PIPELINE}
    assert book.authenticate(token + "x") is None
    assert book.authenticate(hash_token(token)) is None  # the stored hash is not a password
    assert book.enabled and not TokenBook([]).enabled


def test_hash_format() -> None:
    digest = hash_token("secret")
    assert digest == "sha256:2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b"


@pytest.mark.parametrize(
    ("data", "complaint"),
    [
        ([], "map each token"),
        ({"x": "nope"}, "expected"),
        ({"x": {"hash": "md5:abc", "scopes": ["read"]}}, "sha256"),
        ({"x": {"hash": hash_token("t"), "scopes": []}}, "non-empty"),
        ({"x": {"hash": hash_token("t"), "scopes": ["root"]}}, "unknown scope"),
    ],
)
def test_bad_token_files_name_the_entry(data: object, complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        parse_tokens(data)
