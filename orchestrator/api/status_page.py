"""The status page on-call reads during an incident: served at `/`, no build step.

The HTML is rendered here (string.Template, every value escaped) and is complete without JavaScript;
`/ui/status.js` then refreshes it every second from the JSON API (`/v1/migrations`, `/v1/targets`,
`/v1/migrations/{id}/events`) and wires the action buttons to the same JSON endpoints the CLI and the
Slack buttons use. Buttons are only rendered for callers whose token has the scope the action needs.

Browsers cannot send a bearer header on navigation, so when tokens are configured the page signs in
through a cookie: `/ui/login` stores the token in an HttpOnly, SameSite=Strict cookie, and
`UiSessionMiddleware` (outermost) turns that cookie into the Authorization header the auth layer
checks. It does so for GET/HEAD, and for other methods only when the request carries the
`X-Osctl-Ui` header, which a cross-site form cannot send (so a cookie alone never authorises an action).
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Sequence
from http.cookies import SimpleCookie
from string import Template
from typing import Annotated, Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Depends, FastAPI, Path, Request, Response
from fastapi.responses import HTMLResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from orchestrator.access import Principal, permits
from orchestrator.access import Scope as AccessScope
from orchestrator.api import auth, targets
from orchestrator.api.status_assets import SCRIPT, STYLE
from orchestrator.domain.run import MigrationEvent, Run
from orchestrator.domain.states import RUNNING, RunStatus
from orchestrator.engine.throttler import HISTORY_SECONDS, Throttler
from orchestrator.service import MigrationService

COOKIE = "osctl_token"
UI_HEADER = "x-osctl-ui"
PAGE_LIMIT = 100
TIMELINE_LIMIT = 500
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
Reader = Annotated[Principal, Depends(auth.requires(AccessScope.READ))]
MigrationId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_.-]{1,120}$")]

# Each action a button offers: the label, the scope it needs, the API path under the migration, and
# the question asked first (None: no confirmation).
ACTIONS: dict[str, tuple[str, AccessScope, str, str | None]] = {
    "approve_deploy": ("Approve deploy", AccessScope.PIPELINE, "deploy-gate", None),
    "pause": ("Pause", AccessScope.ONCALL, "pause", None),
    "resume": ("Resume", AccessScope.ONCALL, "resume", None),
    "rollback": (
        "Roll back",
        AccessScope.ONCALL,
        "rollback",
        "Roll back {name}? Completed steps are reversed.",
    ),
}

CHART_W, CHART_H = 300, 64


def e(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def install_status_page(app: FastAPI) -> None:
    """Routes for the page and /v1/targets, and the cookie sign-in. Call after the auth middleware
    is added, so that the cookie is turned into a header before the auth layer looks."""
    app.include_router(targets.router)
    app.include_router(router)
    app.add_middleware(UiSessionMiddleware)


# --- formatting (status.js mirrors these) ----------------------------------------------------------------


def duration(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "unknown"
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min" + (f" {seconds % 60} s" if seconds % 60 else "")
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


def progress_of(run: Run) -> tuple[float, str, str | None]:
    """(percent done, a line of text, why it is throttled) for the run's current stage."""
    backfill = run.progress.backfill
    if backfill is not None and run.status in (RunStatus.BACKFILLING, RunStatus.PAUSED):
        total = max(backfill.rows_total_estimate, backfill.rows_done, 1)
        percent = 100.0 * backfill.rows_done / total
        text = f"{backfill.rows_done:,} / ~{backfill.rows_total_estimate:,} rows"
        if run.status is RunStatus.BACKFILLING:
            text += f" · {backfill.rows_per_second:,.0f} rows/s · ETA {duration(backfill.eta_seconds)}"
        return percent, text, backfill.throttled if run.status is RunStatus.BACKFILLING else None
    steps = run.progress
    if run.status is RunStatus.COMPLETED:
        return 100.0, "done", None
    percent = 100.0 * steps.steps_done / steps.steps_total if steps.steps_total else 0.0
    return percent, f"{steps.steps_done} / {steps.steps_total} steps", None


def allowed_buttons(principal: Principal) -> list[str]:
    return [action for action, (_l, scope, _p, _c) in ACTIONS.items() if permits(principal.scopes, [scope])]


# --- rendering -----------------------------------------------------------------------------------------

PAGE = Template("""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>$title</title>
<link rel="stylesheet" href="/ui/status.css">
<script src="/ui/status.js" defer></script>
</head>
<body data-page="$page" data-migration="$migration" data-can="$can" data-can-hold="$can_hold">
<header>
<h1><a href="/">osctl</a> <span class="sub">$heading</span></h1>
<p class="meta">signed in as <b>$who</b> · <span id="updated" data-field="updated">rendered by the server</span></p>
</header>
<main>
$body
</main>
</body>
</html>
""")


def page(
    title: str, heading: str, body: str, principal: Principal, *, page_name: str, migration: str = ""
) -> str:
    can = allowed_buttons(principal)
    return PAGE.substitute(
        title=e(title),
        heading=e(heading),
        page=e(page_name),
        migration=e(migration),
        can=e(" ".join(can)),
        can_hold=e("yes" if permits(principal.scopes, [AccessScope.ONCALL]) else ""),
        who=e(principal.name),
        body=body,
    )


def run_row(run: Run, can: Sequence[str]) -> str:
    percent, text, throttled = progress_of(run)
    allowed = set(run.allowed_actions)
    buttons = []
    for action in can:
        label, _scope, _path, confirm = ACTIONS[action]
        question = confirm.format(name=run.name) if confirm else ""
        hidden = "" if action in allowed else " hidden"
        buttons.append(
            f'<button type="button" data-action="{e(action)}" data-confirm="{e(question)}"{hidden}>'
            f"{e(label)}</button>"
        )
    running = " running" if run.status in RUNNING else ""
    return f"""<tr class="run{running}" data-id="{e(run.id)}" data-name="{e(run.name)}">
<td><a href="/migrations/{e(run.id)}">{e(run.name)}</a><div class="sub">{e(run.target)} · {e(run.engine)} · {e(run.id)}</div></td>
<td><span class="status" data-field="status" data-status="{e(run.status.value)}">{e(run.status.value)}</span></td>
<td data-field="stage">{e(run.stage.value if run.stage else "")}</td>
<td class="progress">
<div class="bar" role="progressbar" aria-valuemin="0" aria-valuemax="100" aria-valuenow="{percent:.1f}" data-field="bar"><div class="fill" data-field="fill" style="width: {percent:.2f}%"></div></div>
<div class="sub" data-field="progress">{e(text)}</div>
<div class="throttled" data-field="throttled"{"" if throttled else " hidden"}>throttled: {e(throttled)}</div>
<div class="error" data-field="error"{"" if run.error else " hidden"}>{e(run.error)}</div>
</td>
<td class="actions" data-field="actions">{"".join(buttons)}</td>
</tr>"""


def runs_table(runs: Iterable[Run], can: Sequence[str]) -> str:
    rows = "\n".join(run_row(run, can) for run in runs)
    empty = "" if rows else '<tr class="empty"><td colspan="5">No migrations yet.</td></tr>'
    return f"""<table class="runs">
<thead><tr><th>Migration</th><th>Status</th><th>Stage</th><th>Progress</th><th>Actions</th></tr></thead>
<tbody id="runs">{rows}{empty}</tbody>
</table>"""


def chart(history: Sequence[Sequence[Any]], threshold: dict[str, Any]) -> str:
    """An SVG line of the last HISTORY_SECONDS of one signal, with its hold line dashed."""
    values = [float(v) for _ago, v in history if v is not None]
    hold_at = float(threshold.get("hold_at") or 0)
    top = max([hold_at * 1.5, *values, 1e-9])

    span = chart_span(history)

    def x(ago: float) -> float:
        return CHART_W * (1 - min(ago, span) / span)

    def y(value: float) -> float:
        return CHART_H - 2 - (CHART_H - 4) * min(value, top) / top

    lines: list[list[str]] = []
    current: list[str] = []
    for ago, value in history:
        if value is None:
            if current:
                lines.append(current)
            current = []
        else:
            current.append(f"{x(float(ago)):.1f},{y(float(value)):.1f}")
    if current:
        lines.append(current)
    polylines = "".join(f'<polyline class="line" points="{" ".join(points)}"/>' for points in lines)
    hold = (
        f'<line class="hold" x1="0" x2="{CHART_W}" y1="{y(hold_at):.1f}" y2="{y(hold_at):.1f}"/>'
        if hold_at
        else ""
    )
    return (
        f'<svg class="chart" viewBox="0 0 {CHART_W} {CHART_H}" preserveAspectRatio="none" '
        f'role="img" aria-label="the last {duration(span)}" data-field="chart">'
        f'<rect class="frame" x="0" y="0" width="{CHART_W}" height="{CHART_H}"/>{hold}{polylines}</svg>'
    )


def chart_span(history: Sequence[Sequence[Any]]) -> float:
    """The chart's time axis: the history there is, at least a minute, at most HISTORY_SECONDS."""
    oldest = float(history[0][0]) if history else 0.0
    return min(HISTORY_SECONDS, max(60.0, oldest))


def reading(value: float | None, unit: str) -> str:
    if value is None:
        return "no reading"
    if unit == "ratio":
        return f"{value * 100:.2f} %"
    if unit == "bytes":
        return f"{value:,.0f} bytes"
    return f"{value:.3g} {unit}".strip()


def target_panel(snapshot: targets.TargetSignals, can_hold: bool) -> str:
    figures = []
    for name, signal in snapshot.signals.items():
        history = snapshot.history.get(name, [])
        threshold = signal.threshold
        note = signal.error or signal.detail
        figures.append(f"""<figure class="signal" data-signal="{e(name)}">
<figcaption><b>{e(name)}</b> <span data-field="value">{e(reading(signal.value, signal.unit))}</span>
<span class="sub">hold at {e(reading(threshold.get("hold_at"), signal.unit))} ·
<span data-field="span">last {e(duration(chart_span(history)))}</span></span>
<span class="sub" data-field="note">{e(note)}</span></figcaption>
{chart(history, threshold)}
</figure>""")
    manual = snapshot.manual
    manual_text = "" if manual is None else f"manual hold: {manual.reason}"
    controls = ""
    if can_hold:
        controls = """<form class="hold" data-field="hold-form">
<input name="reason" required maxlength="200" placeholder="why hold (e.g. incident 123)" aria-label="reason">
<input name="minutes" type="number" min="1" max="1440" value="10" aria-label="minutes"> min
<button type="submit">Hold target</button> <button type="button" data-action="lift">Lift hold</button>
</form>"""
    state = "holding" if snapshot.reason else "proceeding"
    return f"""<section class="target" data-target="{e(snapshot.target)}">
<h2>{e(snapshot.target)} <span class="state" data-field="state" data-state="{state}">{state}</span></h2>
<p class="reason" data-field="reason"{"" if snapshot.reason else " hidden"}>{e(snapshot.reason)}</p>
<p class="manual" data-field="manual"{"" if manual else " hidden"}>{e(manual_text)}</p>
<div class="signals">{"".join(figures) or '<p class="sub">no signals configured</p>'}</div>
{controls}
</section>"""


def targets_section(throttler: Throttler | None, can_hold: bool, only: str | None = None) -> str:
    if throttler is None:
        return '<section id="targets"><p class="sub">No throttle signals configured.</p></section>'
    names = [name for name in throttler.targets() if only is None or name == only]
    panels = "\n".join(target_panel(targets.view(throttler, name), can_hold) for name in names)
    return f'<section id="targets">{panels}</section>'


def timeline(events: Sequence[MigrationEvent]) -> str:
    items = "\n".join(event_item(event) for event in reversed(events[-TIMELINE_LIMIT:]))
    last = events[-1].id if events else 0
    return f'<h2>Timeline</h2>\n<ol class="timeline" id="timeline" data-after="{last}">{items}</ol>'


def event_item(event: MigrationEvent) -> str:
    stage = event.stage.value if event.stage else ""
    return (
        f'<li data-event="{event.id}" data-type="{e(event.type.value)}">'
        f'<time datetime="{e(event.at.isoformat())}">{e(event.at.strftime("%H:%M:%S"))}</time> '
        f'<span class="type">{e(event.type.value)}</span> <span class="sub">{e(stage)}</span> '
        f"<span>{e(event.message)}</span></li>"
    )


# --- routes --------------------------------------------------------------------------------------------

router = APIRouter(include_in_schema=False)


def _html(body: str) -> HTMLResponse:
    return HTMLResponse(body, headers={"Content-Security-Policy": CSP, "Cache-Control": "no-store"})


def _service(request: Request) -> MigrationService:
    service: MigrationService = request.app.state.service
    return service


@router.get("/", response_class=HTMLResponse)
async def overview(request: Request, caller: Reader) -> HTMLResponse:
    service = _service(request)
    runs = await service.list_runs(PAGE_LIMIT)
    can = allowed_buttons(caller)
    can_hold = permits(caller.scopes, [AccessScope.ONCALL])
    body = (
        f"<h2>Migrations</h2>\n{runs_table(runs, can)}\n<h2>Targets</h2>\n"
        f"{targets_section(targets.throttler_of(request), can_hold)}"
    )
    return _html(page("osctl status", "status", body, caller, page_name="overview"))


@router.get("/migrations/{migration_id}", response_class=HTMLResponse)
async def migration_page(request: Request, migration_id: MigrationId, caller: Reader) -> HTMLResponse:
    service = _service(request)
    run = await service.get(migration_id)
    events = await service.list_events(migration_id)
    can = allowed_buttons(caller)
    can_hold = permits(caller.scopes, [AccessScope.ONCALL])
    body = (
        f"{runs_table([run], can)}\n"
        f"{targets_section(targets.throttler_of(request), can_hold, only=run.target)}\n"
        f"{timeline(events)}"
    )
    return _html(page(f"{run.name} · osctl", run.name, body, caller, page_name="migration", migration=run.id))


@router.get("/ui/status.js")
async def script() -> Response:
    return Response(SCRIPT, media_type="text/javascript", headers={"Cache-Control": "no-cache"})


@router.get("/ui/status.css")
async def stylesheet() -> Response:
    return Response(STYLE, media_type="text/css", headers={"Cache-Control": "no-cache"})


# --- cookie sign-in -------------------------------------------------------------------------------------

LOGIN = Template("""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>osctl · sign in</title>
<link rel="stylesheet" href="/ui/status.css"></head>
<body><main class="login"><h1>osctl</h1>
<form method="post" action="/ui/login">
<p>$message</p>
<label>Token <input name="token" type="password" autocomplete="off" required autofocus></label>
<button type="submit">Sign in</button>
</form></main></body></html>
""")
PAGE_PATHS = ("/", "/migrations/")


class UiSessionMiddleware:
    """The page's cookie sign-in (see the module docstring); everything else passes through as it is."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path, method = scope["path"], scope["method"]
        if path == "/ui/login":
            await self._login(scope, receive, send)
            return
        if path == "/ui/logout":
            await _respond(send, 303, b"", [(b"location", b"/ui/login"), _cookie_header("", 0)])
            return
        headers = list(scope.get("headers", []))
        names = {name for name, _ in headers}
        token = _cookie(headers)
        if (
            token
            and b"authorization" not in names
            and (method in ("GET", "HEAD") or UI_HEADER.encode() in names)
        ):
            scope = {**scope, "headers": [*headers, (b"authorization", f"Bearer {token}".encode("latin-1"))]}
        if method == "GET" and (path == "/" or path.startswith("/migrations/")):
            await self.app(scope, receive, _to_login_on_401(send))
            return
        await self.app(scope, receive, send)

    async def _login(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] == "POST":
            body = b""
            while True:
                message = await receive()
                body += message.get("body", b"")
                if len(body) > 10_000 or not message.get("more_body"):
                    break
            token = parse_qs(body.decode("utf-8", "replace")).get("token", [""])[0].strip()
            if token and token.isprintable() and len(token) <= 500:
                await _respond(send, 303, b"", [(b"location", b"/"), _cookie_header(token, 12 * 3600)])
                return
        note = "Sign in with an osctl token (osctl token new)."
        if _cookie(scope.get("headers", [])):
            note = "That token was not accepted: sign in again."
        body = LOGIN.substitute(message=e(note)).encode()
        await _respond(
            send,
            200,
            body,
            [(b"content-type", b"text/html; charset=utf-8"), (b"content-security-policy", CSP.encode())],
        )


def _cookie(headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    for name, value in headers:
        if name == b"cookie":
            jar: SimpleCookie = SimpleCookie()
            try:
                jar.load(value.decode("latin-1"))
            except Exception:
                return None
            morsel = jar.get(COOKIE)
            if morsel is not None and morsel.value:
                return morsel.value
    return None


def _cookie_header(token: str, max_age: int) -> tuple[bytes, bytes]:
    value = f"{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}"
    return (b"set-cookie", value.encode("latin-1"))


async def _respond(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _to_login_on_401(send: Send) -> Send:
    """A page request the auth layer refuses goes to the sign-in form instead of a JSON 401."""
    refused = False

    async def wrapped(message: Message) -> None:
        nonlocal refused
        if message["type"] == "http.response.start" and message["status"] == 401:
            refused = True
            await _respond(send, 303, b"", [(b"location", b"/ui/login")])
            return
        if refused:
            return
        await send(message)

    return wrapped
