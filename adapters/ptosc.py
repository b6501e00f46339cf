"""pt-online-schema-change (Percona Toolkit 3.x), as pure functions: the argv, the credentials file, the
meaning of its output lines and of its exit codes, and the names of what it leaves behind.

osctl runs it in copy-only mode (`--no-swap-tables --no-drop-triggers --no-drop-new-table`): the tool
builds `_<table>_new` and keeps it in sync with three triggers; osctl verifies the copy against the
original in a consistent snapshot (the triggers write both tables in one transaction) and then swaps
the tables itself with one RENAME under its own lock_timeout. Measured facts for 3.2.1: progress and
throttle lines go to stderr, phases to stdout; a pause-file check sleeps 60 s before it looks again.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

TOOL = "pt_osc"
TRIGGER_EVENTS = ("del", "upd", "ins")


@dataclass(frozen=True)
class HostPort:
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class PtOscRun:
    """One invocation. `execute` False is the --dry-run preflight."""

    host: str
    port: int
    database: str
    table: str
    defaults_file: Path  # 0600 option file with [client] user and password
    alter: str
    execute: bool
    replicas: tuple[HostPort, ...] = ()
    recursion_method: str | None = None  # used when no replica is named ("none" to watch none)
    max_lag_seconds: float = 1.0
    chunk_time_seconds: float = 0.5
    max_load: str = "Threads_running=25"
    critical_load: str = "Threads_running=50"
    pause_file: Path | None = None
    pid_file: Path | None = None
    # Only after osctl's own duplicate check found none: pt-osc copies with INSERT IGNORE.
    unique_key_checked: bool = False
    # Only when the renames the dry run reported are exactly the ones osctl read from the ALTER.
    renames_confirmed: bool = False
    lock_wait_seconds: int = 1  # the tool's own DDL (triggers) waits at most this for its lock
    progress_seconds: int = 1
    copy_only: bool = True  # leave the copy, its triggers and the original for osctl to swap


def _dsn_value(value: str, what: str) -> str:
    if not value or any(char in value for char in ",=\n\\"):
        raise ValueError(f"{what} {value!r} cannot be written into a pt-osc DSN")
    return value


def _seconds(value: float) -> str:
    return f"{value:g}"


def dsn(run: PtOscRun) -> str:
    return ",".join(
        [
            f"h={_dsn_value(run.host, 'host')}",
            f"P={run.port}",
            f"D={_dsn_value(run.database, 'database')}",
            f"t={_dsn_value(run.table, 'table')}",
            f"F={_dsn_value(str(run.defaults_file), 'defaults file')}",
        ]
    )


def ptosc_argv(binary: str, run: PtOscRun) -> list[str]:
    """The whole command line. No password: credentials come from `F=` (the defaults file)."""
    argv = [
        binary,
        f"--alter={run.alter}",
        "--execute" if run.execute else "--dry-run",
        "--no-version-check",
        f"--max-lag={_seconds(max(1.0, run.max_lag_seconds))}",
        f"--chunk-time={_seconds(run.chunk_time_seconds)}",
        f"--max-load={run.max_load}",
        f"--critical-load={run.critical_load}",
        f"--progress=time,{run.progress_seconds}",
        f"--set-vars=lock_wait_timeout={run.lock_wait_seconds}",
        "--tries=create_triggers:30:0.5,drop_triggers:30:0.5,copy_rows:10:0.25,analyze_table:10:1",
    ]
    if run.replicas:
        # One replica is watched by the tool itself (3.2.1 takes a single DSN); osctl's throttle
        # watches every configured one and holds the copy through the pause file.
        first = run.replicas[0]
        argv += [
            "--recursion-method=none",
            f"--check-slave-lag=h={_dsn_value(first.host, 'host')},P={first.port},"
            f"F={_dsn_value(str(run.defaults_file), 'defaults file')}",
        ]
    elif run.recursion_method:
        argv.append(f"--recursion-method={run.recursion_method}")
    if run.pause_file is not None:
        argv.append(f"--pause-file={run.pause_file}")
    if run.pid_file is not None:
        argv.append(f"--pid={run.pid_file}")
    if run.unique_key_checked:
        argv.append("--no-check-unique-key-change")
    if run.renames_confirmed:
        argv.append("--no-check-alter")
    if run.copy_only and run.execute:  # (a dry run must drop its trial copy)
        argv += ["--no-swap-tables", "--no-drop-triggers", "--no-drop-new-table"]
    argv.append(dsn(run))
    return argv


def option_file_text(user: str, password: str) -> str:
    """A MySQL option file ([client]) as libmysqlclient/MariaDB Connector read it: double-quoted values,
    backslashes escaped. Refuses what no option file can carry (a line break)."""
    for what, value in (("user", user), ("password", password)):
        if "\n" in value or "\r" in value:
            raise ValueError(f"the {what} holds a line break, which an option file cannot carry")
    return f'[client]\nuser="{_escape(user)}"\npassword="{_escape(password)}"\n'


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\")


# -- output ---------------------------------------------------------------------------------------------


class Phase(StrEnum):
    STARTING = "starting"
    CREATING = "creating_copy"
    TRIGGERS = "creating_triggers"
    COPYING = "copying"
    COPIED = "copied"
    DONE = "done"


@dataclass
class PtOscState:
    """Everything the output has said so far; `feed` one line at a time."""

    phase: Phase = Phase.STARTING
    percent: float | None = None
    eta_seconds: float | None = None
    rows_total: int | None = None
    waiting: str | None = None
    renames: dict[str, str] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    copied: bool = False  # "Copied rows OK."
    dry_run_complete: bool = False
    _in_renames: bool = False

    @property
    def rows_done(self) -> int | None:
        if self.rows_total is None or self.percent is None:
            return None
        return int(self.rows_total * self.percent / 100)


_PROGRESS = re.compile(
    r"^Copying `(?P<db>[^`]+)`\.`(?P<table>[^`]+)`:\s+(?P<pct>\d+)% (?P<remain>[\d:+]+) remain$"
)
_LAG = re.compile(r"^Replica lag is (?P<lag>\S+) seconds on (?P<host>.+?)\.  Waiting\.$")
_STOPPED = re.compile(r"^\(\d\) Replica '(?P<host>.+)' is stopped\.  Waiting\.$")
_LOAD = re.compile(r"^Pausing because (?P<what>.+)\.$")
_PAUSED = re.compile(r"^Sleeping \S+ seconds because (?P<file>.+) exists$")
_APPROX = re.compile(r"Copying approximately (?P<rows>\d+) rows\.\.\.$")
_RENAME = re.compile(r"^\s+(?P<old>\S+) to (?P<new>\S+)$")
_TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d ")


def remaining_seconds(text: str) -> int:
    """pt's secs_to_time: 'MM:SS', 'HH:MM:SS' or 'D+HH:MM:SS'."""
    days, _, clock = text.rpartition("+")
    parts = [int(part) for part in clock.split(":")]
    seconds = 0
    for part in parts:
        seconds = seconds * 60 + part
    return seconds + (int(days) * 86_400 if days else 0)


def feed(state: PtOscState, stderr: bool, line: str) -> None:
    """Update `state` from one output line (stderr: progress and throttle; stdout: phases)."""
    text = _TIMESTAMP.sub("", line.rstrip())
    if state._in_renames:
        renamed = _RENAME.match(text)
        if renamed:
            state.renames[renamed["old"].strip("`").lower()] = renamed["new"].strip("`")
            return
        state._in_renames = False
    if match := _PROGRESS.match(text):
        state.phase = Phase.COPYING
        state.percent = float(match["pct"])
        state.eta_seconds = float(remaining_seconds(match["remain"]))
        state.waiting = None
    elif match := _LAG.match(text):
        state.waiting = f"replica lag {match['lag']} s on {match['host']} (pt-osc --max-lag)"
    elif match := _STOPPED.match(text):
        state.waiting = f"replica {match['host']} is stopped (pt-osc --max-lag)"
    elif match := _LOAD.match(text):
        state.waiting = f"server load {match['what']} (pt-osc --max-load)"
    elif _PAUSED.match(text):
        state.waiting = "paused by osctl (pause file)"
    elif match := _APPROX.search(text):
        state.phase = Phase.COPYING
        state.rows_total = int(match["rows"])
        state.percent = 0.0
    elif text.startswith(("Creating new table", "Altering new table")):
        state.phase = Phase.CREATING
    elif text.startswith("Creating triggers"):
        state.phase = Phase.TRIGGERS
    elif text.startswith("Copied rows OK"):
        state.phase, state.copied, state.percent, state.eta_seconds, state.waiting = (
            Phase.COPIED,
            True,
            100.0,
            0.0,
            None,
        )
    elif text.startswith(("Successfully altered", "Dry run complete")):
        state.phase = Phase.DONE
        state.dry_run_complete = text.startswith("Dry run complete")
    elif text.startswith("--alter appears to rename these columns:"):
        state._in_renames = True
    elif stderr and text and not text.startswith("#"):
        state.errors.append(text)


# -- exit codes -----------------------------------------------------------------------------------------

EXIT_MEANINGS = {
    1: "invalid options, interrupted, or a check refused the change (see its output)",
    2: "unsupported MySQL version",
    3: "minimum requirements not met",
    4: "no primary or unique key",
    5: "invalid --plugin file",
    6: "invalid --alter-foreign-keys-method",
    7: "invalid key size",
    9: "cannot determine the key size, or not safe to ascend the index",
    10: "error creating the new table",
    11: "error altering the new table (bad ALTER) or the table does not exist",
    12: "error creating the triggers",
    13: "error restoring triggers",
    14: "error swapping tables",
    15: "error updating foreign keys",
    16: "error dropping the old table",
    17: "unsupported operation (--check-alter failed)",
    18: "cannot connect to MySQL",
    19: "lost the MySQL connection",
    255: "unexpected error",
}
# Worth another attempt later: the server was unreachable, or a lock was not granted in time.
RETRYABLE_EXITS = frozenset({12, 18, 19})


def describe_exit(code: int, state: PtOscState, tail: Sequence[str] = ()) -> str:
    meaning = EXIT_MEANINGS.get(code, "unknown exit code")
    if code < 0:
        meaning = f"killed by signal {-code}"
    detail = state.errors[-3:] or [line for line in tail if line.strip()][-3:]
    text = f"pt-online-schema-change exited {code} ({meaning})"
    if detail:
        text += ": " + " | ".join(detail)
    return text


# -- leftovers ------------------------------------------------------------------------------------------


def trigger_prefix(database: str, table: str) -> str:
    """pt-osc 3.x: 'pt_osc_<db>_<table>' with non-word characters made '_', cut at 60 characters."""
    return re.sub(r"\W", "_", f"pt_osc_{database}_{table}")[:60]


def trigger_names(database: str, table: str) -> list[str]:
    return [f"{trigger_prefix(database, table)}_{event}" for event in TRIGGER_EVENTS]


def new_table_name(table: str) -> str:
    return f"_{table}_new"


def old_table_name(table: str) -> str:
    return f"_{table}_old"
