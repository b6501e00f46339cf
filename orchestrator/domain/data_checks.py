"""Questions about the live rows of a table, asked before a migration is accepted, and the answers.

The engine decides which checks a spec needs (orchestrator/engine/preflight_data.py, pure), an
adapter runs them (adapters/postgres/preflight_data.py), and the engine judges the findings. SQL
fragments in a check are quoted identifiers or expressions from the spec that parsed as one scalar
expression; the adapter runs them in read-only transactions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from orchestrator.domain.sessions import SessionInfo


class DataCheckKind(StrEnum):
    NULLS = "nulls"  # rows whose value is NULL, before NOT NULL
    DUPLICATES = "duplicates"  # groups of rows sharing a key, before UNIQUE
    ORPHANS = "orphans"  # rows whose key has no referenced row, before a FOREIGN KEY
    CAST = "cast"  # rows whose value fails the conversion to a new type
    CHECK = "check"  # rows a CHECK constraint rejects (its expression is false)


@dataclass(frozen=True)
class DataCheck:
    path: str  # the spec field the finding is reported on: operations.3.add_unique.columns
    kind: DataCheckKind
    table: str
    expressions: tuple[str, ...]  # SQL over the row: quoted columns or spec expressions
    labels: tuple[str, ...]  # the same as a person wrote them: column names or expressions
    key: tuple[str, ...] = ()  # columns that identify a sample row (empty: its ctid)
    shown: tuple[str, ...] = ()  # plain columns whose values a sample shows
    type_name: str | None = None  # CAST: the type converted to
    where: str | None = None  # DUPLICATES under a partial unique index: its predicate
    referenced_table: str | None = None  # ORPHANS
    referenced_columns: tuple[str, ...] = ()
    fix: str = ""  # what to do about offending rows, appended to the message


@dataclass(frozen=True)
class DataSample:
    key: tuple[str | None, ...] = ()  # the row's key values as text (empty for a duplicate group)
    values: tuple[str | None, ...] = ()  # the shown columns' values, or a duplicate group's key
    count: int = 1  # rows in a duplicate group


@dataclass(frozen=True)
class DataFinding:
    check: DataCheck
    count: int  # offending rows (groups, for DUPLICATES)
    samples: tuple[DataSample, ...] = ()
    exact: bool = True  # False when counting stopped at a bound: "at least `count`"
    error: str | None = None  # what the database said about an offending row (a failed cast)
    incomplete: str | None = None  # why the check could not finish (it ran out of time)


@dataclass(frozen=True)
class ReplicaInfo:
    name: str  # application_name of the walreceiver, else its address
    state: str  # streaming, catchup, ...
    lag_bytes: int | None
    lag_seconds: float | None  # replay_lag: NULL while the primary is idle


@dataclass(frozen=True)
class TableSize:
    table: str
    total_bytes: int  # with indexes and TOAST
    estimated_rows: int


@dataclass(frozen=True)
class LiveData:
    findings: tuple[DataFinding, ...] = ()
    # Sessions of the database inside a transaction; locked_tables names the migration's tables
    # each holds a lock on.
    sessions: tuple[SessionInfo, ...] = ()
    replicas: tuple[ReplicaInfo, ...] | None = None  # None: pg_stat_replication could not be read
    sizes: dict[str, TableSize] = field(default_factory=dict)
