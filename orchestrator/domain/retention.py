"""Tables that drop_table set aside: how they are named and marked, and when one is due for purging.

The contract of a drop_table renames the table to `_osc_dropped_<table>_<hash>` and writes a marker
into its COMMENT: the original name, when it was set aside and when it may be purged. The marker
travels with the table (replicas, backups, a restored state store), so whichever osctl process looks
next, after any restart or failover, reaches the same decision from the database alone.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from datetime import datetime

from pydantic import BaseModel, ConfigDict, ValidationError

ASIDE_PREFIX = "_osc_dropped_"
MARKER_PREFIX = "osctl:drop_table "
# 63 bytes (NAMEDATALEN - 1) = prefix (13) + table (at most 41) + "_" + 8 hex digits.
_TABLE_PART = 63 - len(ASIDE_PREFIX) - 9


def aside_name(table: str, migration: str) -> str:
    """Where `migration` keeps `table`: unique per migration and table, and never truncated by the
    server (a long name is cut by us, and the hash keeps cut names apart)."""
    digest = hashlib.sha1(f"{migration}\0{table}".encode(), usedforsecurity=False).hexdigest()[:8]
    return f"{ASIDE_PREFIX}{table[:_TABLE_PART]}_{digest}"


class AsideTable(BaseModel):
    """One table kept aside, as read back from the database."""

    model_config = ConfigDict(frozen=True)

    name: str
    original: str
    migration: str = ""
    dropped_at: datetime
    purge_after: datetime


def parse_marker(name: str, comment: str | None) -> AsideTable | None:
    """The aside table described by `comment`, or None when it carries no (readable) marker: a table
    someone else named like ours is never purged."""
    if not comment or not comment.startswith(MARKER_PREFIX):
        return None
    try:
        data = json.loads(comment[len(MARKER_PREFIX) :])
        return AsideTable.model_validate({**data, "name": name})
    except (ValueError, ValidationError):
        return None


def due_for_purge(tables: Iterable[AsideTable], now: datetime) -> list[AsideTable]:
    """The tables whose retention has run out at `now`, oldest first."""
    return sorted((table for table in tables if table.purge_after <= now), key=lambda t: t.purge_after)
