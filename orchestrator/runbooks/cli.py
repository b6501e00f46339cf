"""osctl runbook list|show|plan, osctl rollback with its confirmation, osctl emergency-stop.

At 3 a.m. `osctl rollback ID` shows what it is about to do before it does anything that asks for a
confirmation: the plan is printed, and on a terminal the migration's id must be typed to go on; the
confirmation sent is the plan's token, so what runs is exactly what was shown. Without a terminal
`--yes` (confirm the plan as it is then) or `--token T` (confirm the plan a dry run showed) is needed.
"""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from orchestrator.cli import (
    EXIT_BAD_INPUT,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_UNREACHABLE,
    Client,
    CliError,
    _finish_wait,
    _problem_text,
    _show,
)
from orchestrator.domain.states import RunStatus
from orchestrator.runbooks.emergency import EmergencyStopReport, summary
from orchestrator.runbooks.loader import RunbookError, load_directory

ClientParser = Callable[[str, str], argparse.ArgumentParser]


def add_commands(
    sub: Any, client: ClientParser, rollback: argparse.ArgumentParser
) -> None:  # `sub`: argparse's private _SubParsersAction
    rollback.add_argument("--yes", action="store_true", help="confirm the runbook's plan without a prompt")
    rollback.add_argument("--token", help="confirm exactly the plan a dry run (osctl runbook plan) showed")
    rollback.set_defaults(func=cmd_rollback)

    runbook = sub.add_parser("runbook", help="rollback runbooks: list, show, plan (the dry run)")
    verbs = runbook.add_subparsers(dest="runbook_command", required=True)
    for name, help_text, func in (
        ("list", "the runbooks the service loaded (or those in --dir)", cmd_list),
        ("show", "one runbook and its steps", cmd_show),
        ("plan", "the dry run: what a rollback of this migration would run now", cmd_plan),
    ):
        verb = verbs.add_parser(name, help=help_text)
        if name == "show":
            verb.add_argument("runbook_id")
        if name == "plan":
            verb.add_argument("id", help="the migration")
        else:
            verb.add_argument(
                "--dir", type=Path, help="read and check the runbooks in DIR, without the service"
            )
        verb.add_argument("--api", help="service URL (default: OSCTL_API_URL or http://127.0.0.1:8080)")
        verb.add_argument("--format", default="text", choices=["text", "json"])
        verb.set_defaults(func=func)

    stop = client("emergency-stop", "hold a target's throttle and pause every migration running on it")
    stop.add_argument("target")
    stop.add_argument("--reason", required=True, help="why: recorded on every migration stopped")
    stop.add_argument("--hold-seconds", type=float, default=3600.0, help="throttle hold (default 3600)")
    stop.set_defaults(func=cmd_emergency_stop)


def _runbooks(args: argparse.Namespace) -> list[dict[str, Any]]:
    if args.dir is None:
        return list(Client(args.api).call("GET", "/v1/runbooks")["runbooks"])
    try:
        catalogue = load_directory(args.dir)
    except RunbookError as error:
        raise CliError(
            "invalid runbooks:\n" + "\n".join(f"  {where}: {message}" for where, message in error.problems),
            EXIT_BAD_INPUT,
        ) from error
    from orchestrator.api.runbooks import RunbookView

    return [RunbookView.of(runbook).model_dump(mode="json") for runbook in catalogue.runbooks]


def cmd_list(args: argparse.Namespace) -> int:
    runbooks = _runbooks(args)
    if args.format == "json":
        print(json.dumps(runbooks, indent=2))
        return EXIT_OK
    for runbook in runbooks:
        applies = runbook["applies_to"]
        strategies = (
            applies["strategies"]
            if isinstance(applies["strategies"], str)
            else ",".join(applies["strategies"])
        )
        confirm = "  (asks for confirmation)" if runbook["confirmation"] else ""
        print(f"{runbook['id']}  {applies['engine']}  {','.join(applies['stages'])}  {strategies}{confirm}")
    return EXIT_OK


def cmd_show(args: argparse.Namespace) -> int:
    if args.dir is None:
        runbook = Client(args.api).call("GET", f"/v1/runbooks/{args.runbook_id}")
    else:
        found = [r for r in _runbooks(args) if r["id"] == args.runbook_id]
        if not found:
            raise CliError(f"no runbook {args.runbook_id!r} in {args.dir}", EXIT_BAD_INPUT)
        runbook = found[0]
    if args.format == "json":
        print(json.dumps(runbook, indent=2))
        return EXIT_OK
    print(f"{runbook['id']}  ({runbook['source']}, digest {runbook['digest']})")
    print(f"  {runbook['description'].strip()}")
    print(f"  applies to: {json.dumps(runbook['applies_to'])}")
    for number, step in enumerate(runbook["steps"], start=1):
        settings = {key: value for key, value in step.items() if key != "kind"}
        print(f"  {number}. {step['kind']}" + (f"  {json.dumps(settings)}" if settings else ""))
    return EXIT_OK


def render_plan(plan: dict[str, Any]) -> list[str]:
    lines = [f"runbook {plan['runbook']}  ({plan['source'] or 'built in'}, digest {plan['digest']})"]
    lines.append(f"  for migration {plan['migration_id']}: {plan['facts']}")
    if plan["confirmation_required"]:
        lines.append(f"  asks for confirmation: {plan['confirmation_message']}")
    lines.append(f"  token: {plan['token']}")
    for action in plan["actions"]:
        state = "" if action["state"] == "pending" else f"  [{action['state']}]"
        lines.append(f"  {action['index'] + 1}. {action['kind']}: {action['description']}{state}")
        lines.extend(f"       {statement}" for statement in action["statements"])
    if plan.get("refused"):
        lines.append(f"  REFUSED: {plan['refused']}")
    return lines


def cmd_plan(args: argparse.Namespace) -> int:
    plan = Client(args.api).call("GET", f"/v1/migrations/{args.id}/runbook")
    print(json.dumps(plan, indent=2) if args.format == "json" else "\n".join(render_plan(plan)))
    return EXIT_FAILED if plan.get("refused") else EXIT_OK


def _post(client: Client, path: str, body: dict[str, Any] | None) -> httpx.Response:
    headers = {**client.headers, "Idempotency-Key": str(uuid.uuid4())}
    try:
        return httpx.post(f"{client.base}{path}", json=body, headers=headers, timeout=30.0)
    except httpx.TransportError as error:
        raise CliError(f"cannot reach the service at {client.base}: {error}", EXIT_UNREACHABLE) from error


def _confirm_at_terminal(run_id: str) -> bool:
    if not sys.stdin.isatty():
        return False
    print(
        f"Type the migration id ({run_id}) to run this runbook, anything else to stop: ", end="", flush=True
    )
    return sys.stdin.readline().strip() == run_id


def cmd_rollback(args: argparse.Namespace) -> int:
    client = Client(args.api)
    path = f"/v1/migrations/{args.id}/rollback"
    body = {"token": args.token} if args.token else {"confirm": True} if args.yes else None
    response = _post(client, path, body)
    problem = response.json() if response.content else {}
    if response.status_code == 409 and isinstance(problem.get("runbook"), dict) and body is None:
        plan = problem["runbook"]
        print("\n".join(render_plan(plan)), file=sys.stderr)
        if not plan.get("refused") and plan["confirmation_required"]:
            if not _confirm_at_terminal(args.id):
                raise CliError(
                    f"not rolled back: the runbook asks for a confirmation. Check the plan above, then "
                    f"run osctl rollback {args.id} --token {plan['token']} (or --yes)",
                    EXIT_FAILED,
                )
            response = _post(client, path, {"token": plan["token"]})
            problem = response.json() if response.content else {}
    if response.status_code >= 400:
        code = (
            EXIT_UNREACHABLE
            if response.status_code == 503
            else EXIT_BAD_INPUT
            if response.status_code in (400, 404, 422)
            else EXIT_FAILED
        )
        raise CliError(_problem_text(problem, response.status_code), code)
    if not args.wait:
        _show(problem, args.format)
        return EXIT_OK
    return _finish_wait(client, args.id, RunStatus.ROLLED_BACK, args.timeout, args.format)


def cmd_emergency_stop(args: argparse.Namespace) -> int:
    body = {"reason": args.reason, "hold_seconds": args.hold_seconds}
    report = Client(args.api).call("POST", f"/v1/targets/{args.target}/emergency-stop", json=body)
    if args.format == "json":
        print(json.dumps(report, indent=2))
    else:
        print("\n".join(summary(EmergencyStopReport.model_validate(report))))
    return EXIT_OK
