"""CustomSqlSource on the real PostgreSQL primary and MariaDB primary."""

from __future__ import annotations

import time

import pytest

from adapters.signals.custom_sql import CustomSqlSource
from orchestrator.domain.throttle import Sample
from tests.support.pg import require_env

pytestmark = pytest.mark.integration

TIMEOUT = 0.5
ENGINES = ["PG_PRIMARY_DSN", "MYSQL_PRIMARY_DSN"]


async def sample_once(dsn_env: str, query: str, timeout: float = 2.0) -> Sample:
    source = CustomSqlSource("custom", require_env(dsn_env), query, timeout=timeout)
    try:
        return await source.sample()
    finally:
        await source.close()


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize(
    ("query", "value"),
    [
        ("SELECT 42", 42.0),
        ("SELECT 2.5", 2.5),
        ("SELECT 1 = 1", 1.0),
        ("SELECT count(*) FROM (SELECT 1) AS t", 1.0),
    ],
)
async def test_a_scalar_is_the_value(engine: str, query: str, value: float) -> None:
    source = CustomSqlSource("queue-depth", require_env(engine), query, unit="count")
    try:
        first, second = await source.sample(), await source.sample()  # the connection is reused
    finally:
        await source.close()
    assert first.value == value and second.value == value, (first, second)
    assert first.error is None and first.detail == query
    assert (source.name, source.unit) == ("queue-depth", "count")


@pytest.mark.parametrize(
    ("engine", "query", "error"),
    [
        ("PG_PRIMARY_DSN", "SELECT 1, 2", "2 columns"),
        ("MYSQL_PRIMARY_DSN", "SELECT 1 AS a, 1 AS a", "2 columns"),
        ("PG_PRIMARY_DSN", "SELECT 1 WHERE false", "no row"),
        ("MYSQL_PRIMARY_DSN", "SELECT 1 FROM DUAL WHERE 1 = 0", "no row"),
        ("PG_PRIMARY_DSN", "SELECT g FROM generate_series(1, 3) g", "3 rows"),
        ("PG_PRIMARY_DSN", "SELECT NULL::int", "NULL"),
        ("MYSQL_PRIMARY_DSN", "SELECT NULL", "NULL"),
        ("PG_PRIMARY_DSN", "SELECT 'abc'", "not a number"),
        ("PG_PRIMARY_DSN", "SELECT 'NaN'::float8", "not a finite number"),
        ("PG_PRIMARY_DSN", "SELECT no_such_column", "no_such_column"),
        ("MYSQL_PRIMARY_DSN", "SELECT no_such_column", "MySQL 1054"),
        ("PG_PRIMARY_DSN", "CREATE TABLE osctl_custom_sql_must_not_exist (id int)", "read-only"),
        ("MYSQL_PRIMARY_DSN", "CREATE TABLE osctl_custom_sql_must_not_exist (id int)", "READ ONLY"),
    ],
)
async def test_unusable_results_hold(engine: str, query: str, error: str) -> None:
    sample = await sample_once(engine, query)
    assert sample.value is None, sample
    assert error in (sample.error or ""), sample


@pytest.mark.parametrize(
    ("engine", "query"),
    [("PG_PRIMARY_DSN", "SELECT pg_sleep(30)"), ("MYSQL_PRIMARY_DSN", "SELECT SLEEP(30)")],
)
async def test_a_slow_query_times_out(engine: str, query: str) -> None:
    started = time.monotonic()
    sample = await sample_once(engine, query, timeout=TIMEOUT)
    elapsed = time.monotonic() - started
    assert sample.value is None, sample
    assert "time" in (sample.error or ""), sample
    assert elapsed < TIMEOUT + 1.0


@pytest.mark.parametrize(
    "dsn", ["postgresql://postgres:sw0rdfish@127.0.0.1:1/postgres", "mysql://root:sw0rdfish@127.0.0.1:1/osc"]
)
async def test_an_unreachable_server_holds(dsn: str) -> None:
    source = CustomSqlSource("custom", dsn, "SELECT 1", timeout=1.0)
    try:
        sample = await source.sample()
    finally:
        await source.close()
    assert sample.value is None and sample.error, sample
    assert "sw0rdfish" not in f"{sample.error} {sample.detail}"


def test_an_unknown_scheme_is_refused() -> None:
    with pytest.raises(ValueError, match="postgresql://, mysql://"):
        CustomSqlSource("custom", "sqlite:///x.db", "SELECT 1")
    with pytest.raises(ValueError, match="needs a query"):
        CustomSqlSource("custom", "postgresql://x@127.0.0.1/db", "  ")
