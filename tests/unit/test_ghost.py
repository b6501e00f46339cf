"""gh-ost as pure functions (golden argv, --conf text, status lines as gh-ost prints them) and the
socket protocol against a small local server speaking like gh-ost's go/logic/server.go."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path

import pytest

from adapters.ghost import (
    GhostFlagUnsupportedError,
    GhostRun,
    GhostState,
    conf_text,
    describe_exit,
    duration_seconds,
    feed,
    ghost_argv,
    parse_help_flags,
    parse_status,
    send,
    socket_command,
    status_from_answer,
)
from adapters.ptosc import HostPort

SECRET = 'pa"ss\\word#;'
RUN = GhostRun(
    host="10.0.0.5",
    port=3306,
    database="shop",
    table="orders",
    conf_file=Path("/run/osctl/orders-1/client.cnf"),
    alter="MODIFY note varchar(255) NOT NULL DEFAULT ''",
    socket_file=Path("/run/osctl/orders-1/gh-ost.sock"),
    postpone_flag_file=Path("/run/osctl/orders-1/postpone-cut-over"),
    throttle_control_replicas=(HostPort("10.0.0.6", 3306), HostPort("10.0.0.7", 3307)),
    max_lag_millis=1500,
    chunk_size=2000,
    cut_over_lock_timeout_seconds=2,
    throttle_flag_file=Path("/run/osctl/orders-1/throttle"),
)

# Lines as gh-ost prints them (doc/understanding-output.md, go/logic/migrator.go printStatus).
MIGRATING = (
    "Copy: 681000/995606 68.4%; Applied: 12; Backlog: 0/1000; Time: 9s(total), 8s(copy); "
    "streamer: mysql-bin.000003:38295226; Lag: 0.01s, HeartbeatLag: 0.09s, State: migrating; ETA: 4s"
)
THROTTLED = (
    "Copy: 466600/752865 62.0%; Applied: 0; Backlog: 0/100; Time: 2m40s(total), 2m11s(copy); "
    "streamer: mysql-bin.007069:622646704; Lag: 0.01s, HeartbeatLag: 0.01s, "
    "State: throttled, my.replica-01.com:3306 replica-lag=3.000000s; ETA: 1m19s"
)
POSTPONING = (
    "Copy: 995606/995606 100.0%; Applied: 3302; Backlog: 0/1000; Time: 30s(total), 14s(copy); "
    "streamer: mariadb-bin.000005:1054354762; Lag: 0.02s, HeartbeatLag: 0.05s, State: postponing cut-over; ETA: due"
)
OLD_FORMAT = (
    "Copy: 0/2915 0.0%; Applied: 0; Backlog: 0/100; Time: 41s(total), 40s(copy); streamer: mysql-bin.000550:49942; "
    "Lag: 0.01s, State: throttled, flag-file; ETA: N/A"
)


def test_argv_golden_on_master_with_throttle_control_replicas() -> None:
    assert ghost_argv("/opt/gh-ost", RUN) == [
        "/opt/gh-ost",
        "--conf=/run/osctl/orders-1/client.cnf",
        "--host=10.0.0.5",
        "--port=3306",
        "--database=shop",
        "--table=orders",
        "--alter=MODIFY note varchar(255) NOT NULL DEFAULT ''",
        "--serve-socket-file=/run/osctl/orders-1/gh-ost.sock",
        "--postpone-cut-over-flag-file=/run/osctl/orders-1/postpone-cut-over",
        "--max-lag-millis=1500",
        "--chunk-size=2000",
        "--max-load=Threads_running=25",
        "--critical-load=Threads_running=50",
        "--cut-over-lock-timeout-seconds=2",
        "--default-retries=120",
        "--verbose",
        "--allow-on-master",
        "--throttle-control-replicas=10.0.0.6:3306,10.0.0.7:3307",
        "--skip-metadata-lock-check",
        "--assume-rbr",
        "--throttle-flag-file=/run/osctl/orders-1/throttle",
        "--throttle-additional-flag-file=/run/osctl/orders-1/throttle",
        "--execute",
    ]


def test_argv_replica_mode_gtid_and_the_per_policy_flags() -> None:
    argv = ghost_argv(
        "gh-ost",
        replace(
            RUN,
            host="10.0.0.6",
            allow_on_master=False,
            gtid=True,
            skip_metadata_lock_check=False,
            initially_drop_ghost_table=True,
            ok_to_drop_table=True,
            approve_renamed_columns=True,
            execute=False,
            max_load="Threads_running:30",
        ),
    )
    assert "--host=10.0.0.6" in argv and "--allow-on-master" not in argv
    assert {
        "--gtid",
        "--initially-drop-ghost-table",
        "--ok-to-drop-table",
        "--approve-renamed-columns",
    } <= set(argv)
    assert "--skip-metadata-lock-check" not in argv and "--execute" not in argv
    assert "--max-load=Threads_running=30" in argv  # gh-ost takes only '=' thresholds


def test_no_password_in_argv_and_the_conf_file_is_go_ini() -> None:
    assert not any(SECRET in arg or arg.startswith("--password") for arg in ghost_argv("gh-ost", RUN))
    assert conf_text("osc", SECRET) == '[client]\nuser = "osc"\npassword = "pa"ss\\word#;"\n'
    with pytest.raises(ValueError, match="line break"):
        conf_text("osc", "a\nb")


def test_status_lines() -> None:
    migrating = parse_status(MIGRATING)
    assert migrating is not None
    assert (migrating.copied, migrating.total, migrating.percent, migrating.eta_seconds) == (
        681000,
        995606,
        68.4,
        4.0,
    )
    assert (migrating.applied, migrating.backlog, migrating.state) == (12, 0, "migrating")
    assert migrating.binlog_position == (3, 38295226)
    assert migrating.throttle_reason is None and not migrating.postponing
    throttled = parse_status(THROTTLED)
    assert throttled is not None and throttled.eta_seconds == 79
    assert throttled.throttle_reason == "my.replica-01.com:3306 replica-lag=3.000000s"
    postponing = parse_status(POSTPONING)
    assert postponing is not None and postponing.postponing and postponing.eta_seconds == 0
    assert postponing.binlog_position == (5, 1054354762)
    old = parse_status(OLD_FORMAT)
    assert old is not None and old.throttle_reason == "flag-file" and old.eta_seconds is None
    assert parse_status("2016-05-19 17:57:11 INFO Chosen shared unique key is PRIMARY") is None


@pytest.mark.parametrize(
    ("text", "seconds"), [("4s", 4), ("2m37s", 157), ("1h34m28s", 5668), ("due", 0), ("N/A", None)]
)
def test_durations(text: str, seconds: float | None) -> None:
    assert duration_seconds(text) == seconds


def test_success_is_exit_0_and_done_not_the_absence_of_errors() -> None:
    state = GhostState()
    for line in [
        MIGRATING,
        "2024-05-01 12:00:00 ERROR Error 1146: Table '_orders_ghc' doesn't exist",
        "# Done",
    ]:
        feed(state, line)
    assert state.done and state.status is not None
    assert state.errors == ["2024-05-01 12:00:00 ERROR Error 1146: Table '_orders_ghc' doesn't exist"]
    failed = GhostState()
    feed(failed, "2024-05-01 12:00:00 FATAL Table `orders` has foreign keys")
    assert (
        describe_exit(1, failed)
        == "gh-ost exited 1: 2024-05-01 12:00:00 FATAL Table `orders` has foreign keys"
    )
    assert describe_exit(0, GhostState()) == "gh-ost exited 0 without '# Done'"


def test_throttle_state_is_reported_as_waiting() -> None:
    state = GhostState()
    feed(state, THROTTLED)
    assert state.waiting == "gh-ost throttled: my.replica-01.com:3306 replica-lag=3.000000s"
    feed(state, MIGRATING)
    assert state.waiting is None


def test_socket_commands_are_checked() -> None:
    assert socket_command("unpostpone") == "unpostpone"
    assert socket_command("chunk-size", 500) == "chunk-size=500"
    assert socket_command("max-lag-millis", 2000) == "max-lag-millis=2000"
    with pytest.raises(ValueError):
        socket_command("drop-table")
    with pytest.raises(ValueError):
        socket_command("throttle", 1)
    with pytest.raises(ValueError):
        socket_command("chunk-size", "1\npanic")


class FakeGhostServer:
    """Answers like gh-ost: reads one line, writes the answer, closes (go/logic/server.go)."""

    def __init__(self) -> None:
        self.commands: list[str] = []
        self.throttled = False
        self.postponing = True

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        command = (await reader.readline()).decode().strip()
        self.commands.append(command)
        state = "postponing cut-over" if self.postponing else "migrating"
        if command == "throttle":
            self.throttled = True
            writer.write(b"# Note: you may only throttle for as long as your binary logs are not purged\n")
        elif command == "no-throttle":
            self.throttled = False
        elif command == "unpostpone":
            writer.write(
                b"Unpostponed\n"
                if self.postponing
                else b"You may only invoke this when gh-ost is actively postponing migration. At this time it is not\n"
            )
            self.postponing = False
        elif command == "chunk-size=?":
            writer.write(b"1000\n")
        elif command not in ("status", "sup", "chunk-size=500"):
            writer.write(f"unknown command: {command}\n".encode())
        if command in ("status", "sup", "throttle", "no-throttle", "unpostpone", "chunk-size=500"):
            if command == "status":
                writer.write(b"# Migrating `shop`.`orders`; Ghost table is `shop`.`_orders_gho`\n")
            if self.throttled:
                state = "throttled, commanded by user"
            writer.write(POSTPONING.replace("postponing cut-over", state).encode() + b"\n")
        await writer.drain()
        writer.close()


@asynccontextmanager
async def fake_server(path: Path) -> AsyncIterator[FakeGhostServer]:
    fake = FakeGhostServer()
    server = await asyncio.start_unix_server(fake.handle, path=str(path))
    try:
        yield fake
    finally:
        server.close()
        await server.wait_closed()


async def test_socket_client_speaks_the_protocol(tmp_path: Path) -> None:
    path = tmp_path / "gh-ost.sock"
    async with fake_server(path) as fake:
        status = status_from_answer(await send(path, socket_command("status")))
        assert status is not None and status.postponing
        throttled = status_from_answer(await send(path, socket_command("throttle")))
        assert throttled is not None and throttled.throttle_reason == "commanded by user"
        await send(path, socket_command("no-throttle"))
        assert "1000" in await send(path, "chunk-size=?")
        await send(path, socket_command("chunk-size", 500))
        assert (await send(path, socket_command("unpostpone"))).startswith("Unpostponed")
        assert fake.commands == [
            "status",
            "throttle",
            "no-throttle",
            "chunk-size=?",
            "chunk-size=500",
            "unpostpone",
        ]


async def test_socket_client_gives_up_on_a_silent_server(tmp_path: Path) -> None:
    path = tmp_path / "silent.sock"

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(5)

    server = await asyncio.start_unix_server(silent, path=str(path))
    try:
        with pytest.raises(TimeoutError):
            await send(path, "status", timeout=0.2)
    finally:
        server.close()
    with pytest.raises(OSError):
        await send(tmp_path / "missing.sock", "status")


# The head of `gh-ost --help` as Go's flag package prints it (gh-ost 1.1.6, which predates --gtid and
# --skip-metadata-lock-check).
HELP_1_1_6 = """Usage of gh-ost:
  -aliyun-rds
    \tset to 'true' when you execute on Aliyun RDS.
  -allow-on-master
    \tallow this migration to run directly on master. Preferably it would run on a replica
  -alter string
    \talter statement (mandatory)
  -postpone-cut-over-flag-file string
    \twhile this file exists, migration will postpone the final stage of swapping tables
"""


def test_help_flags_are_parsed_from_go_flag_usage() -> None:
    assert parse_help_flags(HELP_1_1_6) == {
        "aliyun-rds",
        "allow-on-master",
        "alter",
        "postpone-cut-over-flag-file",
    }


def test_an_older_gh_ost_runs_without_the_flags_it_does_not_know_and_refuses_gtid() -> None:
    older = parse_help_flags(HELP_1_1_6)
    assert "--skip-metadata-lock-check" in ghost_argv("gh-ost", RUN)
    assert "--skip-metadata-lock-check" not in ghost_argv("gh-ost", RUN, older)
    assert ghost_argv("gh-ost", RUN, older | {"skip-metadata-lock-check"}) == ghost_argv("gh-ost", RUN)
    with pytest.raises(GhostFlagUnsupportedError, match="--gtid"):
        ghost_argv("gh-ost", replace(RUN, gtid=True), older)


def test_an_exit_on_mariadb_before_11_1_says_why_and_what_to_do() -> None:
    state = GhostState()
    line = "2026-11-28 12:59:49 FATAL Error 1193: Unknown system variable 'transaction_isolation'"
    feed(state, line)
    text = describe_exit(1, state, [line])
    assert text.startswith("gh-ost exited 1: ")
    assert "github/gh-ost#1488" in text and "pt-osc" in text
    assert "#1488" not in describe_exit(1, GhostState(), ["FATAL something else"])
