"""`osctl lint` through orchestrator.cli.main: exit codes 0/1/2, the JSON shape, positions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orchestrator.cli import main

FINDING_KEYS = {"rule", "severity", "statement_index", "line", "message", "safe_alternative"}


def write(tmp_path: Path, name: str, sql: str) -> str:
    path = tmp_path / name
    path.write_text(sql)
    return str(path)


def test_exit_0_when_nothing_is_an_error_even_with_warnings_and_info(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, "ok.sql", "ALTER TABLE t ADD COLUMN a int;\nALTER TABLE t DROP COLUMN b;\n")
    assert main(["lint", path, "--engine", "postgres"]) == 0
    out = capsys.readouterr().out
    assert f"{path}:2: warning drop-column (statement 1)" in out
    assert f"{path}:1: info lock-timeout-missing (statement 0)" in out
    assert "2 statements; 0 error, 1 warning, 1 info" in out


def test_exit_1_on_an_error_and_the_json_is_exactly_the_documented_shape(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sql = "BEGIN;\nSET lock_timeout = '1s';\n\nCREATE INDEX i\n  ON t (a);\nCOMMIT;\n"
    path = write(tmp_path, "bad.sql", sql)
    assert main(["lint", path, "--engine", "postgres", "--format", "json"]) == 1
    body = json.loads(capsys.readouterr().out)
    assert set(body) == {"findings"}
    [finding] = body["findings"]
    assert set(finding) == FINDING_KEYS
    assert finding["rule"] == "create-index-non-concurrent"
    assert finding["severity"] == "error"
    assert (finding["statement_index"], finding["line"]) == (2, 4)
    assert isinstance(finding["message"], str) and isinstance(finding["safe_alternative"], str)


def test_exit_2_on_unparsable_sql_with_its_position(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(
        tmp_path, "broken.sql", "ALTER TABLE t ADD COLUMN a int;\n\nALTER TABLE t ADD COLUMNN b int;\n"
    )
    assert main(["lint", path, "--engine", "postgres"]) == 2
    err = capsys.readouterr().err
    assert f"{path}:3:29: cannot parse statement 1" in err


def test_exit_2_for_mysql_too_and_json_says_where(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "broken.sql", "SELECT 1;\nALTR TABLE x ADD c INT;\n")
    assert main(["lint", path, "--engine", "mysql", "--format", "json"]) == 2
    body = json.loads(capsys.readouterr().out)
    assert body["findings"] == []
    assert (body["error"]["line"], body["error"]["statement_index"]) == (2, 1)


def test_several_files_give_one_json_object_each_and_the_worst_exit_code(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clean = write(tmp_path, "a.sql", "SELECT 1;")
    risky = write(tmp_path, "b.sql", "UPDATE t SET a = 1;")
    assert main(["lint", clean, risky, "--engine", "postgres", "--format", "json"]) == 1
    first, second = (json.loads(line) for line in capsys.readouterr().out.splitlines())
    assert first == {"findings": []}
    assert [f["rule"] for f in second["findings"]] == ["unbatched-data-change"]

    broken = write(tmp_path, "c.sql", "SELEC 1;")
    assert main(["lint", risky, broken, "--engine", "postgres"]) == 2


def test_the_server_version_changes_the_verdict(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(
        tmp_path, "m.sql", "SET SESSION lock_wait_timeout = 5;\nALTER TABLE t ADD COLUMN c INT AFTER b;\n"
    )
    assert main(["lint", path, "--engine", "mysql", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"findings": []}
    assert main(["lint", path, "--engine", "mysql", "--server-version", "8.0.28", "--format", "json"]) == 0
    [finding] = json.loads(capsys.readouterr().out)["findings"]
    assert (finding["rule"], finding["severity"], finding["line"]) == ("mysql-table-rebuild", "warning", 2)


def test_bad_arguments_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "m.sql", "SELECT 1;")
    assert main(["lint", path, "--engine", "mysql", "--server-version", "5.5"]) == 2
    assert "--server-version" in capsys.readouterr().err
    assert main(["lint", str(tmp_path / "missing.sql"), "--engine", "postgres"]) == 2
    with pytest.raises(SystemExit) as no_engine:
        main(["lint", path])
    assert no_engine.value.code == 2
