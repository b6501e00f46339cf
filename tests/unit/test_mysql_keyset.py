"""Keyset ranges as SQL with parameters, key conversions, and DSN parsing that never shows a password."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from adapters.mysql.dsn import MysqlDsn
from adapters.mysql.keyset import ChunkStatements, Keyset, key_param, key_text
from adapters.mysql.target import MysqlTarget
from orchestrator.ports import KeyColumn

ID = KeyColumn("id", "bigint")
TENANT, CODE = KeyColumn("tenant_id", "int"), KeyColumn("code", "varchar")
UUID_BINARY = KeyColumn("id", "binary")


def test_a_single_column_range() -> None:
    keyset = Keyset("`t`", (ID,))
    assert keyset.after(["10"]) == ("`id` > %s", [10])
    assert keyset.through(["20"]) == ("`id` <= %s", [20])
    assert keyset.range(["10"], ["20"]) == ("`id` > %s AND `id` <= %s", [10, 20])
    assert keyset.range(None, ["20"]) == ("`id` <= %s", [20])


def test_a_composite_range_is_spelled_out_for_the_range_optimizer() -> None:
    keyset = Keyset("`t`", (TENANT, CODE))
    assert keyset.after(["3", "b"]) == (
        "(`tenant_id` >= %s AND (`tenant_id` > %s OR (`tenant_id` = %s AND `code` > %s)))",
        [3, 3, 3, "b"],
    )
    assert keyset.through(["4", "a"]) == (
        "(`tenant_id` <= %s AND (`tenant_id` < %s OR (`tenant_id` = %s AND `code` <= %s)))",
        [4, 4, 4, "a"],
    )


def test_a_three_column_key_nests() -> None:
    keyset = Keyset("`t`", (KeyColumn("a", "int"), KeyColumn("b", "int"), KeyColumn("c", "char")))
    sql, params = keyset.after(["1", "2", "x"])
    assert sql == "(`a` >= %s AND (`a` > %s OR (`a` = %s AND (`b` > %s OR (`b` = %s AND `c` > %s)))))"
    assert params == [1, 1, 1, 2, 2, "x"]


def test_a_key_of_the_wrong_length_is_refused() -> None:
    with pytest.raises(ValueError, match="2 parts"):
        Keyset("`t`", (TENANT, CODE)).after(["1"])


def test_keys_travel_as_text_and_come_back_in_the_column_type() -> None:
    raw = bytes.fromhex("0f1e2d3c4b5a69788796a5b4c3d2e1f0")
    assert key_text(raw) == "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
    assert key_param(UUID_BINARY, key_text(raw)) == raw
    assert key_param(ID, "9007199254740993") == 9007199254740993  # past a double's precision
    assert key_param(CODE, "o'brien") == "o'brien"
    assert key_text(12) == "12"
    assert key_text(datetime(2024, 5, 1, 12, 30, 0, 250)) == "2024-05-01 12:30:00.000250"
    assert key_text(timedelta(hours=-1, minutes=-2)) == "-01:02:00"


def test_a_unique_walk_index_is_forced_by_name_and_none_forces_nothing() -> None:
    unique = ChunkStatements.build("t", "c", "1", [CODE], "t_code_key")
    assert unique.tail(None)[0] == (
        "SELECT `code` FROM `t` FORCE INDEX (`t_code_key`) WHERE TRUE ORDER BY `code` DESC LIMIT 1"
    )
    free = ChunkStatements.build("t", "c", "1", [CODE], None)
    assert free.tail(None)[0] == "SELECT `code` FROM `t` WHERE TRUE ORDER BY `code` DESC LIMIT 1"


def test_chunk_statements() -> None:
    statements = ChunkStatements.build("accounts", "band", "CONCAT(email, '%')", [ID])
    assert statements.boundary(None, 499) == (
        "SELECT `id` FROM `accounts` FORCE INDEX (PRIMARY) WHERE TRUE ORDER BY `id` LIMIT 1 OFFSET %s",
        [499],
    )
    assert statements.tail(["10"]) == (
        "SELECT `id` FROM `accounts` FORCE INDEX (PRIMARY) WHERE `id` > %s ORDER BY `id` DESC LIMIT 1",
        [10],
    )
    # '%' is doubled for PyMySQL's parameter formatting, which turns it back into one.
    assert statements.update(["10"], ["20"]) == (
        "UPDATE `accounts` FORCE INDEX (PRIMARY) SET `band` = (CONCAT(email, '%%')) "
        "WHERE `id` > %s AND `id` <= %s AND NOT (`band` <=> (CONCAT(email, '%%')))",
        [10, 20],
    )
    assert statements.mismatches(None, ["20"])[0] == (
        "SELECT COUNT(*) FROM `accounts` FORCE INDEX (PRIMARY) "
        "WHERE `id` <= %s AND NOT (`band` <=> (CONCAT(email, '%%')))"
    )


SECRET = "s3cr/et?#@pass"


def test_a_dsn_with_an_awkward_password() -> None:
    dsn = MysqlDsn.parse(f"mysql://app:{SECRET}@db.internal:3307/shop?connect_timeout=3")
    assert (dsn.host, dsn.port, dsn.user, dsn.database, dsn.connect_timeout) == (
        "db.internal",
        3307,
        "app",
        "shop",
        3,
    )
    assert dsn.password == SECRET
    assert dsn.connect_args()["password"] == SECRET
    assert dsn.connect_args()["autocommit"] is True
    assert SECRET not in repr(dsn)
    assert SECRET not in repr(MysqlTarget(f"mysql://app:{SECRET}@db.internal:3307/shop"))


def test_dsn_defaults_and_percent_encoding() -> None:
    dsn = MysqlDsn.parse("mariadb://app:p%40ss@127.0.0.1/shop")
    assert (dsn.port, dsn.password) == (3306, "p@ss")
    assert MysqlDsn.parse("mysql://app@[::1]:3310/shop").host == "::1"
    assert MysqlDsn.parse("mysql://app@[::1]:3310/shop").port == 3310


@pytest.mark.parametrize(
    "dsn", ["postgresql://u:p@h/db", "mysql://u:p@h:3306/", "mysql://u:p@h:port/db", "h:3306/db"]
)
def test_bad_dsns_are_refused_without_echoing_them(dsn: str) -> None:
    with pytest.raises(ValueError) as refused:
        MysqlDsn.parse(dsn)
    assert ":p@" not in str(refused.value)
