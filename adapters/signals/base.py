"""What every signal source shares: the never-raising, time-bounded sample, and error text without secrets."""

from __future__ import annotations

import asyncio
import math
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from orchestrator.domain.throttle import Sample

Clock = Callable[[], float]

DEFAULT_TIMEOUT = 2.0
MAX_ERROR_CHARS = 300

# `scheme://user:secret@` anywhere in a message: keep the user, hide the rest of the credentials.
_URL_CREDENTIALS = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^:/@\s]*):[^@\s]*@")


class SignalReadError(Exception):
    """A read that worked but gave nothing usable (not a replica, no data, NaN): its text is the error."""


class GuardedSource(ABC):
    """A SignalSource whose `sample()` is bounded by `timeout` and turns every failure into a Sample.

    Subclasses implement `_read(at)`; whatever it raises (including the timeout) becomes
    `Sample(value=None, error=...)` with the source's `where` as detail. Cancellation still propagates:
    the task polling the source must be able to stop it.
    """

    def __init__(
        self, *, name: str, unit: str, where: str, timeout: float, clock: Clock, secrets: Iterable[str] = ()
    ) -> None:
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        self.name = name
        self.unit = unit
        self._where = where
        self._timeout = timeout
        self._clock = clock
        self._secrets = tuple(secret for secret in secrets if secret)

    async def sample(self) -> Sample:
        at = self._clock()  # the start of the read: a stale guard then errs on the side of "older"
        try:
            async with asyncio.timeout(self._timeout):
                return await self._read(at)
        except TimeoutError:
            return self.failed(at, f"timed out after {self._timeout:g}s")
        except Exception as error:  # the port's contract: a failure is a Sample, never an exception
            return self.failed(at, describe_error(error, self._secrets))

    @abstractmethod
    async def _read(self, at: float) -> Sample: ...

    @abstractmethod
    async def close(self) -> None: ...

    def failed(self, at: float, error: str, detail: str | None = None) -> Sample:
        return Sample(value=None, at=at, error=error, detail=self._where if detail is None else detail)

    def redact(self, text: str) -> str:
        return redact(text, self._secrets)


def describe_error(error: BaseException, secrets: Iterable[str] = ()) -> str:
    """One line a person can act on, without credentials: 'MySQL 2003: Can't connect ...'."""
    if isinstance(error, SignalReadError):
        text = str(error)
    elif _is_mysql_error(error) and len(error.args) >= 2 and isinstance(error.args[0], int):
        text = f"MySQL {error.args[0]}: {error.args[1]}"
    else:
        message = str(error).strip()
        text = f"{type(error).__name__}: {message}" if message else type(error).__name__
    text = redact(" ".join(text.split()), secrets)
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 3] + "..."


def _is_mysql_error(error: BaseException) -> bool:
    return any(cls.__module__.startswith("pymysql") for cls in type(error).__mro__)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***").replace(quote(secret, safe=""), "***")
    return _URL_CREDENTIALS.sub(r"\g<scheme>\g<user>:***@", text)


def url_password(url: str) -> str:
    """The password of a URL-style DSN ('' when none), to be redacted from error text."""
    try:
        return unquote(urlsplit(url).password or "")
    except ValueError:
        return ""


def pg_secrets(dsn: str) -> list[str]:
    """Passwords a PostgreSQL DSN carries, in URL (`postgresql://u:p@h/db`) or key=value form."""
    found = [url_password(dsn)] if "://" in dsn else []
    found += re.findall(r"(?:^|\s)password\s*=\s*'?([^'\s]+)", dsn)
    return [secret for secret in found if secret]


def pg_endpoint(dsn: str) -> str:
    """host:port of a PostgreSQL DSN, for details and errors (never the DSN itself)."""
    try:
        if "://" in dsn:
            parts = urlsplit(dsn)
            host = parts.hostname or "localhost"
            port = parts.port or 5432
        else:
            fields = dict(re.findall(r"(\w+)\s*=\s*'?([^'\s]*)", dsn))
            host = fields.get("host", "localhost")
            port = int(fields.get("port", "5432"))
    except ValueError:
        return "?"
    return f"{host}:{port}"


def url_endpoint(url: str) -> str:
    """A URL without its credentials, query or fragment: what a detail may show."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "?"
    return f"{parts.scheme}://{host}{port}{parts.path}"


def as_number(value: Any) -> float:
    """A database or JSON scalar as a finite float; SignalReadError for NULL, text, NaN or infinity."""
    if value is None:
        raise SignalReadError("no value (NULL)")
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float | Decimal):
        number = float(value)
    elif isinstance(value, str | bytes):
        text = value.decode() if isinstance(value, bytes) else value
        try:
            number = float(text)
        except ValueError:
            raise SignalReadError(f"not a number: {text[:40]!r}") from None
    else:
        raise SignalReadError(f"not a number: a {type(value).__name__}")
    if not math.isfinite(number):
        raise SignalReadError(f"not a finite number: {number}")
    return number
