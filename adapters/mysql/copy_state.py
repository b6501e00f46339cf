"""What a copy step keeps between attempts and stages: the service's copy settings, a table's run-time
files (credentials, pause and flag files, gh-ost's socket, the tool's pid) and the tools this process
runs. A tool belongs to the service process, not to a target instance (one per stage): gh-ost's
postponed copy outlives the expand stage that started it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from adapters import ghost
from adapters.mysql.dsn import MysqlDsn
from adapters.process import ToolProcess
from adapters.ptosc import HostPort, PtOscState
from orchestrator.domain.copy_tools import CopyTool
from orchestrator.ports import CopyStatus


def default_runtime_dir() -> Path:
    base = os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
    return Path(base) / f"osctl-{os.getuid()}"


@dataclass(frozen=True)
class CopySettings:
    """How this service runs copy tools. `from_env` reads GH_OST_BIN (empty: none), OSCTL_PTOSC_BIN,
    OSCTL_COPY_DIR and OSCTL_GHOST_INSPECT_REPLICA; the replicas to watch come from the target DSN's
    `replicas=host:port,...` parameter."""

    ghost_binary: str | None = None
    ptosc_binary: str = "pt-online-schema-change"
    runtime_dir: Path = field(default_factory=default_runtime_dir)
    replicas: tuple[HostPort, ...] = ()
    ghost_inspect_replica: bool = False  # gh-ost reads the first replica's binlog, not the primary's
    recursion_method: str | None = None  # pt-osc's replica discovery when no replica is named
    ghost_gtid: bool = False  # gh-ost --gtid: position its binlog reader by GTID
    poll_seconds: float = 0.25
    terminate_grace_seconds: float = 10.0
    hold_ack_seconds: float = 5.0  # how long a pause waits to see the tool acknowledge it

    @classmethod
    def from_env(cls, dsn: MysqlDsn, environ: Mapping[str, str] | None = None) -> CopySettings:
        env = os.environ if environ is None else environ
        runtime = env.get("OSCTL_COPY_DIR")
        return cls(
            ghost_binary=env.get("GH_OST_BIN") or None,
            ptosc_binary=env.get("OSCTL_PTOSC_BIN") or "pt-online-schema-change",
            runtime_dir=Path(runtime) if runtime else default_runtime_dir(),
            replicas=tuple(HostPort(host, port) for host, port in dsn.replicas),
            ghost_inspect_replica=env.get("OSCTL_GHOST_INSPECT_REPLICA", "").lower() in ("1", "true", "yes"),
            recursion_method=env.get("OSCTL_PTOSC_RECURSION_METHOD") or None,
            ghost_gtid=env.get("OSCTL_GHOST_GTID", "").lower() in ("1", "true", "yes"),
        )


@dataclass(frozen=True)
class CopyFiles:
    """A table's run-time files, in a 0700 directory of their own."""

    directory: Path

    @property
    def credentials(self) -> Path:
        return self.directory / "client.cnf"

    @property
    def pause(self) -> Path:
        return self.directory / "pause"

    @property
    def socket(self) -> Path:
        return self.directory / "gh-ost.sock"

    @property
    def postpone(self) -> Path:
        return self.directory / "postpone-cut-over"

    @property
    def throttle(self) -> Path:
        return self.directory / "throttle"

    @property
    def pid(self) -> Path:
        return self.directory / "tool.pid"

    def prepare(self) -> None:
        """The runtime directory (0700 when we create it) and the table's own (always 0700)."""
        if not self.directory.parent.exists():
            self.directory.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.directory.mkdir(exist_ok=True, mode=0o700)
        os.chmod(self.directory, 0o700)

    def write_private(self, path: Path, text: str) -> None:
        """A file only this user can read, written without a window in which others could."""
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(text)

    def remove(self, *paths: Path) -> None:
        for path in paths:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


@dataclass
class LiveCopy:
    """A tool this service process started, and what osctl knows about it."""

    tool: CopyTool
    process: ToolProcess
    files: CopyFiles
    ptosc_state: PtOscState | None = None
    ghost_state: ghost.GhostState | None = None
    verified: bool = False
    held: str | None = None  # why osctl holds it now (pause file present / gh-ost `throttle` sent)
    parked: bool = False  # held by a stopped step, for the next attempt to adopt

    def status(self, phase: str) -> CopyStatus:
        if self.ptosc_state is not None:
            state = self.ptosc_state
            return CopyStatus(
                tool=self.tool.value,
                phase=phase if phase != "copying" else state.phase.value,
                percent=state.percent,
                eta_seconds=state.eta_seconds,
                rows_done=state.rows_done,
                rows_total=state.rows_total,
                waiting=self.held or state.waiting,
            )
        assert self.ghost_state is not None
        status = self.ghost_state.status
        return CopyStatus(
            tool=self.tool.value,
            phase=phase,
            percent=status.percent if status else None,
            eta_seconds=status.eta_seconds if status else None,
            rows_done=status.copied if status else None,
            rows_total=status.total if status else None,
            waiting=self.held or self.ghost_state.waiting,
        )


# Tools by (host, port, database, table): a tool outlives the target instance (one per stage).
LIVE: dict[str, LiveCopy] = {}


async def stop_all(grace_seconds: float = 10.0) -> None:
    """Stop every tool this process runs (service shutdown). Their leftovers go at the next attempt."""
    lives = list(LIVE.values())
    LIVE.clear()
    await asyncio.gather(*(live.process.terminate(grace_seconds) for live in lives), return_exceptions=True)
