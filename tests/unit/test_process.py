"""adapters/process.py with small Python children: lines streamed as they come, exit codes, the bounded
terminate -> kill, and finding a survivor by its pid file."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from adapters.process import Stream, ToolProcess, stop_survivor

CHILD = [sys.executable, "-u", "-c"]


async def test_lines_reach_the_handler_as_they_come_and_the_exit_code_is_kept(tmp_path: Path) -> None:
    seen: list[tuple[Stream, str, float]] = []
    script = (
        "import sys, time\n"
        "print('first', flush=True)\n"
        "print('to stderr', file=sys.stderr, flush=True)\n"
        "time.sleep(0.5)\n"
        "print('last')\n"
        "sys.exit(3)\n"
    )
    started = time.monotonic()
    tool = await ToolProcess.start(
        [*CHILD, script],
        on_line=lambda stream, line: seen.append((stream, line, time.monotonic() - started)),
        pid_file=tmp_path / "tool.pid",
    )
    assert (tmp_path / "tool.pid").read_text().strip() == str(tool.pid)
    exit_ = await tool.wait()
    assert exit_.code == 3
    assert [(stream, line) for stream, line, _ in seen] == [
        (Stream.STDOUT, "first"),
        (Stream.STDERR, "to stderr"),
        (Stream.STDOUT, "last"),
    ] or sorted(line for _, line, _ in seen) == ["first", "last", "to stderr"]
    first = next(at for _, line, at in seen if line == "first")
    last = next(at for _, line, at in seen if line == "last")
    assert last - first >= 0.4, "lines are streamed, not collected at exit"
    assert exit_.stdout_tail == ("first", "last")
    assert exit_.stderr_tail == ("to stderr",)
    assert not (tmp_path / "tool.pid").exists(), "the pid file goes with the process"
    assert await tool.wait() is exit_


async def test_terminate_kills_a_child_that_ignores_sigterm_within_the_bound() -> None:
    script = "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\nprint('ready', flush=True)\ntime.sleep(60)\n"
    ready = asyncio.Event()
    tool = await ToolProcess.start([*CHILD, script], on_line=lambda _s, line: ready.set())
    await asyncio.wait_for(ready.wait(), 10)
    started = time.monotonic()
    exit_ = await tool.terminate(grace_seconds=0.5)
    assert exit_.code == -signal.SIGKILL
    assert time.monotonic() - started < 5
    assert not tool.running


async def test_terminate_lets_a_cooperative_child_exit_on_sigterm() -> None:
    tool = await ToolProcess.start([*CHILD, "import time\ntime.sleep(60)\n"])
    exit_ = await tool.terminate(grace_seconds=5)
    assert exit_.code == -signal.SIGTERM


async def test_a_handler_error_does_not_stop_the_draining() -> None:
    def broken(_stream: Stream, _line: str) -> None:
        raise RuntimeError("parser bug")

    tool = await ToolProcess.start([*CHILD, "for i in range(1000): print(i)\n"], on_line=broken)
    exit_ = await asyncio.wait_for(tool.wait(), 10)
    assert exit_.code == 0
    assert exit_.stdout_tail[-1] == "999"


async def test_the_child_runs_in_its_own_session() -> None:
    tool = await ToolProcess.start([*CHILD, "import os\nprint(os.getsid(0))\n"])
    exit_ = await tool.wait()
    assert int(exit_.stdout_tail[0]) == tool.pid != os.getsid(0)


def test_stop_survivor_stops_the_process_named_in_the_pid_file(tmp_path: Path) -> None:
    marker = f"survivor-{os.getpid()}"
    child = subprocess.Popen([sys.executable, "-c", "import time\ntime.sleep(60)\n", marker])
    pid_file = tmp_path / "tool.pid"
    pid_file.write_text(f"{child.pid}\n")
    try:
        assert stop_survivor(pid_file, "no-such-marker", grace_seconds=1) is None  # a reused pid: left alone
        pid_file.write_text(f"{child.pid}\n")
        assert child.poll() is None
        assert stop_survivor(pid_file, marker, grace_seconds=5) == child.pid
        assert child.wait(timeout=5) == -signal.SIGTERM
        assert not pid_file.exists()
        assert stop_survivor(pid_file, marker) is None
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
