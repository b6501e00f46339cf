"""Signatures of outgoing webhooks, and the check a receiver runs. Pure: time is an argument.

Each delivery carries `Osctl-Timestamp` (Unix seconds) and `Osctl-Signature: v1=<hex>`, the
HMAC-SHA256 under the shared secret of `<timestamp>.<raw body>`. Signing the timestamp lets a
receiver refuse a captured delivery replayed later: `verify` rejects one older than `tolerance`.

Receiver side::

    from orchestrator.webhook_signature import verify, SignatureError
    try:
        verify(secret, request.headers, raw_body, now=time.time())
    except SignatureError:
        return 401
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

TIMESTAMP_HEADER = "Osctl-Timestamp"
SIGNATURE_HEADER = "Osctl-Signature"
EVENT_HEADER = "Osctl-Event"
DELIVERY_HEADER = "Osctl-Delivery"
VERSION = "v1"
DEFAULT_TOLERANCE_SECONDS = 300


class SignatureError(Exception):
    """The delivery is not from us, was altered, or is too old (a replay)."""


def sign(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"{VERSION}={mac.hexdigest()}"


def signed_headers(secret: str, body: bytes, now: float) -> dict[str, str]:
    timestamp = int(now)
    return {TIMESTAMP_HEADER: str(timestamp), SIGNATURE_HEADER: sign(secret, timestamp, body)}


def verify(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: float,
    tolerance: float = DEFAULT_TOLERANCE_SECONDS,
) -> None:
    """Raise SignatureError unless the body is signed with `secret` at a time within `tolerance`."""
    lowered = {name.lower(): value for name, value in headers.items()}
    raw_timestamp = lowered.get(TIMESTAMP_HEADER.lower())
    raw_signature = lowered.get(SIGNATURE_HEADER.lower())
    if not raw_timestamp or not raw_signature:
        raise SignatureError(f"missing {TIMESTAMP_HEADER} or {SIGNATURE_HEADER}")
    try:
        timestamp = int(raw_timestamp)
    except ValueError:
        raise SignatureError(f"{TIMESTAMP_HEADER} is not a Unix time") from None
    if abs(now - timestamp) > tolerance:
        raise SignatureError(f"signed {now - timestamp:.0f} s away from now (tolerance {tolerance:.0f} s)")
    expected = sign(secret, timestamp, body)
    # Several signatures may be sent while a secret is being rotated: any valid one will do.
    candidates = [part.strip() for part in raw_signature.split(",")]
    if not any(hmac.compare_digest(expected, candidate) for candidate in candidates):
        raise SignatureError("signature does not match the body")
