"""pt-online-schema-change's command line as golden argv, and its credentials file: a password never
reaches argv."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from adapters.ptosc import HostPort, PtOscRun, option_file_text, ptosc_argv, trigger_names

SECRET = 's3cr3t,pa=ss\\word"#;'
RUN = PtOscRun(
    host="10.0.0.5",
    port=3306,
    database="shop",
    table="orders",
    defaults_file=Path("/run/osctl/orders-1/client.cnf"),
    alter="ADD COLUMN note varchar(64) NULL",
    execute=True,
    replicas=(HostPort("10.0.0.6", 3307), HostPort("10.0.0.7", 3306)),
    max_lag_seconds=2.5,
    chunk_time_seconds=0.5,
    pause_file=Path("/run/osctl/orders-1/pause"),
    lock_wait_seconds=2,
)
COMMON = [
    "--no-version-check",
    "--max-lag=2.5",
    "--chunk-time=0.5",
    "--max-load=Threads_running=25",
    "--critical-load=Threads_running=50",
    "--progress=time,1",
    "--set-vars=lock_wait_timeout=2",
    "--tries=create_triggers:30:0.5,drop_triggers:30:0.5,copy_rows:10:0.25,analyze_table:10:1",
    "--recursion-method=none",
    "--check-slave-lag=h=10.0.0.6,P=3307,F=/run/osctl/orders-1/client.cnf",
    "--pause-file=/run/osctl/orders-1/pause",
]
DSN = "h=10.0.0.5,P=3306,D=shop,t=orders,F=/run/osctl/orders-1/client.cnf"


def test_execute_runs_copy_only_and_leaves_the_swap_to_osctl() -> None:
    assert ptosc_argv("pt-online-schema-change", RUN) == [
        "pt-online-schema-change",
        "--alter=ADD COLUMN note varchar(64) NULL",
        "--execute",
        *COMMON,
        "--no-swap-tables",
        "--no-drop-triggers",
        "--no-drop-new-table",
        DSN,
    ]


def test_the_dry_run_preflight_drops_its_trial_copy() -> None:
    assert ptosc_argv("/usr/bin/pt-online-schema-change", replace(RUN, execute=False)) == [
        "/usr/bin/pt-online-schema-change",
        "--alter=ADD COLUMN note varchar(64) NULL",
        "--dry-run",
        *COMMON,
        DSN,
    ]


def test_unique_key_and_rename_checks_are_lifted_only_when_osctl_checked_them() -> None:
    argv = ptosc_argv(
        "pt-online-schema-change", replace(RUN, unique_key_checked=True, renames_confirmed=True)
    )
    assert "--no-check-unique-key-change" in argv
    assert "--no-check-alter" in argv
    plain = ptosc_argv("pt-online-schema-change", RUN)
    assert "--no-check-unique-key-change" not in plain and "--no-check-alter" not in plain


@pytest.mark.parametrize(
    ("replicas", "recursion", "expected"),
    [
        ((), None, []),
        ((), "none", ["--recursion-method=none"]),
        ((), "processlist,hosts", ["--recursion-method=processlist,hosts"]),
        (
            (HostPort("r1", 3306),),
            "processlist",
            ["--recursion-method=none", "--check-slave-lag=h=r1,P=3306,F=/run/osctl/orders-1/client.cnf"],
        ),
    ],
)
def test_replica_lag_is_watched_on_the_configured_replica(
    replicas: tuple[HostPort, ...], recursion: str | None, expected: list[str]
) -> None:
    argv = ptosc_argv("pt-online-schema-change", replace(RUN, replicas=replicas, recursion_method=recursion))
    assert [arg for arg in argv if arg.startswith(("--recursion-method", "--check-slave-lag"))] == expected


def test_max_lag_below_a_second_is_rounded_up_to_what_seconds_behind_master_can_show() -> None:
    assert "--max-lag=1" in ptosc_argv("pt-online-schema-change", replace(RUN, max_lag_seconds=0.2))


def test_no_password_in_argv_it_lives_in_the_0600_defaults_file() -> None:
    argv = ptosc_argv("pt-online-schema-change", RUN)
    assert not any(SECRET in arg or "--password" in arg or arg.startswith("-p") for arg in argv)
    assert all("p=" not in part for arg in argv for part in arg.split(","))


def test_the_option_file_quotes_and_escapes_for_libmysqlclient() -> None:
    assert option_file_text("osc", SECRET) == '[client]\nuser="osc"\npassword="s3cr3t,pa=ss\\\\word"#;"\n'
    with pytest.raises(ValueError, match="line break"):
        option_file_text("osc", "two\nlines")


@pytest.mark.parametrize("field", ["host", "database", "table"])
def test_values_that_would_break_the_dsn_are_refused(field: str) -> None:
    with pytest.raises(ValueError, match="DSN"):
        ptosc_argv("pt-online-schema-change", replace(RUN, **{field: "a,b=c"}))  # type: ignore[arg-type]


def test_trigger_names_follow_pt_osc_3() -> None:
    assert trigger_names("shop", "orders") == [
        "pt_osc_shop_orders_del",
        "pt_osc_shop_orders_upd",
        "pt_osc_shop_orders_ins",
    ]
    long = trigger_names("d" * 40, "t$" + "x" * 40)
    assert all(name.startswith("pt_osc_" + "d" * 40 + "_t_") and len(name) == 64 for name in long)
