"""What every source shares, without servers: the never-raising guard, error text without secrets,
numbers, and the Prometheus answer parser on canned answers."""

from __future__ import annotations

import asyncio
import math
from decimal import Decimal
from typing import Any

import httpx
import pymysql
import pytest

from adapters.signals.base import (
    GuardedSource,
    SignalReadError,
    as_number,
    describe_error,
    pg_endpoint,
    pg_secrets,
    redact,
    url_endpoint,
)
from adapters.signals.custom_sql import scalar_of
from adapters.signals.prometheus import parse_answer
from orchestrator.domain.throttle import Sample
from orchestrator.ports import SignalSource


class Scripted(GuardedSource):
    def __init__(self, behaviour: str, clock_value: float = 7.0) -> None:
        super().__init__(
            name="scripted",
            unit="s",
            where="somewhere",
            timeout=0.05,
            clock=lambda: clock_value,
            secrets=["hunter2"],
        )
        self.behaviour = behaviour

    async def _read(self, at: float) -> Sample:
        if self.behaviour == "raise":
            raise ConnectionError("login hunter2 refused by postgresql://app:hunter2@db:5432/x")
        if self.behaviour == "hang":
            await asyncio.Event().wait()
        if self.behaviour == "cancel":
            raise asyncio.CancelledError
        return Sample(value=1.5, at=at, detail="fine")

    async def close(self) -> None:
        pass


async def test_a_source_is_a_signal_source() -> None:
    source: SignalSource = Scripted("ok")
    assert await source.sample() == Sample(value=1.5, at=7.0, detail="fine")


async def test_an_exception_becomes_a_sample_without_secrets() -> None:
    sample = await Scripted("raise").sample()
    assert sample.value is None and sample.at == 7.0 and sample.detail == "somewhere"
    assert sample.error == "ConnectionError: login *** refused by postgresql://app:***@db:5432/x"


async def test_a_hang_becomes_a_timeout_sample() -> None:
    sample = await Scripted("hang").sample()
    assert (sample.value, sample.error) == (None, "timed out after 0.05s")


async def test_cancellation_still_propagates() -> None:
    with pytest.raises(asyncio.CancelledError):
        await Scripted("cancel").sample()


@pytest.mark.parametrize(
    ("error", "text"),
    [
        (
            pymysql.err.OperationalError(2003, "Can't connect to MySQL server on '127.0.0.1'"),
            "MySQL 2003: Can't connect",
        ),
        (SignalReadError("no data"), "no data"),
        (TimeoutError(), "TimeoutError"),
        (ValueError("x" * 1000), "ValueError: " + "x" * 285 + "..."),
    ],
)
def test_describe_error(error: BaseException, text: str) -> None:
    assert describe_error(error).startswith(text)


def test_redact() -> None:
    assert redact("mysql://root:p%40ss@h:3306/db and p@ss", ["p@ss"]) == "mysql://root:***@h:3306/db and ***"
    assert redact("http://u:x@h/ and https://h/") == "http://u:***@h/ and https://h/"


def test_endpoints_and_secrets() -> None:
    assert pg_endpoint("postgresql://u:pw@db.example:6432/app") == "db.example:6432"
    assert pg_endpoint("host=db port=5433 user=u password=pw") == "db:5433"
    assert pg_endpoint("postgresql:///app") == "localhost:5432"
    assert pg_secrets("postgresql://u:p%2Fw@db/app") == ["p/w"]
    assert pg_secrets("host=db password='s3cret' user=u") == ["s3cret"]
    assert url_endpoint("https://u:pw@prom:9090/prefix?x=pw") == "https://prom:9090/prefix"


@pytest.mark.parametrize(
    ("value", "number"),
    [(3, 3.0), (Decimal("2.50"), 2.5), (True, 1.0), ("0.25", 0.25), (b"7", 7.0)],
)
def test_as_number(value: Any, number: float) -> None:
    assert as_number(value) == number


@pytest.mark.parametrize("value", [None, "abc", math.nan, math.inf, "-Inf", object()])
def test_as_number_refuses(value: Any) -> None:
    with pytest.raises(SignalReadError):
        as_number(value)


def test_scalar_of() -> None:
    assert scalar_of(1, [(4,)]) == 4.0
    cases: list[tuple[int, list[tuple[int, ...]], str]] = [
        (2, [(1, 2)], "2 columns"),
        (1, [], "no row"),
        (1, [(1,), (2,)], "2 rows"),
    ]
    for columns, rows, message in cases:
        with pytest.raises(SignalReadError, match=message):
            scalar_of(columns, rows)


def answer(body: Any, status: int = 200) -> httpx.Response:
    return httpx.Response(status, json=body)


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        (answer({"status": "success", "data": {"resultType": "scalar", "result": [1, "0.5"]}}), 0.5),
        (
            answer(
                {
                    "status": "success",
                    "data": {"resultType": "vector", "result": [{"metric": {}, "value": [1, "3"]}]},
                }
            ),
            3.0,
        ),
        (answer({"status": "success", "data": {"resultType": "vector", "result": []}}), "no data"),
        (
            answer({"status": "success", "data": {"resultType": "scalar", "result": [1, "NaN"]}}),
            "not a finite number",
        ),
        (
            answer({"status": "success", "data": {"resultType": "scalar", "result": [1, "-Inf"]}}),
            "not a finite number",
        ),
        (
            answer({"status": "error", "errorType": "timeout", "error": "query timed out"}, 503),
            "timeout (HTTP 503)",
        ),
        (httpx.Response(502, text="<html>bad gateway</html>"), "HTTP 502: not a Prometheus API answer"),
        (answer({"status": "success", "data": {"resultType": "string", "result": [1, "x"]}}), "a string"),
    ],
)
def test_parse_answer(response: httpx.Response, expected: float | str) -> None:
    if isinstance(expected, float):
        assert parse_answer(response) == expected
    else:
        with pytest.raises(SignalReadError, match=expected.replace("(", r"\(").replace(")", r"\)")):
            parse_answer(response)
