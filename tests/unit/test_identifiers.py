"""Identifiers and type names are validated on the way in and quoted on the way out."""

from __future__ import annotations

import pytest

from orchestrator.domain.identifiers import check_identifier, check_type_name, quote_ident, quote_literal


@pytest.mark.parametrize(
    "name",
    [
        "users",
        "_private",
        "a",
        "email_verified_at",
        "col$1",
        "t2",
        "select",  # a keyword is fine: it is always quoted on the way out
        "x" * 63,
    ],
)
def test_valid_identifiers_are_accepted_unchanged(name: str) -> None:
    assert check_identifier(name) == name


@pytest.mark.parametrize(
    "name",
    [
        "",
        "Users",  # upper case is refused rather than quoted
        "USERS",
        "1users",
        "$users",
        "user name",
        "users;",
        "users; drop table x",
        'users"',
        '"users"',
        "users'",
        "users--",
        "users)",
        "users.email",
        "usérs",
        "users\n",
        "\tusers",
        "x" * 64,  # over PostgreSQL's 63-byte NAMEDATALEN
    ],
)
def test_invalid_identifiers_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="not a valid identifier"):
        check_identifier(name)


@pytest.mark.parametrize(
    ("written", "normalised"),
    [
        ("text", "text"),
        ("bigint", "bigint"),
        ("BIGINT", "bigint"),  # type names are case-insensitive and normalised to lower case
        ("TimestampTZ", "timestamptz"),
        ("varchar(255)", "varchar(255)"),
        ("numeric(12,2)", "numeric(12,2)"),
        ("numeric(12, 2)", "numeric(12, 2)"),
        ("double precision", "double precision"),
        ("double   precision", "double precision"),
        ("  integer  ", "integer"),
        ("timestamp with time zone", "timestamp with time zone"),
        ("character varying(64)", "character varying(64)"),
        ("text[]", "text[]"),
        ("int[][]", "int[][]"),
    ],
)
def test_valid_type_names_are_normalised(written: str, normalised: str) -> None:
    assert check_type_name(written) == normalised


@pytest.mark.parametrize(
    "type_name",
    [
        "",
        "int; drop table x",
        "text)--",
        "text) -- comment",
        "text --",
        "text /* */",
        "varchar(255); drop table users",
        "text'",
        'text"',
        '"text"',
        "int default 1",
        "int default '1'",
        "varchar(1)(2)",
        "varchar(123456)",
        "numeric(1,2,3)",
        "int[][][][]",
        "a b c d e",  # five words
        "text\x00",
        "int,int",
    ],
)
def test_invalid_type_names_are_refused(type_name: str) -> None:
    with pytest.raises(ValueError, match="not a column type"):
        check_type_name(type_name)


@pytest.mark.parametrize(
    "type_name",
    ["int unique", "int primary key", "int not null", "int references users", "text default current_user"],
)
def test_constraint_clauses_are_not_type_names(type_name: str) -> None:
    with pytest.raises(ValueError, match="not a column type"):
        check_type_name(type_name)


@pytest.mark.parametrize(
    ("name", "quoted"),
    [("users", '"users"'), ("select", '"select"'), ("col$1", '"col$1"'), ("_x", '"_x"')],
)
def test_quote_ident(name: str, quoted: str) -> None:
    assert quote_ident(name) == quoted


@pytest.mark.parametrize("name", ['a"b', "Users", "x; drop table y", "", "a b"])
def test_quote_ident_rechecks_and_refuses(name: str) -> None:
    with pytest.raises(ValueError, match="not a valid identifier"):
        quote_ident(name)


@pytest.mark.parametrize(
    ("value", "literal"),
    [
        (None, "NULL"),
        (True, "TRUE"),
        (False, "FALSE"),
        (0, "0"),
        (42, "42"),
        (-7, "-7"),
        (1.5, "1.5"),
        (-0.25, "-0.25"),
        (float("nan"), "'NaN'"),
        ("plain", "E'plain'"),
        ("", "E''"),
        ("it's", "E'it''s'"),
        ("''", "E''''''"),
        ("back\\slash", "E'back\\\\slash'"),
        ("\\'; drop table users; --", "E'\\\\''; drop table users; --'"),
        ('say "hi"', "E'say \"hi\"'"),
        ("1", "E'1'"),  # a string stays a string
    ],
)
def test_quote_literal(value: str | int | float | bool | None, literal: str) -> None:
    assert quote_literal(value) == literal


def test_quote_literal_bool_is_not_rendered_as_int() -> None:
    # bool is a subclass of int; it must not come out as 1/0 or True/False.
    assert quote_literal(True) != "1"
    assert quote_literal(True) != "True"


@pytest.mark.parametrize("value", [float("inf"), float("-inf")])
def test_quote_literal_infinity_is_a_literal(value: float) -> None:
    try:
        rendered = quote_literal(value)
    except ValueError:
        return  # refusing is also acceptable
    assert rendered.startswith("'") and rendered.endswith("'")
    assert rendered.strip("'").lstrip("-").lower() == "infinity"
