"""An HTTP check as a signal: 0.0 when a GET answers 2xx, 1.0 (failing) otherwise.

Like gh-ost's --throttle-http: any other status, a timeout or an unreachable server reads as failing
(the figure is always there, so the check needs no special "no data" case). Redirects are followed and
the final answer counts. The detail says what happened: 'GET http://app:8080/healthz -> HTTP 503'.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping

import httpx

from adapters.signals.base import DEFAULT_TIMEOUT, Clock, GuardedSource, url_endpoint, url_password
from orchestrator.domain.throttle import Sample

PASSING = 0.0
FAILING = 1.0
GUARD_MARGIN_SECONDS = 1.0


class HttpCheckSource(GuardedSource):
    """`headers` (authentication, say) are sent and never shown; the detail shows the URL without
    credentials or query string."""

    def __init__(
        self,
        url: str,
        *,
        name: str = "http-check",
        timeout: float = DEFAULT_TIMEOUT,
        headers: Mapping[str, str] | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        self.url = url
        self._headers = dict(headers or {})
        self._client: httpx.AsyncClient | None = None
        # `timeout` bounds the whole request (httpx's own timeouts are per connect, read and write);
        # the sample's bound is a little longer, so a slow server reads as a failing check (1.0)
        # rather than as a sample that timed out (no value).
        self._request_timeout = timeout
        super().__init__(
            name=name,
            unit="failing",
            where=f"GET {url_endpoint(url)}",
            timeout=timeout + GUARD_MARGIN_SECONDS,
            clock=clock,
            secrets=[url_password(url), *self._headers.values()],
        )

    async def _read(self, at: float) -> Sample:
        if self._client is None:
            self._client = httpx.AsyncClient(
                timeout=self._request_timeout, headers=self._headers, follow_redirects=True
            )
        try:
            async with asyncio.timeout(self._request_timeout):
                response = await self._client.get(self.url)
        except (TimeoutError, httpx.TimeoutException):
            return self._result(at, FAILING, f"timed out after {self._request_timeout:g}s")
        except httpx.HTTPError as error:
            return self._result(at, FAILING, self.redact(f"{type(error).__name__}: {error}"))
        status = response.status_code
        outcome = f"HTTP {status} {response.reason_phrase}".rstrip()
        return self._result(at, PASSING if 200 <= status < 300 else FAILING, outcome)

    def _result(self, at: float, value: float, outcome: str) -> Sample:
        return Sample(value=value, at=at, detail=f"{self._where} -> {outcome}")

    async def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()
