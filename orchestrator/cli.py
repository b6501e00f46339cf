"""osctl: the service (`serve`), offline tools (`schema`, `plan`, `migrate`) and a pipeline client.

Exit codes tell a pipeline what happened: 0 done, 1 the migration failed or the action was refused,
2 bad input (spec, arguments, unknown id), 3 timed out waiting, 4 the service could not be reached.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import getpass
import json
import os
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from orchestrator.config import engine_of, load_settings
from orchestrator.domain.errors import OrchestratorError, SpecError
from orchestrator.domain.spec import decode_spec_text, load_spec_text, parse_spec, spec_json_schema
from orchestrator.domain.states import RunStatus
from orchestrator.engine.planner import plan_migration, render_plan_text

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_TIMEOUT, EXIT_UNREACHABLE = 0, 1, 2, 3, 4

# What a started stage settles into when it succeeds.
STAGE_DONE = {
    "expand": RunStatus.AWAITING_DEPLOY,
    "backfill": RunStatus.AWAITING_CONTRACT,
    "contract": RunStatus.COMPLETED,
    "deploy_gate": RunStatus.AWAITING_BACKFILL,
    "rollback": RunStatus.ROLLED_BACK,
}


class CliError(Exception):
    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except CliError as error:
        print(f"osctl: {error}", file=sys.stderr)
        return error.code
    except SpecError as error:
        print("osctl: invalid spec:", file=sys.stderr)
        for field, message in error.problems:
            print(f"  {field}: {message}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except OrchestratorError as error:
        print(f"osctl: {error}", file=sys.stderr)
        return EXIT_FAILED


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="osctl", description="Zero-downtime schema changes in stages.")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the HTTP service (configuration from OSCTL_* variables)")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.set_defaults(func=cmd_serve)

    schema = sub.add_parser("schema", help="print the migration spec's JSON Schema")
    schema.set_defaults(func=cmd_schema)

    plan = sub.add_parser("plan", help="print the staged plan of a spec (no database needed)")
    plan.add_argument("spec", type=Path, nargs="?")
    plan.add_argument("--from-sql", type=Path, metavar="FILE", help="plan from SQL DDL instead of a spec")
    plan.add_argument("--engine", default="postgres", choices=["postgres", "mysql"])
    plan.add_argument("--format", default="text", choices=["text", "json", "markdown"])
    plan.add_argument(
        "--target-dsn",
        metavar="DSN",
        help="plan against this PostgreSQL database: live preflight (sizes, data checks, blocking "
        "transactions) and durations from a read rate measured on it; nothing is written",
    )
    plan.set_defaults(func=cmd_plan)

    lint = sub.add_parser("lint", help="find what in SQL migrations puts a live table at risk (offline)")
    lint.add_argument("files", type=Path, nargs="+", metavar="FILE")
    lint.add_argument("--engine", required=True, choices=["postgres", "mysql"])
    lint.add_argument("--format", default="text", choices=["text", "json"])
    lint.add_argument(
        "--server-version", help="MySQL/MariaDB version, e.g. 8.0.35 or 10.11 (default MariaDB 10.11)"
    )
    lint.set_defaults(func=cmd_lint)

    migrate = sub.add_parser("migrate", help="run the stages in-process with the embedded state store")
    migrate.add_argument("spec", type=Path)
    migrate.add_argument("--target-dsn", help="the database to change (instead of a configured target)")
    migrate.add_argument("--through", default="contract", choices=["expand", "backfill", "contract"])
    migrate.add_argument("--approve-deploy", action="store_true", help="the new application code is out")
    migrate.add_argument("--state-url", help="state store URL (default: OSCTL_STATE_URL or .osctl/state.db)")
    migrate.set_defaults(func=cmd_migrate)

    purge = sub.add_parser(
        "purge-dropped", help="drop the tables drop_table set aside whose retention has run out"
    )
    purge.add_argument("--target", help="a configured target (default: every configured target)")
    purge.add_argument("--target-dsn", help="the database to purge (instead of a configured target)")
    purge.add_argument("--dry-run", action="store_true", help="only list what is kept aside and until when")
    purge.add_argument("--lock-timeout-ms", type=int, default=1000, help="lock wait per table (default 1000)")
    purge.add_argument("--format", default="text", choices=["text", "json"])
    purge.set_defaults(func=cmd_purge_dropped)

    restore = sub.add_parser(
        "restore-dropped", help="rename a table drop_table set aside back (after its migration completed)"
    )
    restore.add_argument("table", help="the table's original name (the newest copy), or its aside name")
    restore.add_argument("--target", help="a configured target (needed when several are configured)")
    restore.add_argument("--target-dsn", help="the database (instead of a configured target)")
    restore.add_argument("--lock-timeout-ms", type=int, default=1000, help="lock wait (default 1000)")
    restore.set_defaults(func=cmd_restore_dropped)

    def client(name: str, help_text: str) -> argparse.ArgumentParser:
        command = sub.add_parser(name, help=help_text)
        command.add_argument("--api", help="service URL (default: OSCTL_API_URL or http://127.0.0.1:8080)")
        command.add_argument("--format", default="text", choices=["text", "json"])
        return command

    apply = client("apply", "submit a spec to the service: validate, preflight, plan, store")
    apply.add_argument("spec", type=Path)
    apply.set_defaults(func=cmd_apply)

    advance = client("advance", "start a stage (expand, backfill, contract)")
    advance.add_argument("id")
    advance.add_argument("stage", choices=["expand", "backfill", "contract"])
    advance.add_argument("--wait", action="store_true", help="wait until the stage settles")
    advance.add_argument("--timeout", type=float, default=3600.0, help="seconds to wait (default 3600)")
    advance.add_argument(
        "--at", help="start no earlier than this ISO 8601 time (with a zone); the run waits visibly"
    )
    advance.add_argument(
        "--override-usage",
        metavar="REASON",
        help="contract only: drop what the safety proof saw in use since the gate; the reason is audited",
    )
    advance.set_defaults(func=cmd_advance)

    approve = client("approve-deploy", "approve the deploy gate: the new application version is out")
    approve.add_argument("id")
    approve.set_defaults(func=cmd_approve)

    status = client("status", "show a migration")
    status.add_argument("id")
    status.set_defaults(func=cmd_status)

    rollback = client("rollback", "undo the stages reached so far")
    rollback.add_argument("id")
    rollback.add_argument("--wait", action="store_true")
    rollback.add_argument("--timeout", type=float, default=3600.0)
    rollback.set_defaults(func=cmd_rollback)
    from orchestrator.runbooks.cli import add_commands as add_runbook_commands

    # --yes/--token on rollback (runbook confirmations), `runbook list|show|plan`, `emergency-stop`.
    add_runbook_commands(sub, client, rollback)

    events = client("events", "print a migration's event timeline")
    events.add_argument("id")
    events.set_defaults(func=cmd_events)

    token = sub.add_parser("token", help="make API tokens for the tokens file (OSCTL_TOKENS_FILE)")
    token_sub = token.add_subparsers(dest="token_command", required=True)
    token_hash = token_sub.add_parser(
        "hash", help="print the hash of a token read from stdin (never from argv)"
    )
    token_hash.set_defaults(func=cmd_token_hash)
    token_new = token_sub.add_parser(
        "new", help="make a random token: the token once, and its tokens-file entry"
    )
    token_new.add_argument("name")
    token_new.add_argument("--scopes", default="read", help="comma-separated: read, pipeline, oncall, admin")
    token_new.set_defaults(func=cmd_token_new)
    return parser


# -- offline ---------------------------------------------------------------------------------------


def _read_spec(path: Path) -> str:
    try:
        return path.read_text()
    except OSError as error:
        raise CliError(f"cannot read spec {path}: {error.strerror}", EXIT_BAD_INPUT) from error


def cmd_schema(_args: argparse.Namespace) -> int:
    print(json.dumps(spec_json_schema(), indent=2))
    return EXIT_OK


def cmd_plan(args: argparse.Namespace) -> int:
    if (args.spec is None) == (args.from_sql is None):
        raise CliError("give either a spec file or --from-sql FILE", EXIT_BAD_INPUT)
    if args.target_dsn:
        return _plan_live(args)
    if args.from_sql is not None:
        from orchestrator.lint.commands import plan_from_sql

        return _emit(plan_from_sql(_read_spec(args.from_sql), str(args.from_sql), args.engine, args.format))
    spec = load_spec_text(_read_spec(args.spec))
    plan = plan_migration(spec, args.engine)
    if args.format == "markdown":
        from orchestrator.lint.plan_document import render_plan_document

        print(render_plan_document(plan, purpose=spec.description), end="")
        return EXIT_OK
    print(plan.model_dump_json(indent=2) if args.format == "json" else render_plan_text(plan))
    return EXIT_OK


def _plan_live(args: argparse.Namespace) -> int:
    """`plan --target-dsn`: the same plan, read against the live database first."""
    from orchestrator.bootstrap import open_plan_target
    from orchestrator.config import redact_dsn
    from orchestrator.lint.commands import plan_from_spec, plan_from_sql
    from orchestrator.lint.live import preflight_sql, run_live_preflight
    from orchestrator.logging import configure_logging

    # stdout is the plan document; what the preflight logs on the way is in it already.
    configure_logging("console", "error")
    if args.engine != "postgres":
        raise CliError(
            "the live preflight (--target-dsn) reads PostgreSQL targets only so far", EXIT_BAD_INPUT
        )
    if engine_of(args.target_dsn) != args.engine:
        message = f"--target-dsn is not a {args.engine} DSN; the live preflight reads PostgreSQL"
        raise CliError(message, EXIT_BAD_INPUT)
    label = redact_dsn(args.target_dsn)
    text = _read_spec(args.from_sql if args.from_sql is not None else args.spec)
    spec = load_spec_text(text) if args.from_sql is None else None

    async def read() -> Any:
        target, probe = open_plan_target(args.target_dsn)
        try:
            if spec is not None:
                return await run_live_preflight(spec, target, probe, label)
            return await preflight_sql(text, str(args.from_sql), target, probe, label)
        finally:
            await probe.close()
            await target.close()

    try:
        found = asyncio.run(read())
    except Exception as error:
        # The database's own errors (unreachable, unknown database, no permission) end the command
        # with its message; anything else is a bug and keeps its traceback.
        database = type(error).__module__.startswith("asyncpg")
        if not (database or isinstance(error, OSError | OrchestratorError)):
            raise
        raise CliError(f"live preflight on {label} failed: {error}", EXIT_UNREACHABLE) from error
    live, tables = found if found is not None else (None, None)
    if spec is not None:
        return _emit(plan_from_spec(spec, args.engine, args.format, live=live, tables=tables))
    return _emit(plan_from_sql(text, str(args.from_sql), args.engine, args.format, live=live, tables=tables))


def cmd_lint(args: argparse.Namespace) -> int:
    from orchestrator.lint.commands import lint_files

    files = [(str(path), _read_spec(path)) for path in args.files]
    return _emit(lint_files(files, args.engine, args.format, args.server_version))


def _emit(output: Any) -> int:
    """Print a lint command's output (orchestrator.lint.commands.CommandOutput) and return its code."""
    for line in output.stdout:
        print(line)
    for line in output.stderr:
        print(line, file=sys.stderr)
    return int(output.code)


def _serve_runbooks() -> Any:
    """The rollback runbooks, validated before anything starts: a bad one stops `serve` (exit 2)."""
    from orchestrator.runbooks.loader import RunbookError, configured_catalogue

    try:
        return configured_catalogue(os.environ)
    except RunbookError as error:
        lines = "\n".join(f"  {where}: {message}" for where, message in error.problems)
        raise CliError(f"invalid runbooks, the service does not start:\n{lines}", EXIT_BAD_INPUT) from error


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from orchestrator.api.app import create_app
    from orchestrator.api.slack import SlackInteractivity
    from orchestrator.bootstrap import build_service, build_tokens
    from orchestrator.logging import configure_logging

    settings = load_settings()
    configure_logging(settings.log_format, settings.log_level)
    runbooks = _serve_runbooks()
    slack = (
        SlackInteractivity(settings.slack_signing_secret.get_secret_value(), settings.slack_users)
        if settings.slack_signing_secret is not None
        else None
    )
    app = create_app(
        lambda: build_service(settings, runbooks=runbooks), tokens=build_tokens(settings), slack=slack
    )

    class DrainingServer(uvicorn.Server):
        """On SIGTERM, drain the service first (stages checkpoint, long-polls answer, leadership is
        released), then let uvicorn wait for the open requests, which now end quickly."""

        def handle_exit(self, sig: int, frame: Any) -> None:
            service = getattr(app.state, "service", None)
            if service is not None:
                asyncio.get_running_loop().call_soon_threadsafe(service.begin_drain)
            super().handle_exit(sig, frame)

        async def startup(self, sockets: Any = None) -> None:
            await super().startup(sockets)
            # Everything built so far (modules, schemas, the store's engine) lives as long as the
            # process: out of the collector's sight, a full collection walks only what requests
            # create. Measured: 50-130 ms pauses, the API's p99, down to a few ms.
            gc.collect()
            gc.freeze()

    config = uvicorn.Config(
        app,
        host=args.host or settings.host,
        port=args.port or settings.port,
        log_config=None,
        # Every mutating call has its audit line and every call its latency in /metrics; a line per
        # GET at pipeline polling rates would be noise (and CPU).
        access_log=False,
        timeout_graceful_shutdown=30,
    )
    DrainingServer(config).run()
    return EXIT_OK


def cmd_migrate(args: argparse.Namespace) -> int:
    from orchestrator.local import run_locally
    from orchestrator.logging import configure_logging

    spec = load_spec_text(_read_spec(args.spec))
    settings = load_settings()
    # Log lines go to stderr: stdout is the report a script reads.
    configure_logging(settings.log_format, settings.log_level)
    if args.target_dsn:
        engine_of(args.target_dsn)
    elif spec.target is None or spec.target not in settings.targets:
        raise CliError(
            "give --target-dsn, or a spec target configured as OSCTL_TARGET_<NAME>", EXIT_BAD_INPUT
        )
    outcome = asyncio.run(
        run_locally(
            spec,
            settings=settings,
            target_dsn=args.target_dsn,
            through=args.through,
            approve_deploy=args.approve_deploy,
            state_url=args.state_url,
            report=lambda line: print(line, flush=True),
        )
    )
    return outcome


def cmd_purge_dropped(args: argparse.Namespace) -> int:
    from orchestrator.dropped_tables import purge_dropped, render

    if args.target and args.target_dsn:
        raise CliError("give --target or --target-dsn, not both", EXIT_BAD_INPUT)
    if args.target_dsn:
        engine_of(args.target_dsn)

    def report(record: dict[str, Any]) -> None:
        print(json.dumps(record) if args.format == "json" else render(record), flush=True)

    return asyncio.run(
        purge_dropped(
            load_settings(),
            target=args.target,
            target_dsn=args.target_dsn,
            now=datetime.now(UTC),
            dry_run=args.dry_run,
            lock_timeout_ms=args.lock_timeout_ms,
            report=report,
        )
    )


def cmd_restore_dropped(args: argparse.Namespace) -> int:
    from orchestrator.dropped_tables import restore_dropped

    if args.target and args.target_dsn:
        raise CliError("give --target or --target-dsn, not both", EXIT_BAD_INPUT)
    if args.target_dsn:
        engine_of(args.target_dsn)
    table = asyncio.run(
        restore_dropped(
            load_settings(),
            args.table,
            target=args.target,
            target_dsn=args.target_dsn,
            lock_timeout_ms=args.lock_timeout_ms,
        )
    )
    print(f"{table.name} renamed back to {table.original}")
    return EXIT_OK


# -- client ----------------------------------------------------------------------------------------


# A replica restarting (rolling deploy, SIGTERM) answers 503 or refuses connections for a moment;
# a long wait rides over that rather than failing the pipeline step.
WAIT_RETRY_SECONDS = 60.0


class Client:
    def __init__(self, api: str | None) -> None:
        self.base = (api or load_settings().api_url).rstrip("/")
        self.headers: dict[str, str] = {}
        token = _client_token()
        if token:
            self.headers["Authorization"] = f"Bearer {token}"

    def call(self, method: str, path: str, *, timeout: float = 30.0, **kwargs: Any) -> dict[str, Any]:
        headers = dict(self.headers)
        if method == "POST":
            # One key per intended action: a retry of this very call would be answered, not redone.
            headers["Idempotency-Key"] = str(uuid.uuid4())
        try:
            response = httpx.request(method, f"{self.base}{path}", timeout=timeout, headers=headers, **kwargs)
        except httpx.TransportError as error:
            raise CliError(f"cannot reach the service at {self.base}: {error}", EXIT_UNREACHABLE) from error
        body: dict[str, Any] = response.json() if response.content else {}
        if response.status_code >= 400:
            code = EXIT_UNREACHABLE if response.status_code == 503 else _exit_code(response.status_code)
            raise CliError(_problem_text(body, response.status_code), code)
        return body

    def wait(self, run_id: str, until: RunStatus, timeout: float) -> dict[str, Any]:
        """Long-poll in slices until `until`, a settled status, or the overall timeout."""
        deadline = time.monotonic() + timeout
        unreachable_since: float | None = None
        while True:
            slice_seconds = max(0.0, min(60.0, deadline - time.monotonic()))
            try:
                result = self.call(
                    "GET",
                    f"/v1/migrations/{run_id}/wait",
                    params={"until": until.value, "timeout": slice_seconds},
                    timeout=slice_seconds + 30,
                )
            except CliError as error:
                now = time.monotonic()
                unreachable_since = unreachable_since or now
                if (
                    error.code != EXIT_UNREACHABLE
                    or now - unreachable_since > WAIT_RETRY_SECONDS
                    or now >= deadline
                ):
                    raise
                time.sleep(1.0)
                continue
            unreachable_since = None
            if result["reached"] or not result["timed_out"] or time.monotonic() >= deadline:
                return result


def _client_token() -> str | None:
    """OSCTL_TOKEN, or OSCTL_TOKEN_FILE naming a file holding it: never an argument (ps shows those)."""
    if os.environ.get("OSCTL_TOKEN"):
        return os.environ["OSCTL_TOKEN"].strip()
    path = os.environ.get("OSCTL_TOKEN_FILE")
    if path:
        try:
            return Path(path).read_text().strip()
        except OSError as error:
            raise CliError(
                f"cannot read OSCTL_TOKEN_FILE {path}: {error.strerror}", EXIT_BAD_INPUT
            ) from error
    return None


def _exit_code(status: int) -> int:
    if status in (400, 404, 422):
        return EXIT_BAD_INPUT
    return EXIT_FAILED


def _problem_text(body: dict[str, Any], status: int) -> str:
    lines = [f"{body.get('title', 'error')} (HTTP {status}): {body.get('detail', '')}"]
    for error in body.get("errors", []):
        lines.append(f"  {error['field']}: {error['message']}")
    evidence = body.get("evidence")
    if isinstance(evidence, dict):
        for finding in evidence.get("findings", []):
            if finding.get("blocking"):
                lines.append(f"  in use: {finding['target']}: {finding['detail']}")
        lines.extend(f"  note: {note}" for note in evidence.get("notes", []))
        if body.get("override"):
            lines.append(f"  {body['override']} (osctl advance ID contract --override-usage REASON)")
    if "allowed_actions" in body:
        lines.append(
            f"  current state: {body.get('current_state')}; allowed: {', '.join(body['allowed_actions']) or 'none'}"
        )
    return "\n".join(lines)


def _show(run: dict[str, Any], fmt: str) -> None:
    if fmt == "json":
        print(json.dumps(run, indent=2))
        return
    print(f"{run['id']}  {run['status']}  stage={run['stage'] or '-'}  target={run['target']}")
    progress = run.get("progress") or {}
    backfill = progress.get("backfill")
    if backfill:
        eta = backfill.get("eta_seconds")
        print(
            f"  backfill {backfill['rows_done']}/{backfill['rows_total_estimate']} rows, "
            f"{backfill['rows_per_second']} rows/s, eta {eta if eta is not None else '-'} s"
        )
    if run.get("error"):
        print(f"  error: {run['error']}")
    print(f"  allowed: {', '.join(run['allowed_actions']) or 'none'}")


def cmd_apply(args: argparse.Namespace) -> int:
    data = decode_spec_text(_read_spec(args.spec))
    parse_spec(data)  # refuse locally first: the same errors, without a round trip
    body = Client(args.api).call("POST", "/v1/migrations", json=data)
    run = body["migration"]
    if args.format == "json":
        print(json.dumps(body, indent=2))
    else:
        print(run["id"])
        print(body["plan_text"], file=sys.stderr)
    return EXIT_OK


def _finish_wait(client: Client, run_id: str, until: RunStatus, timeout: float, fmt: str) -> int:
    result = client.wait(run_id, until, timeout)
    _show(result["migration"], fmt)
    if result["reached"]:
        return EXIT_OK
    if result["timed_out"]:
        print(f"osctl: timed out after {timeout:.0f} s waiting for {until.value}", file=sys.stderr)
        return EXIT_TIMEOUT
    return EXIT_FAILED


def cmd_advance(args: argparse.Namespace) -> int:
    client = Client(args.api)
    body: dict[str, Any] = {}
    if args.at:
        try:
            at = datetime.fromisoformat(args.at)
        except ValueError as error:
            raise CliError(f"--at {args.at!r}: {error}", EXIT_BAD_INPUT) from error
        if at.tzinfo is None:
            raise CliError("--at needs a time zone, e.g. 2025-01-31T02:00:00+00:00", EXIT_BAD_INPUT)
        body["at"] = at.isoformat()
    if args.override_usage is not None:
        if args.stage != "contract":
            raise CliError("--override-usage applies to contract only", EXIT_BAD_INPUT)
        body["override_usage"] = {"reason": args.override_usage}
    run = client.call("POST", f"/v1/migrations/{args.id}/stages/{args.stage}", json=body or None)
    if not args.wait:
        _show(run, args.format)
        return EXIT_OK
    return _finish_wait(client, args.id, STAGE_DONE[args.stage], args.timeout, args.format)


def cmd_approve(args: argparse.Namespace) -> int:
    _show(Client(args.api).call("POST", f"/v1/migrations/{args.id}/deploy-gate"), args.format)
    return EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    run = Client(args.api).call("GET", f"/v1/migrations/{args.id}")
    _show(run, args.format)
    return EXIT_FAILED if run["status"] == RunStatus.FAILED.value else EXIT_OK


def cmd_rollback(args: argparse.Namespace) -> int:
    client = Client(args.api)
    run = client.call("POST", f"/v1/migrations/{args.id}/rollback")
    if not args.wait:
        _show(run, args.format)
        return EXIT_OK
    return _finish_wait(client, args.id, RunStatus.ROLLED_BACK, args.timeout, args.format)


def cmd_events(args: argparse.Namespace) -> int:
    body = Client(args.api).call("GET", f"/v1/migrations/{args.id}/events")
    if args.format == "json":
        print(json.dumps(body, indent=2))
        return EXIT_OK
    for event in body["events"]:
        where = event.get("step_id") or event.get("stage") or ""
        print(f"{event['at']}  {event['type']:<18} {where:<40} {event['message']}")
    return EXIT_OK


# -- tokens ----------------------------------------------------------------------------------------


def cmd_token_hash(_args: argparse.Namespace) -> int:
    from orchestrator.access import hash_token

    token = getpass.getpass("token: ") if sys.stdin.isatty() else sys.stdin.readline()
    token = token.strip()
    if not token:
        raise CliError("no token given on stdin", EXIT_BAD_INPUT)
    print(hash_token(token))
    return EXIT_OK


def cmd_token_new(args: argparse.Namespace) -> int:
    import yaml

    from orchestrator.access import Scope, hash_token, new_token

    try:
        scopes = sorted({Scope(part.strip()).value for part in args.scopes.split(",") if part.strip()})
    except ValueError:
        raise CliError(f"--scopes {args.scopes!r}: use {', '.join(Scope)}", EXIT_BAD_INPUT) from None
    token = new_token()
    print(
        f"# the token, shown once: give it to {args.name} (OSCTL_TOKEN or OSCTL_TOKEN_FILE)", file=sys.stderr
    )
    print(token, file=sys.stderr)
    print("# add to the tokens file (OSCTL_TOKENS_FILE):", file=sys.stderr)
    print(yaml.safe_dump({args.name: {"hash": hash_token(token), "scopes": scopes}}, sort_keys=False), end="")
    return EXIT_OK
