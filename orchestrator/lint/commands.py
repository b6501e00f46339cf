"""`osctl lint` and `osctl plan --from-sql` from file texts to what they print and their exit code.

The CLI reads the files and prints; everything between is here, pure, so tests and the CLI share it.
Exit codes are the CLI's: 0 nothing of severity error (or a complete plan), 1 errors found (or
statements the plan does not cover), 2 bad input (unparsable SQL, with its position).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

import yaml

from orchestrator.domain.spec import MigrationSpec
from orchestrator.engine.planner import plan_migration, render_plan_text
from orchestrator.engine.planner.context import LiveTables
from orchestrator.lint.convert import Conversion, convert_sql, writable_spec
from orchestrator.lint.convert_mysql import convert_mysql_sql
from orchestrator.lint.findings import UnparsableSqlError
from orchestrator.lint.linter import Engine, lint_sql
from orchestrator.lint.live import LivePreflight, with_estimates
from orchestrator.lint.live_render import render_live_text
from orchestrator.lint.mysql.versions import DEFAULT_SERVER_VERSION, parse_server_version
from orchestrator.lint.plan_document import render_plan_document
from orchestrator.lint.render import render_json, render_json_error, render_text, render_text_error

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2


@dataclass
class CommandOutput:
    stdout: list[str] = field(default_factory=list)
    stderr: list[str] = field(default_factory=list)
    code: int = EXIT_OK


def lint_files(
    files: list[tuple[str, str]], engine: Engine, output_format: str, server_version: str | None = None
) -> CommandOutput:
    """Lint each (path, text). JSON prints one `{"findings": [...]}` object per file, one per line."""
    out = CommandOutput()
    try:
        version = parse_server_version(server_version or DEFAULT_SERVER_VERSION)
    except ValueError as error:
        out.stderr.append(f"osctl: --server-version {error}")
        out.code = EXIT_BAD_INPUT
        return out
    for path, text in files:
        try:
            report = lint_sql(text, engine, server_version=version)
        except UnparsableSqlError as error:
            out.stderr.append(f"osctl: {render_text_error(path, error)}")
            if output_format == "json":
                out.stdout.append(render_json_error(error))
            out.code = EXIT_BAD_INPUT
            continue
        out.stdout.append(render_json(report) if output_format == "json" else render_text(path, report))
        if report.has_errors and out.code == EXIT_OK:
            out.code = EXIT_FAILED
    return out


def plan_from_sql(
    text: str,
    source: str,
    engine: str,
    output_format: str,
    *,
    live: LivePreflight | None = None,
    tables: LiveTables = None,
) -> CommandOutput:
    """Convert PostgreSQL or MySQL DDL to a spec and print its staged plan, with a note per statement; with
    `live` (orchestrator/lint/live.py) planned against the target's `tables`, with its checks and
    measured durations.

    Exit 1 when some statement is not covered (a plan for part of a file is not a plan for the file),
    or when the live preflight refuses the plan."""
    out = CommandOutput()
    if engine == "mysql" and live is not None:
        out.stderr.append("osctl: the live preflight (--target-dsn) reads PostgreSQL targets only so far")
        out.code = EXIT_BAD_INPUT
        return out
    try:
        conversion = convert_mysql_sql(text, source) if engine == "mysql" else convert_sql(text, source)
    except UnparsableSqlError as error:
        out.stderr.append(f"osctl: {render_text_error(source, error)}")
        out.code = EXIT_BAD_INPUT
        return out
    if conversion.spec is None:
        out.stderr.append(render_statement_notes(conversion))
        out.stderr.append(f"osctl: no statement of {source} converts to an operation yet")
        out.code = EXIT_FAILED
        return out
    plan = plan_migration(conversion.spec, engine, tables)
    live = with_estimates(live, plan) if live is not None else None
    if output_format == "markdown":
        out.stdout.append(render_plan_document(plan, conversion, live=live))
    elif output_format == "json":
        body = {
            "spec": writable_spec(conversion.spec),
            "plan": plan.model_dump(mode="json"),
            "statements": [note.model_dump(mode="json") for note in conversion.notes],
            **({"preflight": preflight_json(live)} if live is not None else {}),
        }
        out.stdout.append(json.dumps(body, indent=2))
    else:
        out.stdout.append(render_plan_text(plan))
        if live is not None:
            out.stdout.append("")
            out.stdout.extend(render_live_text(live))
        out.stdout.append("")
        out.stdout.append(render_statement_notes(conversion))
        out.stdout.append("")
        out.stdout.append("Spec (save it, set its target, and run it with osctl apply):")
        out.stdout.append(yaml.safe_dump(writable_spec(conversion.spec), sort_keys=False).rstrip())
    out.code = EXIT_OK if conversion.complete and (live is None or live.passed) else EXIT_FAILED
    return out


def plan_from_spec(
    spec: MigrationSpec,
    engine: str,
    output_format: str,
    *,
    live: LivePreflight | None = None,
    tables: LiveTables = None,
) -> CommandOutput:
    """A spec's staged plan; with `live`, planned against the target with its checks and durations.
    Exit 1 when the live preflight refuses it."""
    out = CommandOutput()
    plan = plan_migration(spec, engine, tables)
    live = with_estimates(live, plan) if live is not None else None
    if output_format == "markdown":
        out.stdout.append(render_plan_document(plan, purpose=spec.description, live=live).rstrip("\n"))
    elif output_format == "json":
        body = plan.model_dump(mode="json")
        if live is not None:
            body = {"plan": body, "preflight": preflight_json(live)}
        out.stdout.append(json.dumps(body, indent=2))
    else:
        out.stdout.append(render_plan_text(plan))
        if live is not None:
            out.stdout.append("")
            out.stdout.extend(render_live_text(live))
    out.code = EXIT_OK if live is None or live.passed else EXIT_FAILED
    return out


def preflight_json(live: LivePreflight) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(json.dumps(dataclasses.asdict(live), default=str))
    body["passed"] = live.passed
    return body


def render_statement_notes(conversion: Conversion) -> str:
    lines = [f"Statements of {conversion.source}:"]
    for note in conversion.notes:
        lines.append(f"  {note.statement_index} (line {note.line}) {note.outcome.value}: {note.sql}")
        for operation in note.operations:
            lines.append(f"      -> {operation}")
        lines.append(f"      {note.reason}")
    return "\n".join(lines)
