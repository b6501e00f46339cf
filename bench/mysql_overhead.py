"""The same copy-tool ALTER run by hand and orchestrated by osctl, on identical tables, in one run.

    python bench/mysql_overhead.py [--rows 1000000]

By hand: `pt-online-schema-change --execute` with the knobs osctl passes, swapping and dropping the old
table itself (and gh-ost with --allow-on-master --ok-to-drop-table, when GH_OST_BIN names a binary).
Orchestrated: the migration through the service (create, expand, until awaiting_deploy): the copy,
osctl's verification of the copy (mostly while pt-osc copies), its own swap and drop. (A dry run
precedes the copy only when the ALTER renames a column; this one does not.)

Prints figures as it goes and, on its last line, one JSON object:
  ptosc_ratio                 orchestrated pt-osc wall time over the hand run's (goal <= 1.03); each
                              side's fastest of --rounds runs, alternating which goes first
  ptosc_ratio_without_verify  the same with the verification turned off (verify: false)
  ptosc_verify_seconds        what the verification added after the copy in the orchestrated run
                              (most ranges are compared while pt-osc still copies)
  ptosc_ratio_median          the same over each side's median run (the minimum hides noise)
  ghost_ratio                 orchestrated gh-ost over gh-ost by hand; null without a binary
Needs MYSQL_PRIMARY_DSN and MYSQL_REPLICA_DSN (source .services/env after `make services`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from adapters import ghost, ptosc
from adapters.mysql.copy_state import CopyFiles, CopySettings
from adapters.mysql.dsn import MysqlDsn
from adapters.mysql.target import MysqlTarget
from adapters.mysql.workload import connect
from adapters.slack import NullNotifier
from adapters.statestore.store import SqlStateStore
from orchestrator.domain.plan import Stage
from orchestrator.domain.states import RunStatus
from orchestrator.service import MigrationService, TargetRegistry

ALTER = "ADD COLUMN note varchar(32) NULL, ADD INDEX note_idx (note)"


def sql(dsn: str, *statements: str) -> None:
    conn = connect(dsn)
    try:
        with conn.cursor() as cur:
            for statement in statements:
                cur.execute(statement)
    finally:
        conn.close()


def seed(dsn: str, tables: list[str], rows: int) -> None:
    first = tables[0]
    sql(
        dsn,
        f"CREATE TABLE `{first}` (id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY, email VARCHAR(255) NOT NULL, "
        "score INT NOT NULL, status VARCHAR(32) NULL, created_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6))",
        f"INSERT INTO `{first}` (email, score, status) SELECT CONCAT('user', seq, '@example.com'), "
        f"(seq * 37) % 100, 'active' FROM seq_1_to_{rows}",
        *(f"CREATE TABLE `{table}` LIKE `{first}`" for table in tables[1:]),
        *(f"INSERT INTO `{table}` SELECT * FROM `{first}`" for table in tables[1:]),
        *(f"ANALYZE TABLE `{table}`" for table in tables),
    )


def with_database(dsn: str, database: str) -> str:
    """The DSN naming another database, on the text (a password may hold '/' or '?')."""
    scheme, _, rest = dsn.partition("://")
    credentials, at, location = rest.rpartition("@")
    hostport, _, tail = location.partition("/")
    query = tail.partition("?")[2]
    return f"{scheme}://{credentials}{at}{hostport}/{database}" + (f"?{query}" if query else "")


def caught_up(primary: str, replica: str) -> None:
    """Wait until the replica has applied everything: a lagging replica would throttle a run."""
    conn = connect(primary)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT @@GLOBAL.gtid_binlog_pos")
            row = cur.fetchone()
    finally:
        conn.close()
    conn = connect(replica)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT MASTER_GTID_WAIT(%s, 300)", (row[0] if row else "",))
    finally:
        conn.close()
    time.sleep(1)


def by_hand(argv: list[str]) -> float:
    started = time.monotonic()
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    seconds = time.monotonic() - started
    if done.returncode != 0:
        raise SystemExit(
            f"{argv[0]} by hand failed ({done.returncode}): {done.stdout[-500:]} {done.stderr[-500:]}"
        )
    return seconds


async def orchestrated(
    dsn: str, table: str, settings: CopySettings, state: Path, **options: Any
) -> tuple[float, float]:
    """Wall time from starting expand to awaiting_deploy, and the verification's own seconds."""
    store = SqlStateStore(f"sqlite+aiosqlite:///{state / f'{table}.db'}")
    targets = TargetRegistry({"bench": ("mysql", lambda: MysqlTarget(dsn, copy_settings=settings))})
    service = MigrationService(store, targets, NullNotifier())
    await service.start()
    try:
        spec = {
            "name": f"bench-{table}",
            "target": "bench",
            "operations": [{"alter_table": {"table": table, "alter": ALTER, **options}}],
        }
        run = await service.create(spec)
        started = time.monotonic()
        await service.start_stage(run.id, Stage.EXPAND)
        run, reached = await service.wait(run.id, {RunStatus.AWAITING_DEPLOY}, 600)
        seconds = time.monotonic() - started
        if not reached:
            raise SystemExit(f"orchestrated run ended {run.status.value}: {run.error}")
        verified = [
            event.data
            for event in await service.list_events(run.id)
            if event.message.startswith("copy verified")
        ]
        for data in verified:
            print(
                f"  verification: {data.get('seconds')} s after the copy, {data.get('compare_seconds')} s of "
                f"comparisons in all, {data.get('compared_during_copy')} of {data.get('ranges')} ranges "
                "compared while the tool copied",
                flush=True,
            )
        return seconds, float(sum(data.get("seconds", 0.0) for data in verified))
    finally:
        await service.stop()


async def bench(rows: int, rounds: int) -> dict[str, Any]:
    primary = os.environ.get("MYSQL_PRIMARY_DSN")
    replica = os.environ.get("MYSQL_REPLICA_DSN")
    if not primary or not replica:
        raise SystemExit("MYSQL_PRIMARY_DSN and MYSQL_REPLICA_DSN are needed: source .services/env")
    ghost_binary = os.environ.get("GH_OST_BIN") or None
    database = f"bench_{uuid.uuid4().hex[:8]}"
    sql(primary, f"CREATE DATABASE `{database}`")
    base = MysqlDsn.parse(primary).with_database(database)
    dsn = with_database(primary, database)
    replica_dsn = MysqlDsn.parse(replica)
    replicas = ((replica_dsn.host, replica_dsn.port),)
    kinds = ["by_hand", "osctl", "osctl_unverified"]
    tables = [f"{kind}_{n}" for n in range(rounds) for kind in kinds]
    tables += ["ghost_by_hand", "ghost_osctl"] if ghost_binary else []
    result: dict[str, Any] = {"rows": rows, "rounds": rounds}
    try:
        with tempfile.TemporaryDirectory() as temp:
            state = Path(temp)
            seeded = time.monotonic()
            seed(dsn, tables, rows)
            print(
                f"seeded {len(tables)} tables of {rows} rows in {time.monotonic() - seeded:.1f} s", flush=True
            )
            settings = CopySettings(
                ghost_binary=ghost_binary,
                runtime_dir=state / "copy",
                replicas=tuple(ptosc.HostPort(h, p) for h, p in replicas),
            )
            files = CopyFiles(state / "hand")
            files.prepare()
            files.write_private(files.credentials, ptosc.option_file_text(base.user, base.password))
            seconds: dict[str, list[float]] = {kind: [] for kind in kinds}
            verify: list[float] = []
            for n in range(rounds):
                # Alternate the order, so neither side always runs on a cooler or warmer server.
                for kind in kinds if n % 2 == 0 else list(reversed(kinds)):
                    table = f"{kind}_{n}"
                    caught_up(primary, replica)
                    if kind == "by_hand":
                        hand = ptosc.PtOscRun(
                            host=base.host,
                            port=base.port,
                            database=database,
                            table=table,
                            defaults_file=files.credentials,
                            alter=ALTER,
                            execute=True,
                            replicas=settings.replicas,
                            copy_only=False,  # by hand: pt-osc swaps and drops the old table itself
                        )
                        seconds[kind].append(by_hand(ptosc.ptosc_argv(settings.ptosc_binary, hand)))
                    else:
                        options = {"verify": False} if kind == "osctl_unverified" else {}
                        took, checked = await orchestrated(
                            dsn, table, settings, state, strategy="pt_osc", **options
                        )
                        seconds[kind].append(took)
                        if checked:
                            verify.append(checked)
                    print(f"round {n + 1} {kind}: {seconds[kind][-1]:.2f} s", flush=True)
            best = {kind: min(values) for kind, values in seconds.items()}
            result.update(
                ptosc_ratio=round(best["osctl"] / best["by_hand"], 3),
                ptosc_ratio_without_verify=round(best["osctl_unverified"] / best["by_hand"], 3),
                ptosc_verify_seconds=round(min(verify), 2) if verify else None,
                # The machine is shared: medians show how far the minimum is from typical.
                ptosc_ratio_median=round(
                    statistics.median(seconds["osctl"]) / statistics.median(seconds["by_hand"]), 3
                ),
                load_average=round(os.getloadavg()[0], 2),
                ptosc_seconds={
                    kind: [round(value, 2) for value in values] for kind, values in seconds.items()
                },
                ghost_ratio=None,
            )
            if ghost_binary:
                gfiles = CopyFiles(state / "ghost-hand")
                gfiles.prepare()
                gfiles.write_private(gfiles.credentials, ghost.conf_text(base.user, base.password))
                run = ghost.GhostRun(
                    host=base.host,
                    port=base.port,
                    database=database,
                    table="ghost_by_hand",
                    conf_file=gfiles.credentials,
                    alter=ALTER,
                    socket_file=gfiles.socket,
                    postpone_flag_file=gfiles.postpone,  # left out of the argv below
                    throttle_control_replicas=settings.replicas,
                    ok_to_drop_table=True,
                )
                caught_up(primary, replica)
                flags = await ghost.supported_flags(ghost_binary)
                # By hand nobody postpones: gh-ost creates a missing flag file and would wait on it.
                argv = [
                    arg
                    for arg in ghost.ghost_argv(ghost_binary, run, flags)
                    if not arg.startswith("--postpone-cut-over-flag-file=")
                ]
                ghost_hand = by_hand(argv)
                caught_up(primary, replica)
                ghost_ours, _ = await orchestrated(dsn, "ghost_osctl", settings, state, strategy="gh_ost")
                print(f"gh-ost by hand: {ghost_hand:.2f} s, through osctl: {ghost_ours:.2f} s", flush=True)
                result["ghost_ratio"] = round(ghost_ours / ghost_hand, 3)
    finally:
        sql(primary, f"DROP DATABASE IF EXISTS `{database}`")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=2, help="runs of each kind; the fastest counts")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(bench(args.rows, args.rounds))))


if __name__ == "__main__":
    main()
