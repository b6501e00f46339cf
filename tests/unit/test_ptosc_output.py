"""pt-online-schema-change 3.2.1's output, read back from lines captured on this machine (MariaDB 10.11,
tests/unit/data/ptosc/<case>.stdout|.stderr): phases, progress and ETA, throttle waits, renames, errors,
and what its exit codes mean."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.ptosc import PtOscState, describe_exit, feed, remaining_seconds

DATA = Path(__file__).parent / "data" / "ptosc"


def replay(case: str) -> list[PtOscState]:
    """Feed stdout then stderr of a capture; the state after each stderr line, in order."""
    state = PtOscState()
    for line in (DATA / f"{case}.stdout").read_text().splitlines():
        feed(state, False, line)
    states = []
    for line in (DATA / f"{case}.stderr").read_text().splitlines():
        feed(state, True, line)
        states.append(
            PtOscState(
                phase=state.phase,
                percent=state.percent,
                eta_seconds=state.eta_seconds,
                rows_total=state.rows_total,
                waiting=state.waiting,
            )
        )
    states.append(state)
    return states


def test_a_copy_only_run_reports_rows_progress_and_completion() -> None:
    state = PtOscState()
    for line in (DATA / "full.stdout").read_text().splitlines():
        feed(state, False, line)
    assert state.rows_total == 1000001
    assert state.copied and state.phase.value == "done"
    assert not state.errors and not state.renames


def test_progress_lines_give_percent_and_eta() -> None:
    state = PtOscState(rows_total=1000)
    feed(state, True, "Copying `ptx`.`t`:  44% 00:01 remain")
    assert (state.phase.value, state.percent, state.eta_seconds, state.rows_done) == (
        "copying",
        44.0,
        1.0,
        440,
    )
    feed(state, True, "Copying `shop`.`orders`:   3% 1+02:03:04 remain")
    assert state.eta_seconds == 93784


@pytest.mark.parametrize(
    ("text", "seconds"), [("00:00", 0), ("01:25", 85), ("02:03:04", 7384), ("3+00:00:01", 259201)]
)
def test_remaining_time_formats(text: str, seconds: int) -> None:
    assert remaining_seconds(text) == seconds


def test_a_stopped_replica_is_a_wait_until_copying_resumes() -> None:
    states = replay("lag")
    waits = [state.waiting for state in states]
    assert "replica vm is stopped (pt-osc --max-lag)" in waits
    stopped = waits.index("replica vm is stopped (pt-osc --max-lag)")
    assert all(wait is None for wait in waits[:stopped])
    resumed = next(i for i in range(stopped, len(states)) if states[i].waiting is None)
    assert states[resumed].percent is not None and states[resumed].percent > states[stopped].percent  # type: ignore[operator]
    assert states[-1].copied


def test_replica_lag_and_load_waits() -> None:
    state = PtOscState()
    # The lag line's format, from the tool's source (ReplicaLagWaiter): not captured, lag here is 0.
    feed(state, True, "Replica lag is 12 seconds on db-replica-2.  Waiting.")
    assert state.waiting == "replica lag 12 s on db-replica-2 (pt-osc --max-lag)"
    for line in (DATA / "load.stderr").read_text().splitlines()[:1]:
        feed(state, True, line)
    assert state.waiting == "server load Threads_running=3 (pt-osc --max-load)"


def test_the_pause_file_shows_as_held_by_osctl() -> None:
    state = PtOscState()
    for line in (DATA / "term.stdout").read_text().splitlines():
        feed(state, False, line)
    assert state.waiting == "paused by osctl (pause file)"
    assert not state.copied and state.rows_total == 997145
    for line in (DATA / "term.stderr").read_text().splitlines():
        feed(state, True, line)
    assert state.percent == 31.0
    assert not state.errors, "'# Exiting on SIGTERM.' is the tool's notice, not an error"


def test_the_dry_run_reads_renames() -> None:
    state = PtOscState()
    for line in (DATA / "rename.stdout").read_text().splitlines():
        feed(state, False, line)
    assert state.renames == {"b": "bb"}
    assert state.dry_run_complete


def test_errors_are_kept_for_the_failure_message() -> None:
    state = PtOscState()
    for line in (DATA / "badalter.stderr").read_text().splitlines():
        feed(state, True, line)
    message = describe_exit(11, state)
    assert message.startswith("pt-online-schema-change exited 11 (error altering the new table (bad ALTER)")
    assert "Unknown data type: 'nosuchtype'" in message


def test_a_missing_table_and_a_refused_connection() -> None:
    missing = PtOscState()
    for line in (DATA / "notable.stderr").read_text().splitlines():
        feed(missing, True, line)
    assert "does not exist" in describe_exit(11, missing)
    refused = PtOscState()
    stdout = (DATA / "noconn.stdout").read_text().splitlines()
    assert "cannot connect to MySQL" in describe_exit(18, refused, stdout)
    assert "Can't connect to server" in describe_exit(18, refused, stdout)


def test_the_unique_key_refusal_is_exit_1_with_its_advice_on_stdout() -> None:
    state = PtOscState()
    lines = (DATA / "unique.stdout").read_text().splitlines()
    for line in lines:
        feed(state, False, line)
    assert not state.copied
    assert "You are trying to add an unique key" in " ".join(lines)
    assert describe_exit(-15, state).startswith("pt-online-schema-change exited -15 (killed by signal 15)")
