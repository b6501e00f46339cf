"""gh-ost, as pure functions (argv, credentials file, status lines, leftover names) plus a small client
for its interactive socket.

osctl always runs gh-ost with a postpone-cut-over flag file: the copy runs in its stage, osctl verifies
the ghost table against the original while gh-ost holds the cut-over, and the cut-over happens when
osctl removes the flag and sends `unpostpone` (for a breaking change: only after the deploy gate).
gh-ost leaves the pre-change table as `_<table>_del` (no --ok-to-drop-table): osctl drops it, or keeps
it as a revert window. Success is judged by the exit code and the final `# Done`, never by grepping
for ERROR (a successful run can log a stray one at teardown).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from adapters.ptosc import HostPort

TOOL = "gh_ost"
DONE_LINE = "# Done"
SOCKET_COMMANDS = frozenset(
    {"status", "sup", "throttle", "no-throttle", "unpostpone", "panic", "help", "coordinates"}
)
SOCKET_SETTINGS = frozenset({"chunk-size", "max-lag-millis", "max-load", "critical-load", "nice-ratio"})


@dataclass(frozen=True)
class GhostRun:
    host: str  # the inspected server: the primary with allow_on_master, else a replica
    port: int
    database: str
    table: str
    conf_file: Path  # 0600, [client] user and password
    alter: str
    socket_file: Path
    postpone_flag_file: Path
    execute: bool = True
    allow_on_master: bool = True
    throttle_control_replicas: tuple[HostPort, ...] = ()
    gtid: bool = False
    skip_metadata_lock_check: bool = True  # unless performance_schema has the MDL instrument on
    max_lag_millis: int = 1500
    chunk_size: int = 1000
    max_load: str = "Threads_running=25"
    critical_load: str = "Threads_running=50"
    initially_drop_ghost_table: bool = False  # osctl drops leftovers itself, after checking them
    ok_to_drop_table: bool = False  # keep _<table>_del: verified and dropped (or kept) by osctl
    approve_renamed_columns: bool = False
    cut_over_lock_timeout_seconds: int = 3
    throttle_flag_file: Path | None = None  # instead of the shared /tmp/gh-ost.throttle
    assume_rbr: bool = True


# Flags that not every gh-ost release knows (both came with 1.1.8). Without --skip-metadata-lock-check
# an older release simply performs no metadata-lock check, so leaving it out changes nothing; --gtid is
# only passed on request, and a release without it is refused rather than silently run by file/position.
VERSIONED_FLAGS = frozenset({"gtid", "skip-metadata-lock-check"})
_HELP_FLAG = re.compile(r"^\s+-([a-z][a-z0-9-]*)\b")


def parse_help_flags(help_text: str) -> frozenset[str]:
    """The flag names `gh-ost --help` lists (Go's flag package: two spaces, a dash, the name)."""
    return frozenset(match.group(1) for line in help_text.splitlines() if (match := _HELP_FLAG.match(line)))


_FLAGS_CACHE: dict[str, frozenset[str]] = {}


async def supported_flags(binary: str) -> frozenset[str]:
    """What this binary accepts, read once per path from its --help (exit status 0 or 2 alike)."""
    cached = _FLAGS_CACHE.get(binary)
    if cached is not None:
        return cached
    process = await asyncio.create_subprocess_exec(
        binary, "--help", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    output, _ = await process.communicate()
    flags = parse_help_flags(output.decode(errors="replace"))
    _FLAGS_CACHE[binary] = flags
    return flags


class GhostFlagUnsupportedError(RuntimeError):
    pass


def ghost_argv(binary: str, run: GhostRun, supported: frozenset[str] | None = None) -> list[str]:
    """The whole command line. No password: credentials come from --conf.

    `supported`: the flags the binary lists in --help (None: assume the current release). A
    versioned flag the binary lacks is left out where that is harmless and refused where it is not.
    """
    if supported is not None and run.gtid and "gtid" not in supported:
        raise GhostFlagUnsupportedError(
            "this gh-ost has no --gtid (it came with gh-ost 1.1.8): upgrade it, or unset OSCTL_GHOST_GTID"
        )

    def knows(flag: str) -> bool:
        return supported is None or flag not in VERSIONED_FLAGS or flag in supported

    argv = [
        binary,
        f"--conf={run.conf_file}",
        f"--host={run.host}",
        f"--port={run.port}",
        f"--database={run.database}",
        f"--table={run.table}",
        f"--alter={run.alter}",
        f"--serve-socket-file={run.socket_file}",
        f"--postpone-cut-over-flag-file={run.postpone_flag_file}",
        f"--max-lag-millis={max(100, run.max_lag_millis)}",
        f"--chunk-size={run.chunk_size}",
        f"--max-load={run.max_load.replace(':', '=')}",
        f"--critical-load={run.critical_load.replace(':', '=')}",
        f"--cut-over-lock-timeout-seconds={max(1, run.cut_over_lock_timeout_seconds)}",
        "--default-retries=120",
        "--verbose",
    ]
    if run.allow_on_master:
        argv.append("--allow-on-master")
    if run.throttle_control_replicas:
        argv.append("--throttle-control-replicas=" + ",".join(str(r) for r in run.throttle_control_replicas))
    if run.gtid:
        argv.append("--gtid")
    if run.skip_metadata_lock_check and knows("skip-metadata-lock-check"):
        argv.append("--skip-metadata-lock-check")
    if run.assume_rbr:
        argv.append("--assume-rbr")
    if run.initially_drop_ghost_table:
        argv.append("--initially-drop-ghost-table")
    if run.ok_to_drop_table:
        argv.append("--ok-to-drop-table")
    if run.approve_renamed_columns:
        argv.append("--approve-renamed-columns")
    if run.throttle_flag_file is not None:
        argv += [
            f"--throttle-flag-file={run.throttle_flag_file}",
            f"--throttle-additional-flag-file={run.throttle_flag_file}",
        ]
    if run.execute:
        argv.append("--execute")
    return argv


def conf_text(user: str, password: str) -> str:
    """gh-ost reads --conf with go-ini: a double-quoted value runs to the last quote on its line and
    backslashes stay as they are. Refuses a line break."""
    for what, value in (("user", user), ("password", password)):
        if "\n" in value or "\r" in value:
            raise ValueError(f"the {what} holds a line break, which a gh-ost --conf file cannot carry")
    return f'[client]\nuser = "{user}"\npassword = "{password}"\n'


# -- status lines ---------------------------------------------------------------------------------------

_STATUS = re.compile(
    r"^Copy: (?P<copied>\d+)/(?P<total>\d+) (?P<pct>[\d.]+)%; Applied: (?P<applied>\d+); "
    r"Backlog: (?P<backlog>\d+)/(?P<capacity>\d+); Time: (?P<total_time>\S+)\(total\), (?P<copy_time>\S+)\(copy\); "
    r"streamer: (?P<streamer>.*?); Lag: (?P<lag>[\d.]+)s, (?:HeartbeatLag: (?P<hb>[\d.]+)s, )?"
    r"State: (?P<state>.*); ETA: (?P<eta>\S+)$"
)
_DURATION = re.compile(r"^(?:(?P<h>\d+)h)?(?:(?P<m>\d+)m)?(?:(?P<s>[\d.]+)s)?$")
_COORDINATES = re.compile(r"^(?P<file>.+\.(?P<seq>\d+)):(?P<pos>\d+)$")


def duration_seconds(text: str) -> float | None:
    """gh-ost's prettified Go durations: '4s', '2m37s', '1h34m28s'; 'due' is 0; 'N/A' is unknown."""
    if text == "due":
        return 0.0
    match = _DURATION.match(text)
    if not match or not text:
        return None
    return int(match["h"] or 0) * 3600 + int(match["m"] or 0) * 60 + float(match["s"] or 0)


@dataclass(frozen=True)
class GhostStatus:
    copied: int
    total: int
    percent: float
    applied: int
    backlog: int
    backlog_capacity: int
    streamer: str
    lag_seconds: float
    state: str  # "migrating", "postponing cut-over", "throttled, <reason>", "counting rows"
    eta_seconds: float | None

    @property
    def throttle_reason(self) -> str | None:
        return self.state.removeprefix("throttled, ") if self.state.startswith("throttled") else None

    @property
    def postponing(self) -> bool:
        return self.state == "postponing cut-over"

    @property
    def binlog_position(self) -> tuple[int, int] | None:
        """(file sequence, position) of the streamer, when it reports file coordinates."""
        match = _COORDINATES.match(self.streamer)
        return (int(match["seq"]), int(match["pos"])) if match else None


def parse_status(line: str) -> GhostStatus | None:
    match = _STATUS.match(line.strip())
    if match is None:
        return None
    return GhostStatus(
        copied=int(match["copied"]),
        total=int(match["total"]),
        percent=float(match["pct"]),
        applied=int(match["applied"]),
        backlog=int(match["backlog"]),
        backlog_capacity=int(match["capacity"]),
        streamer=match["streamer"],
        lag_seconds=float(match["lag"]),
        state=match["state"],
        eta_seconds=duration_seconds(match["eta"]),
    )


def binlog_position(file: str, position: int) -> tuple[int, int] | None:
    """SHOW MASTER STATUS's File/Position in the form GhostStatus.binlog_position compares with."""
    match = _COORDINATES.match(f"{file}:{position}")
    return (int(match["seq"]), int(match["pos"])) if match else None


@dataclass
class GhostState:
    """Everything gh-ost's output said so far; `feed` one line at a time."""

    status: GhostStatus | None = None
    done: bool = False
    errors: list[str] = field(default_factory=list)
    lines: int = 0

    @property
    def waiting(self) -> str | None:
        reason = self.status.throttle_reason if self.status else None
        return f"gh-ost throttled: {reason}" if reason else None


def feed(state: GhostState, line: str) -> None:
    state.lines += 1
    text = line.strip()
    status = parse_status(text)
    if status is not None:
        state.status = status
    elif text == DONE_LINE:
        state.done = True
    elif " FATAL " in f" {text} " or " ERROR " in f" {text} ":
        state.errors.append(text)


def describe_exit(code: int, state: GhostState, tail: Sequence[str] = ()) -> str:
    if code == 0 and not state.done:
        meaning = "exited 0 without '# Done'"
    elif code < 0:
        meaning = f"killed by signal {-code}"
    else:
        meaning = f"exited {code}"
    detail = state.errors[-3:] or [line for line in tail if line.strip()][-3:]
    text = f"gh-ost {meaning}" + (": " + " | ".join(detail) if detail else "")
    if any("Unknown system variable 'transaction_isolation'" in line for line in (*state.errors, *tail)):
        text += (
            " (this server, MariaDB before 11.1, has no transaction_isolation, which gh-ost releases up to "
            "1.1.9 set: github/gh-ost#1488; use pt-osc or a gh-ost built for MariaDB)"
        )
    return text


# -- the interactive socket -----------------------------------------------------------------------------


def socket_command(command: str, value: int | str | None = None) -> str:
    """One command line for the socket, checked against what gh-ost knows."""
    if value is None:
        if command not in SOCKET_COMMANDS:
            raise ValueError(f"unknown gh-ost socket command {command!r}")
        return command
    if command not in SOCKET_SETTINGS:
        raise ValueError(f"gh-ost socket setting {command!r} takes no value or is unknown")
    text = str(value)
    if "\n" in text:
        raise ValueError("a socket value cannot hold a line break")
    return f"{command}={text}"


async def send(socket_file: Path, command: str, *, timeout: float = 5.0) -> str:
    """Send one command and return gh-ost's whole answer (it closes the connection after it)."""

    async def exchange() -> str:
        reader, writer = await asyncio.open_unix_connection(str(socket_file))
        try:
            writer.write(command.encode() + b"\n")
            await writer.drain()
            return (await reader.read()).decode("utf-8", "replace")
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()

    return await asyncio.wait_for(exchange(), timeout=timeout)


def status_from_answer(answer: str) -> GhostStatus | None:
    """The status line in a `status`/`sup` answer (after the '# ...' hint lines)."""
    for line in reversed(answer.splitlines()):
        status = parse_status(line)
        if status is not None:
            return status
    return None


# -- leftovers ------------------------------------------------------------------------------------------


def ghost_table_name(table: str) -> str:
    return f"_{table}_gho"


def changelog_table_name(table: str) -> str:
    return f"_{table}_ghc"


def old_table_name(table: str) -> str:
    return f"_{table}_del"
