"""`osctl token`: make a token and its tokens-file entry; hash one read from stdin, never from argv."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from orchestrator.access import Scope, TokenBook, hash_token, parse_tokens

OSCTL = str(Path(sys.executable).parent / "osctl")


def osctl(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [OSCTL, *args], input=stdin, capture_output=True, text=True, timeout=60, check=False
    )


def test_token_new_prints_the_token_once_and_an_entry_the_service_accepts() -> None:
    made = osctl("token", "new", "release-pipeline", "--scopes", "pipeline,read")
    assert made.returncode == 0, made.stderr
    token = next(line for line in made.stderr.splitlines() if line.startswith("osctl_"))
    entry = yaml.safe_load(made.stdout)  # stdout is only the entry: `>> tokens.yaml` appends it
    assert token not in made.stdout
    principal = TokenBook(parse_tokens(entry)).authenticate(token)
    assert principal is not None
    assert principal.name == "release-pipeline" and principal.scopes == {Scope.PIPELINE, Scope.READ}


def test_token_hash_reads_stdin() -> None:
    hashed = osctl("token", "hash", stdin="s3cret-token\n")
    assert hashed.returncode == 0, hashed.stderr
    assert hashed.stdout.strip() == hash_token("s3cret-token")
    assert osctl("token", "hash", stdin="").returncode == 2
    assert osctl("token", "new", "x", "--scopes", "root").returncode == 2
