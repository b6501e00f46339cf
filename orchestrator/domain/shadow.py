"""Shadow-table rewrites on PostgreSQL: the work a shadow step carries and the names of its work objects.

A shadow rewrite builds `_osc_shadow_<table>` with the changed column, captures every change to the
original in `_osc_log_<table>` (keys only, by triggers), copies in key order, replays the log, verifies
and swaps names; the pre-change table stays as `_osc_old_<table>`, kept in step by reverse triggers
(`_osc_rlog_<table>`), until contract. No I/O here.
"""

from __future__ import annotations

import hashlib
from enum import StrEnum

from pydantic import BaseModel, ConfigDict

# The longest work-object prefix is 12 characters and PostgreSQL names stop at 63 bytes.
MAX_TABLE_NAME = 51


class ShadowPhase(StrEnum):
    PREPARE = "prepare"  # expand: shadow table, change log, capture triggers
    DROP = "drop"  # undoes prepare: triggers, function, log and shadow table gone
    COPY = "copy"  # backfill: chunks along the key, then replay and verify (a BACKFILL step)
    BUILD = "build"  # backfill: the secondary indexes and statistics of the shadow table
    SWAP = "swap"  # backfill: catch up, swap names under lock_timeout, capture in reverse
    SWAP_BACK = "swap_back"  # undoes swap: catch the old table up, swap the names back
    DROP_OLD = "drop_old"  # contract: the pre-change table and the reverse capture


class ShadowWork(BaseModel):
    """What the column becomes, and which phase of the rewrite a step runs. `up`/`down` None: a cast."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    table: str
    column: str
    phase: ShadowPhase
    type: str | None = None
    up: str | None = None
    down: str | None = None
    nullable: bool | None = None
    default: str | int | float | bool | None = None
    drop_default: bool = False


def shadow_table_name(table: str) -> str:
    return f"_osc_shadow_{table}"


def old_table_name(table: str) -> str:
    return f"_osc_old_{table}"


def log_table_name(table: str) -> str:
    return f"_osc_log_{table}"


def reverse_log_table_name(table: str) -> str:
    return f"_osc_rlog_{table}"


def _tagged(kind: str, table: str, name: str) -> str:
    # Index names are schema-wide: a short digest keeps the two sides' names apart and stable across
    # retries, the readable tail says what each one is.
    digest = hashlib.sha1(f"{kind}:{table}:{name}".encode(), usedforsecurity=False).hexdigest()[:8]
    return f"_osc_{kind}{digest}_{name}"[:63]


def shadow_index_name(table: str, index: str) -> str:
    """The name an index of `table` has on the shadow table until the swap gives it the original name."""
    return _tagged("s", table, index)


def old_index_name(table: str, index: str) -> str:
    """The name an index of the pre-change table has after the swap."""
    return _tagged("o", table, index)


# The key column types a shadow rewrite may change: equality and order survive the widening, so the
# change log's keys and the copy's key ranges mean the same rows on both sides.
_INTEGER_RANK = {"smallint": 1, "integer": 2, "bigint": 3}


def key_type_change_problem(old: str, new: str) -> str | None:
    """Why a primary-key column cannot go from `old` to `new` by a shadow rewrite, or None."""
    if old == new:
        return None
    if old in _INTEGER_RANK and new in _INTEGER_RANK:
        if _INTEGER_RANK[new] >= _INTEGER_RANK[old]:
            return None
        return f"narrowing a primary-key column from {old} to {new} could fail half-way; not supported"
    if _is_text(old) and _is_text(new) and _text_length(new) >= _text_length(old):
        return None
    return (
        f"a primary-key column can only be widened by a shadow rewrite (smallint -> integer -> bigint, "
        f"varchar(n) -> varchar(m >= n) or text), not changed from {old} to {new}"
    )


def _is_text(type_name: str) -> bool:
    return type_name in ("text", "character varying", "varchar") or type_name.startswith(
        ("character varying(", "varchar(")
    )


def _text_length(type_name: str) -> int:
    if "(" not in type_name:
        return 1 << 30
    return int(type_name.split("(", 1)[1].rstrip(")").strip())
