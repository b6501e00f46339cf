"""Who may call what: bearer tokens, stored as hashes, each with scopes. Pure: no I/O.

| scope | may |
|---|---|
| `read` | every GET |
| `pipeline` | read; create a migration, start its stages, approve its deploy gate, tune its backfill |
| `oncall` | read; pause, resume, cancel, roll back, tune |
| `admin` | everything |

Tokens are long random strings, so one SHA-256 is enough to store them: a stolen token file gives
nothing to brute-force (a password hash's slowness protects low-entropy secrets; these are not).
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable, Mapping
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict


class Scope(StrEnum):
    READ = "read"
    PIPELINE = "pipeline"
    ONCALL = "oncall"
    ADMIN = "admin"


# What holding a scope allows: everyone who may act may also look; admin may do anything.
GRANTS: Mapping[Scope, frozenset[Scope]] = {
    Scope.READ: frozenset({Scope.READ}),
    Scope.PIPELINE: frozenset({Scope.PIPELINE, Scope.READ}),
    Scope.ONCALL: frozenset({Scope.ONCALL, Scope.READ}),
    Scope.ADMIN: frozenset(Scope),
}
TOKEN_PREFIX = "osctl_"
HASH_PREFIX = "sha256:"


class Principal(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    scopes: frozenset[Scope]


# Who calls when no tokens are configured (local use, `make demo`): allowed everything, audited as such.
ANONYMOUS = Principal(name="anonymous", scopes=frozenset({Scope.ADMIN}))


class TokenRecord(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    digest: str  # "sha256:<hex>"
    scopes: frozenset[Scope]


def permits(granted: Iterable[Scope], any_of: Iterable[Scope]) -> bool:
    """Whether scopes `granted` allow a call that needs one of `any_of`."""
    allowed: set[Scope] = set()
    for scope in granted:
        allowed |= GRANTS[scope]
    return any(scope in allowed for scope in any_of)


def hash_token(token: str) -> str:
    return HASH_PREFIX + hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def parse_tokens(data: Any) -> list[TokenRecord]:
    """`{name: {hash: "sha256:<hex>", scopes: [pipeline]}}` (YAML or JSON); ValueError naming the entry."""
    if data is None:
        return []
    if not isinstance(data, Mapping):
        raise ValueError("the tokens file must map each token name to {hash, scopes}")
    records = []
    for name, entry in data.items():
        if not isinstance(entry, Mapping):
            raise ValueError(f"token {name!r}: expected {{hash, scopes}}")
        digest = str(entry.get("hash", ""))
        hexpart = digest.removeprefix(HASH_PREFIX)
        if len(hexpart) != 64 or any(c not in "0123456789abcdef" for c in hexpart.lower()):
            raise ValueError(f"token {name!r}: hash must be sha256:<64 hex digits> (see `osctl token hash`)")
        raw_scopes = entry.get("scopes")
        if not isinstance(raw_scopes, list) or not raw_scopes:
            raise ValueError(f"token {name!r}: scopes must be a non-empty list of {', '.join(Scope)}")
        try:
            scopes = frozenset(Scope(str(scope)) for scope in raw_scopes)
        except ValueError:
            raise ValueError(
                f"token {name!r}: unknown scope in {raw_scopes}; use {', '.join(Scope)}"
            ) from None
        records.append(TokenRecord(name=str(name), digest=HASH_PREFIX + hexpart.lower(), scopes=scopes))
    return records


class TokenBook:
    def __init__(self, records: Iterable[TokenRecord]) -> None:
        self._by_digest = {record.digest: record for record in records}

    @property
    def enabled(self) -> bool:
        return bool(self._by_digest)

    def authenticate(self, token: str) -> Principal | None:
        # Looking up the hash (not the token) gives an attacker nothing to time: they cannot choose
        # the hash they present.
        record = self._by_digest.get(hash_token(token))
        return None if record is None else Principal(name=record.name, scopes=record.scopes)
