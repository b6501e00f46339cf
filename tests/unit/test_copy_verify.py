"""The copy verification's SQL and key ranges, golden."""

from __future__ import annotations

from adapters.mysql.verify import Comparison, Range, row_checksum_sql, split_range


def test_row_checksum_sql_golden() -> None:
    sql = row_checksum_sql(
        "orders", [("id", "bigint"), ("note", "varchar"), ("at", "datetime")], "`id` >= %s"
    )
    assert sql == (
        "SELECT COUNT(*), COALESCE(BIT_XOR(CAST(CONV(LEFT(MD5(CONCAT_WS('#', QUOTE(`id`), "
        "QUOTE(CAST(`note` AS BINARY)), QUOTE(`at`))), 16), 16, 10) AS UNSIGNED)), 0) FROM `orders` "
        "WHERE `id` >= %s"
    )


def test_ranges_cover_everything_and_stay_open_at_both_ends() -> None:
    assert split_range(1, 100, rows=50) == [Range(None, None)]
    ranges = split_range(1, 1_000_000, rows=1_000_000, chunk_rows=250_000)
    assert ranges == [
        Range(None, 250_000),
        Range(250_001, 500_000),
        Range(500_001, 750_000),
        Range(750_001, None),
    ]
    assert Range(5, None).where("id") == ("`id` >= %s", [5])
    assert Range(None, None).where("id") == ("", [])


def test_a_comparison_is_equal_only_with_equal_counts_and_no_mismatched_range() -> None:
    assert Comparison(original_rows=3, copy_rows=3).equal
    assert not Comparison(original_rows=3, copy_rows=2).equal
    assert not Comparison(original_rows=3, copy_rows=3, mismatched=["id 1..2"]).equal
