"""An external tool as an asyncio subprocess: argv only (never a shell), every stdout/stderr line handed
to a callback as it arrives, a bounded terminate -> kill, and the exit code.

The child gets its own session (a Ctrl-C or a signal to our process group does not reach it; we stop it
ourselves, in order) and, on Linux through `setpriv --pdeathsig`, SIGTERM when this process dies, so a
killed service does not leave a copy tool running unattended. Its pid is written next to its other
run-time files so that a restarted service can find and stop a survivor anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import structlog

log = structlog.get_logger(__name__)

LINE_LIMIT = 1 << 20  # a line longer than this is cut (a tool dumping a huge blob must not stall us)
TAIL_LINES = 40


class Stream(StrEnum):
    STDOUT = "stdout"
    STDERR = "stderr"


LineHandler = Callable[[Stream, str], None]


@dataclass(frozen=True)
class Exit:
    code: int  # negative: killed by that signal
    seconds: float
    stdout_tail: tuple[str, ...]
    stderr_tail: tuple[str, ...]


def _pdeathsig_prefix() -> list[str]:
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "TERM", "--"] if setpriv else []


class ToolProcess:
    """One running tool. Create with `start`; `wait`, `terminate` and `signal` are safe to repeat."""

    def __init__(
        self, process: asyncio.subprocess.Process, argv: Sequence[str], pid_file: Path | None
    ) -> None:
        self._process = process
        self.argv = list(argv)
        self._pid_file = pid_file
        self._started = time.monotonic()
        self._tails: dict[Stream, deque[str]] = {stream: deque(maxlen=TAIL_LINES) for stream in Stream}
        self._handler: LineHandler | None = None
        self._readers: list[asyncio.Task[None]] = []
        self._exit: Exit | None = None
        self.handler_errors = 0

    @classmethod
    async def start(
        cls,
        argv: Sequence[str],
        *,
        on_line: LineHandler | None = None,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        pid_file: Path | None = None,
        die_with_parent: bool = True,
    ) -> ToolProcess:
        if not argv:
            raise ValueError("empty argv")
        full = [*(_pdeathsig_prefix() if die_with_parent else []), *argv]
        process = await asyncio.create_subprocess_exec(
            *full,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=True,
            limit=LINE_LIMIT,
        )
        tool = cls(process, argv, pid_file)
        tool._handler = on_line
        if pid_file is not None:
            _write_pid(pid_file, process.pid)
        assert process.stdout is not None and process.stderr is not None
        tool._readers = [
            asyncio.create_task(tool._read(process.stdout, Stream.STDOUT)),
            asyncio.create_task(tool._read(process.stderr, Stream.STDERR)),
        ]
        log.info("tool_started", tool=Path(argv[0]).name, pid=process.pid)
        return tool

    @property
    def pid(self) -> int:
        return self._process.pid

    @property
    def returncode(self) -> int | None:
        return self._process.returncode

    @property
    def running(self) -> bool:
        return self._process.returncode is None

    def set_handler(self, on_line: LineHandler | None) -> None:
        """Send further lines elsewhere (or nowhere): a tool may outlive the step that started it."""
        self._handler = on_line

    def tail(self, stream: Stream) -> tuple[str, ...]:
        return tuple(self._tails[stream])

    async def _read(self, reader: asyncio.StreamReader, stream: Stream) -> None:
        while True:
            try:
                raw = await reader.readline()
            except ValueError:  # longer than the limit: take what is buffered, go on
                raw = await reader.read(LINE_LIMIT)
            if not raw:
                return
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            self._tails[stream].append(line)
            handler = self._handler
            if handler is not None:
                try:
                    handler(stream, line)
                except Exception as error:  # a parser bug must not stop the draining (the tool would block)
                    self.handler_errors += 1
                    if self.handler_errors == 1:
                        log.warning("tool_line_handler_failed", stream=stream.value, error=repr(error))

    async def wait(self) -> Exit:
        if self._exit is None:
            code = await self._process.wait()
            await asyncio.gather(*self._readers, return_exceptions=True)
            if self._exit is None:
                self._exit = Exit(
                    code=code,
                    seconds=time.monotonic() - self._started,
                    stdout_tail=self.tail(Stream.STDOUT),
                    stderr_tail=self.tail(Stream.STDERR),
                )
                if self._pid_file is not None:
                    with contextlib.suppress(FileNotFoundError):
                        self._pid_file.unlink()
                log.info("tool_exited", tool=Path(self.argv[0]).name, pid=self.pid, code=code)
        return self._exit

    def signal(self, signum: int) -> None:
        if self.running:
            with contextlib.suppress(ProcessLookupError):
                self._process.send_signal(signum)

    async def terminate(self, grace_seconds: float = 10.0) -> Exit:
        """SIGTERM, then SIGKILL if it has not exited within `grace_seconds`."""
        self.signal(signal.SIGTERM)
        try:
            return await asyncio.wait_for(asyncio.shield(self.wait()), timeout=grace_seconds)
        except TimeoutError:
            log.warning("tool_killed", tool=Path(self.argv[0]).name, pid=self.pid, after=grace_seconds)
            self.signal(signal.SIGKILL)
            return await self.wait()


def _write_pid(path: Path, pid: int) -> None:
    path.write_text(f"{pid}\n")


def stop_survivor(pid_file: Path, marker: str, grace_seconds: float = 10.0) -> int | None:
    """Stop a tool a previous service process left running (its pid file exists, the process lives and
    its command line holds `marker`). Blocking: call it from a thread. Returns the pid it stopped."""
    try:
        pid = int(pid_file.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    if not _alive_with(pid, marker):
        with contextlib.suppress(FileNotFoundError):
            pid_file.unlink()
        return None
    log.warning("tool_survivor_stopping", pid=pid, pid_file=str(pid_file))
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_seconds
    while time.monotonic() < deadline and _alive_with(pid, marker):
        time.sleep(0.1)
    if _alive_with(pid, marker):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + grace_seconds
        while time.monotonic() < deadline and _alive_with(pid, marker):
            time.sleep(0.05)
    with contextlib.suppress(FileNotFoundError):
        pid_file.unlink()
    return pid


def _alive_with(pid: int, marker: str) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError, PermissionError):
        return False
    return state != "Z" and marker.encode() in cmdline
