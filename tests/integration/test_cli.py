"""The osctl command line as a pipeline or a person runs it: real processes, real exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from adapters.postgres.workload import BAND_EXPRESSION, create_accounts
from orchestrator.domain.operations import KINDS
from tests.support.pg import connect, fresh_database

OSCTL = str(Path(sys.executable).parent / "osctl")

SPEC = {
    "name": "accounts-band",
    "operations": [
        {"add_column": {"table": "accounts", "column": {"name": "band", "type": "text"}}},
        {"backfill": {"table": "accounts", "column": "band", "expression": BAND_EXPRESSION}},
        {"drop_column": {"table": "accounts", "column": "legacy_status"}},
    ],
}


def osctl(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([OSCTL, *args], capture_output=True, text=True, timeout=120, cwd=cwd, check=False)


def write_spec(path: Path, spec: object) -> Path:
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def test_schema_is_json_schema_with_one_key_operations() -> None:
    result = osctl("schema")
    assert result.returncode == 0
    schema = json.loads(result.stdout)
    kinds = {next(iter(item["properties"])) for item in schema["properties"]["operations"]["items"]["oneOf"]}
    assert kinds == set(KINDS)
    assert {"alter_column", "rename_column", "add_foreign_key", "drop_table", "raw_sql"} <= kinds


def test_plan_prints_every_stage_and_a_bad_spec_exits_2_naming_the_field(tmp_path: Path) -> None:
    good = osctl("plan", str(write_spec(tmp_path / "good.yaml", SPEC)))
    assert good.returncode == 0, good.stderr
    for stage in ("expand", "deploy_gate", "backfill", "contract"):
        assert stage in good.stdout
    as_json = json.loads(osctl("plan", str(tmp_path / "good.yaml"), "--format", "json").stdout)
    assert [stage["stage"] for stage in as_json["stages"]] == [
        "expand",
        "deploy_gate",
        "backfill",
        "contract",
    ]

    bad_spec = {
        **SPEC,
        "operations": [{"add_column": {"table": "accounts", "column": {"name": "x", "type": "int; drop"}}}],
    }
    bad = osctl("plan", str(write_spec(tmp_path / "bad.yaml", bad_spec)))
    assert bad.returncode == 2
    assert "operations.0.add_column.column.type" in bad.stderr


def test_client_verbs_tell_an_unreachable_service_apart() -> None:
    result = osctl("status", "some-id", "--api", "http://127.0.0.1:9")
    assert result.returncode == 4
    assert "cannot reach the service" in result.stderr


@pytest.mark.integration
async def test_migrate_stops_at_the_gate_then_a_rerun_resumes_the_same_migration(tmp_path: Path) -> None:
    async with fresh_database() as pair:
        async with connect(pair.primary) as conn:
            await create_accounts(conn, rows=1_000)
        spec = write_spec(tmp_path / "spec.yaml", SPEC)
        state = f"sqlite+aiosqlite:///{tmp_path / 'state.db'}"
        # The local servers trust loopback, so any password connects: one that must never be echoed.
        dsn = pair.primary.replace("postgres@", "postgres:S3cret-pw@", 1)
        assert "S3cret-pw" in dsn
        common = ("migrate", str(spec), "--target-dsn", dsn, "--state-url", state)

        first = osctl(*common)
        assert first.returncode == 0, first.stderr
        assert "waiting at the deploy gate" in first.stdout
        async with connect(pair.primary) as conn:
            assert await conn.fetchval("SELECT count(*) FROM accounts WHERE band IS NULL") == 1_000

        second = osctl(*common, "--approve-deploy")
        assert second.returncode == 0, second.stderr
        migration_ids = {
            line.split()[1]
            for line in (first.stdout + second.stdout).splitlines()
            if line.startswith("migration ")
        }
        assert len(migration_ids) == 1, "the rerun must pick up the same migration, not plan a new one"
        assert second.stdout.strip().endswith("completed")
        async with connect(pair.primary) as conn:
            wrong = await conn.fetchval(
                f"SELECT count(*) FROM accounts WHERE band IS DISTINCT FROM ({BAND_EXPRESSION})"
            )
            dropped = await conn.fetchval(
                "SELECT count(*) = 0 FROM pg_attribute WHERE attrelid = 'accounts'::regclass "
                "AND attname = 'legacy_status' AND NOT attisdropped"
            )
        assert wrong == 0
        assert dropped
        for output in (first.stdout, first.stderr, second.stdout, second.stderr):
            assert "S3cret-pw" not in output
        for stored in tmp_path.glob("state.db*"):  # the database and its WAL
            assert b"S3cret-pw" not in stored.read_bytes()
        assert "postgres:***@" in first.stdout
