"""Table-copy changes on MySQL: what an ALTER does, the work a copy step carries, and the pure choice
between pt-online-schema-change and gh-ost.

The planner reads the ALTER (sqlglot, in the engine) into `AlterFacts`; the target adds what only the
live table can tell (`TableFacts`: foreign keys, triggers, unique keys) and whether a gh-ost binary is
configured, and asks `choose_tool` again at run time. No I/O here.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict

Strategy = Literal["auto", "direct", "pt_osc", "gh_ost"]


class CopyTool(StrEnum):
    PT_OSC = "pt_osc"
    GH_OST = "gh_ost"

    @property
    def label(self) -> str:
        return "pt-online-schema-change" if self is CopyTool.PT_OSC else "gh-ost"


class CopyPhase(StrEnum):
    COPY = "copy"  # build the altered copy, keep it in sync, verify it against the original
    CUT_OVER = "cut_over"  # swap the copy in (after verifying it, if the copy step could not)
    CLEANUP = "cleanup"  # rollback: stop the tool, drop its copy, triggers and changelog table
    DROP_OLD = "drop_old"  # contract: drop the pre-change table kept as a revert window


class AlterFacts(BaseModel):
    """What an ALTER clause list does, as far as the text tells (names are lower-case as written)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    parsed: bool = True  # False: sqlglot only tokenised it (e.g. CONVERT TO CHARACTER SET)
    added_columns: tuple[str, ...] = ()
    dropped_columns: tuple[str, ...] = ()
    renamed_columns: tuple[tuple[str, str], ...] = ()  # (old, new)
    modified_columns: tuple[str, ...] = ()
    added_unique_keys: tuple[tuple[str, ...], ...] = ()  # column lists of added UNIQUE / PRIMARY keys
    adds_foreign_key: bool = False
    drops_foreign_key: bool = False
    drops_primary_key: bool = False
    adds_primary_key: bool = False
    # The renames each tool's own regex-based reading of the clause finds (a CHANGE-like word in a
    # COMMENT or DEFAULT string fools them; RENAME COLUMN escapes them). Must equal renamed_columns.
    ptosc_reads_renames: tuple[tuple[str, str], ...] = ()
    ghost_reads_renames: tuple[tuple[str, str], ...] = ()
    # Why old application code could break once the copy is swapped in; empty when it is additive.
    incompatible: tuple[str, ...] = ()

    @property
    def backward_compatible(self) -> bool:
        return not self.incompatible


class CopyWork(BaseModel):
    """A copy step's orders: the table, the clause and the tool knobs, and which phase to run."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    table: str
    alter: str  # the clause list after ALTER TABLE <table>, validated by the planner
    phase: CopyPhase
    strategy: Strategy = "auto"
    facts: AlterFacts = AlterFacts()
    # The cut-over waits for the deploy gate. In expand a gated copy step only prepares (gh-ost copies
    # and postpones its cut-over; pt-osc, which cannot postpone, waits for the backfill stage).
    gated: bool = False
    deferrable: bool = False  # this copy step may leave the copy to a later step (pt-osc, gated)
    keep_old_table: bool = False
    verify: bool = True
    max_lag_seconds: float = 1.0
    chunk_time_seconds: float = 0.5
    chunk_size: int = 1000
    max_load: str = "Threads_running=25"
    critical_load: str = "Threads_running=50"


@dataclass(frozen=True)
class TableFacts:
    """What the live table tells about a copy; read by the target just before the copy starts."""

    exists: bool = True
    references_other_tables: bool = False  # it has foreign keys of its own
    referenced_by: tuple[str, ...] = ()  # tables whose foreign keys point at it
    triggers: tuple[str, ...] = ()
    # PRIMARY and UNIQUE keys whose columns are all NOT NULL, by name.
    unique_keys: dict[str, tuple[str, ...]] = field(default_factory=dict)
    nullable_unique_keys: dict[str, tuple[str, ...]] = field(default_factory=dict)
    server_version: str = ""  # VERSION(), e.g. "10.11.19-MariaDB-0+deb12u1-log"


_MARIADB_VERSION = re.compile(r"^(\d+)\.(\d+)\.\d+.*mariadb", re.IGNORECASE)


def ghost_server_problem(server_version: str) -> str | None:
    """Why released gh-ost cannot run against this server, or None.

    gh-ost sets `transaction_isolation` on every connection; MariaDB knows that name only from 11.1
    (before, `tx_isolation`), so every gh-ost release up to 1.1.9 stops at once on MariaDB 10.x with
    error 1193 (github/gh-ost#1488, fixed upstream after 1.1.9).
    """
    match = _MARIADB_VERSION.match(server_version)
    if match is None or (int(match[1]), int(match[2])) >= (11, 1):
        return None
    return (
        f"MariaDB {match[1]}.{match[2]} has no transaction_isolation variable, which gh-ost sets on every "
        "connection (github/gh-ost#1488; MariaDB adds it in 11.1)"
    )


@dataclass(frozen=True)
class ToolChoice:
    tool: CopyTool | None
    why: str  # one sentence for the plan, the events and the step error
    refusals: dict[CopyTool, tuple[str, ...]] = field(default_factory=dict)


def _shared_unique_key(facts: AlterFacts, table: TableFacts) -> str | None:
    """A unique key over NOT NULL columns that the change leaves in place (what gh-ost walks)."""
    gone = set(facts.dropped_columns) | {old for old, _ in facts.renamed_columns}
    for name, columns in sorted(table.unique_keys.items(), key=lambda item: item[0] != "PRIMARY"):
        if name == "PRIMARY" and facts.drops_primary_key:
            continue
        if not gone.intersection(columns):
            return name
    return None


def tool_refusals(facts: AlterFacts, table: TableFacts | None) -> dict[CopyTool, tuple[str, ...]]:
    """Why each tool cannot (or must not) make this change. `table` None: from the text alone."""
    ghost: list[str] = []
    ptosc: list[str] = []
    both: list[str] = []
    re_added = sorted(set(facts.dropped_columns) & set(facts.added_columns))
    if re_added:
        both.append(
            f"column {', '.join(re_added)} is dropped and added again: both tools copy columns by name, "
            "so the old values would land in the new column; make it two migrations"
        )
    if facts.drops_primary_key and not facts.adds_primary_key:
        both.append("the primary key is dropped without a new one: both tools need it to copy and sync")
    if facts.adds_foreign_key:
        ghost.append("gh-ost does not support foreign keys")
    if facts.drops_primary_key:
        ptosc.append("pt-osc refuses DROP PRIMARY KEY unless its --alter checks are turned off")
    if facts.drops_foreign_key:
        ptosc.append(
            "pt-osc renames foreign keys on its copy (fk -> _fk), so DROP FOREIGN KEY names the wrong one"
        )
    expected = _renames(facts.renamed_columns)
    for tool, read, reasons in (
        (CopyTool.PT_OSC, facts.ptosc_reads_renames, ptosc),
        (CopyTool.GH_OST, facts.ghost_reads_renames, ghost),
    ):
        if _renames(read) != expected:
            seen = _renames(read) or "no rename"
            reasons.append(
                f"{tool.label} reads the ALTER as renaming {seen} but it renames {expected or 'nothing'} "
                "(a CHANGE-like word inside a quoted string, or RENAME COLUMN, which it does not parse): "
                "it would copy the wrong values"
            )
    if table is not None:
        if not table.exists:
            both.append("the table does not exist")
        if table.references_other_tables:
            ghost.append("the table has foreign keys, which gh-ost does not support")
        if table.referenced_by:
            refs = ", ".join(table.referenced_by)
            ghost.append(f"foreign keys of {refs} reference the table, which gh-ost does not support")
            ptosc.append(
                f"foreign keys of {refs} reference the table: pt-osc would have to rebuild them "
                "(--alter-foreign-keys-method), which osctl does not do"
            )
        if table.triggers:
            names = ", ".join(table.triggers)
            ghost.append(f"the table has triggers ({names})")
            ptosc.append(f"the table has triggers ({names}) and pt-osc needs its own three")
        if table.exists and _shared_unique_key(facts, table) is None:
            # gh-ost walks and replays by it; pt-osc's delete trigger needs it on the copy.
            if not table.unique_keys:
                nullable = " (only nullable ones)" if table.nullable_unique_keys else ""
                both.append(f"the table has no primary key or unique key over NOT NULL columns{nullable}")
            else:
                both.append(
                    "the change leaves the table and its copy no unique key over NOT NULL columns in common"
                )
    return {
        CopyTool.GH_OST: tuple(both + ghost),
        CopyTool.PT_OSC: tuple(both + ptosc),
    }


def choose_tool(
    strategy: Strategy,
    facts: AlterFacts,
    table: TableFacts | None,
    *,
    ghost_available: bool | None,
) -> ToolChoice:
    """The copy tool for this change, or None with every reason. `ghost_available` None: not known yet
    (plan time); the choice then says what happens either way."""
    refusals = tool_refusals(facts, table)
    server_problem = ghost_server_problem(table.server_version) if table is not None else None
    if server_problem is not None and strategy != "gh_ost":
        # Asked for by name, gh-ost runs: the configured binary may be one built for this server.
        refusals[CopyTool.GH_OST] = (server_problem, *refusals[CopyTool.GH_OST])
    if ghost_available is False:
        refusals[CopyTool.GH_OST] = (
            "no gh-ost binary is configured (GH_OST_BIN)",
            *refusals[CopyTool.GH_OST],
        )
    ghost_ok = not refusals[CopyTool.GH_OST]
    ptosc_ok = not refusals[CopyTool.PT_OSC]
    if strategy in ("pt_osc", "gh_ost"):
        tool = CopyTool(strategy)
        if refusals[tool]:
            return ToolChoice(None, f"{tool.label} was asked for, but {refusals[tool][0]}", refusals)
        if tool is CopyTool.GH_OST and server_problem is not None:
            why = f"gh-ost, as the spec asks, although {server_problem}: it needs a gh-ost built for it"
            return ToolChoice(tool, why, refusals)
        return ToolChoice(tool, f"{tool.label}, as the spec asks", refusals)
    if ghost_ok and ghost_available:
        return ToolChoice(
            CopyTool.GH_OST, "gh-ost: preferred (no triggers on the table) and configured", refusals
        )
    if ghost_ok and ghost_available is None:
        fallback = "pt-online-schema-change otherwise" if ptosc_ok else "and nothing otherwise"
        why = f"gh-ost when the service has a binary (GH_OST_BIN), {fallback}"
        if not ptosc_ok:
            why += f" ({refusals[CopyTool.PT_OSC][0]})"
        return ToolChoice(CopyTool.GH_OST, why, refusals)
    if ptosc_ok:
        reason = refusals[CopyTool.GH_OST][0] if refusals[CopyTool.GH_OST] else "gh-ost is not configured"
        return ToolChoice(CopyTool.PT_OSC, f"pt-online-schema-change, because for gh-ost {reason}", refusals)
    return ToolChoice(None, "no copy tool can make this change: " + _both(refusals), refusals)


def _renames(pairs: Sequence[tuple[str, str]]) -> dict[str, str]:
    return {old.lower(): new.lower() for old, new in pairs if old.lower() != new.lower()}


def _both(refusals: dict[CopyTool, tuple[str, ...]]) -> str:
    parts = [f"{tool.label}: {reasons[0]}" for tool, reasons in refusals.items() if reasons]
    return "; ".join(parts)


def old_table_name(table: str, tool: CopyTool) -> str:
    """Where the pre-change table is left after the cut-over (pt-osc's and gh-ost's own names)."""
    return f"_{table}_old" if tool is CopyTool.PT_OSC else f"_{table}_del"


def shared_columns(
    old: Sequence[tuple[str, str]], new: Sequence[tuple[str, str]], renamed: Sequence[tuple[str, str]] = ()
) -> tuple[list[tuple[str, str]], list[str]]:
    """Columns to compare between the original and its copy: pairs (old name, new name) whose column
    type is the same on both sides, and the names left out because their type changed.

    `old`/`new` are (name, COLUMN_TYPE) in table order; `renamed` maps old names to new ones.
    """
    new_types = dict(new)
    rename = dict(renamed)
    compared: list[tuple[str, str]] = []
    skipped: list[str] = []
    for name, type_ in old:
        target = rename.get(name, name)
        if target not in new_types:
            continue  # dropped by the change
        if new_types[target] == type_:
            compared.append((name, target))
        else:
            skipped.append(name)
    return compared, skipped
