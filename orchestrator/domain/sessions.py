"""Database sessions as preflight and lock-safety report them: who holds what, for how long.

A session's query is what a person needs to find the culprit (an ORM's forgotten transaction, a
report left open in psql), so it is shown, but shortened and with anything that looks like a
password masked: a blocked migration's error travels to logs, events, Slack and webhooks.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

QUERY_CHARS = 200

# `PASSWORD 'x'` (CREATE/ALTER ROLE), `password=x` (dblink and libpq strings), `user:x@host` (URLs).
_ROLE_PASSWORD = re.compile(r"(?i)(\bpassword\s+)('(?:[^']|'')*'|\S+)")
_KEYWORD_PASSWORD = re.compile(r"(?i)\b(password|passwd|pwd)(\s*=\s*)('[^']*'|\"[^\"]*\"|[^\s'\"]+)")
_URL_CREDENTIALS = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*://[^\s:/@]*):\S*@")


def mask_secrets(text: str) -> str:
    text = _URL_CREDENTIALS.sub(r"\1:***@", text)
    text = _KEYWORD_PASSWORD.sub(r"\1\2***", text)
    return _ROLE_PASSWORD.sub(r"\1***", text)


def shorten_query(query: str | None, limit: int = QUERY_CHARS) -> str:
    """One line, masked, at most `limit` characters (the masking runs first so a cut cannot expose
    the tail of a secret)."""
    text = mask_secrets(" ".join((query or "").split()))
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass(frozen=True)
class SessionInfo:
    """One backend of the target database, read from pg_stat_activity (and pg_locks)."""

    pid: int
    state: str  # active, idle in transaction, ...
    query: str  # already shortened and masked by the adapter
    transaction_seconds: float | None  # age of its open transaction; None outside one
    application_name: str = ""
    user: str = ""
    # Tables of the migration on which it holds a lock (preflight), empty when not asked.
    locked_tables: tuple[str, ...] = ()
    # Whether it holds a snapshot: CREATE INDEX CONCURRENTLY waits for every such transaction.
    holds_snapshot: bool = False

    def describe(self) -> str:
        age = (
            ""
            if self.transaction_seconds is None
            else f", in a transaction for {self.transaction_seconds:.1f} s"
        )
        app = f" ({self.application_name})" if self.application_name else ""
        return f"pid {self.pid}{app} {self.state}{age}: {self.query or '(no query)'}"

    def as_data(self) -> dict[str, object]:
        """For event data: JSON-friendly, no credentials (the query is masked already)."""
        return {
            "pid": self.pid,
            "state": self.state,
            "query": self.query,
            "transaction_seconds": None
            if self.transaction_seconds is None
            else round(self.transaction_seconds, 3),
            "application_name": self.application_name,
            "user": self.user,
        }


def describe_sessions(sessions: Sequence[SessionInfo], limit: int = 5) -> str:
    shown = "; ".join(session.describe() for session in sessions[:limit])
    more = len(sessions) - limit
    return shown + (f"; and {more} more" if more > 0 else "")
