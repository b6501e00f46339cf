"""A PromQL instant query as a signal: one number, typically the application's error ratio.

`GET <base>/api/v1/query?query=...`. The answer must be a scalar or a vector of exactly one series.
Everything else has no value, with the reason as the error, so the decision holds rather than passes:
no data (an empty vector, e.g. no traffic yet or a typo in a metric name), NaN (0/0 when the window
holds no requests), an infinity, several series (aggregate them: `sum(...)`, `max(...)`), an error
status (a bad query, an overloaded server) and an unreachable server. Whether the number is too high is
the throttle decision's business, not this module's.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import httpx

from adapters.signals.base import (
    DEFAULT_TIMEOUT,
    Clock,
    GuardedSource,
    SignalReadError,
    as_number,
    url_endpoint,
    url_password,
)
from orchestrator.domain.throttle import Sample


class PrometheusQuerySource(GuardedSource):
    """`base_url` is the server's root (`http://prometheus:9090`, or with its route prefix); `headers`
    carry authentication if needed (they are never shown). The detail is the query itself."""

    def __init__(
        self,
        base_url: str,
        query: str,
        *,
        name: str = "error-rate",
        unit: str = "ratio",
        timeout: float = DEFAULT_TIMEOUT,
        headers: Mapping[str, str] | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        if not query.strip():
            raise ValueError("a Prometheus signal needs a query")
        self.query = query
        self._url = base_url.rstrip("/") + "/api/v1/query"
        self._headers = dict(headers or {})
        self._client: httpx.AsyncClient | None = None
        super().__init__(
            name=name,
            unit=unit,
            where=query,
            timeout=timeout,
            clock=clock,
            secrets=[url_password(base_url), *self._headers.values()],
        )
        self._server = url_endpoint(base_url)

    async def _read(self, at: float) -> Sample:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self._timeout, headers=self._headers)
        try:
            response = await self._client.get(
                self._url, params={"query": self.query, "timeout": f"{self._timeout:g}s"}
            )
        except httpx.TimeoutException:
            raise SignalReadError(f"Prometheus {self._server} timed out after {self._timeout:g}s") from None
        except httpx.HTTPError as error:
            raise SignalReadError(
                f"Prometheus {self._server} unreachable: {type(error).__name__}: {error}"
            ) from None
        return Sample(value=parse_answer(response), at=at, detail=self.query)

    async def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()


def parse_answer(response: httpx.Response) -> float:
    """The query's single number; SignalReadError saying why there is none."""
    try:
        body: Any = response.json()
    except ValueError:
        raise SignalReadError(f"HTTP {response.status_code}: not a Prometheus API answer") from None
    if not isinstance(body, dict):
        raise SignalReadError(f"HTTP {response.status_code}: not a Prometheus API answer")
    if body.get("status") != "success":
        kind = body.get("errorType") or "error"
        raise SignalReadError(f"Prometheus {kind} (HTTP {response.status_code}): {body.get('error', '')}")
    data = body.get("data") or {}
    kind, result = data.get("resultType"), data.get("result")
    if kind == "scalar":
        return _number(result)
    if kind == "vector" and isinstance(result, list):
        if not result:
            raise SignalReadError("no data: the query returned an empty vector")
        if len(result) > 1:
            raise SignalReadError(
                f"the query returned {len(result)} series; aggregate them to one (sum, max, ...)"
            )
        return _number(result[0].get("value") if isinstance(result[0], dict) else None)
    raise SignalReadError(f"the query returned a {kind}, not a scalar or a single-series vector")


def _number(point: Any) -> float:
    if not isinstance(point, list) or len(point) != 2:
        raise SignalReadError("malformed sample in the answer")
    try:
        return as_number(point[1])
    except SignalReadError as error:
        raise SignalReadError(f"no usable value: {error}") from None
