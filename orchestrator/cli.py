"""osctl: the service (`serve`), offline tools (`schema`, `plan`, `migrate`) and a pipeline client.

Exit codes tell a pipeline what happened: 0 done, 1 the migration failed or the action was refused,
2 bad input (spec, arguments, unknown id), 3 timed out waiting, 4 the service could not be reached.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
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
    plan.add_argument("spec", type=Path)
    plan.add_argument("--engine", default="postgres", choices=["postgres"])
    plan.add_argument("--format", default="text", choices=["text", "json"])
    plan.set_defaults(func=cmd_plan)

    migrate = sub.add_parser("migrate", help="run the stages in-process with the embedded state store")
    migrate.add_argument("spec", type=Path)
    migrate.add_argument("--target-dsn", help="the database to change (instead of a configured target)")
    migrate.add_argument("--through", default="contract", choices=["expand", "backfill", "contract"])
    migrate.add_argument("--approve-deploy", action="store_true", help="the new application code is out")
    migrate.add_argument("--state-url", help="state store URL (default: OSCTL_STATE_URL or .osctl/state.db)")
    migrate.set_defaults(func=cmd_migrate)

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

    events = client("events", "print a migration's event timeline")
    events.add_argument("id")
    events.set_defaults(func=cmd_events)
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
    plan = plan_migration(load_spec_text(_read_spec(args.spec)), args.engine)
    print(plan.model_dump_json(indent=2) if args.format == "json" else render_plan_text(plan))
    return EXIT_OK


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from orchestrator.api.app import create_app
    from orchestrator.bootstrap import build_service
    from orchestrator.logging import configure_logging

    settings = load_settings()
    configure_logging(settings.log_format, settings.log_level)
    app = create_app(lambda: build_service(settings))
    uvicorn.run(
        app,
        host=args.host or settings.host,
        port=args.port or settings.port,
        log_config=None,
        timeout_graceful_shutdown=30,
    )
    return EXIT_OK


def cmd_migrate(args: argparse.Namespace) -> int:
    from orchestrator.local import run_locally

    spec = load_spec_text(_read_spec(args.spec))
    settings = load_settings()
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


# -- client ----------------------------------------------------------------------------------------


class Client:
    def __init__(self, api: str | None) -> None:
        self.base = (api or load_settings().api_url).rstrip("/")

    def call(self, method: str, path: str, *, timeout: float = 30.0, **kwargs: Any) -> dict[str, Any]:
        try:
            response = httpx.request(method, f"{self.base}{path}", timeout=timeout, **kwargs)
        except httpx.TransportError as error:
            raise CliError(f"cannot reach the service at {self.base}: {error}", EXIT_UNREACHABLE) from error
        body: dict[str, Any] = response.json() if response.content else {}
        if response.status_code >= 400:
            raise CliError(_problem_text(body, response.status_code), _exit_code(response.status_code))
        return body

    def wait(self, run_id: str, until: RunStatus, timeout: float) -> dict[str, Any]:
        """Long-poll in slices until `until`, a settled status, or the overall timeout."""
        deadline = time.monotonic() + timeout
        while True:
            slice_seconds = max(0.0, min(60.0, deadline - time.monotonic()))
            result = self.call(
                "GET",
                f"/v1/migrations/{run_id}/wait",
                params={"until": until.value, "timeout": slice_seconds},
                timeout=slice_seconds + 30,
            )
            if result["reached"] or not result["timed_out"] or time.monotonic() >= deadline:
                return result


def _exit_code(status: int) -> int:
    if status in (400, 404, 422):
        return EXIT_BAD_INPUT
    return EXIT_FAILED


def _problem_text(body: dict[str, Any], status: int) -> str:
    lines = [f"{body.get('title', 'error')} (HTTP {status}): {body.get('detail', '')}"]
    for error in body.get("errors", []):
        lines.append(f"  {error['field']}: {error['message']}")
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
    run = client.call("POST", f"/v1/migrations/{args.id}/stages/{args.stage}")
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
