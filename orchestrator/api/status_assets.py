"""The status page's stylesheet and script, served as /ui/status.css and /ui/status.js (no build step).

The script mirrors the server's rendering in status_page.py (row structure, progress text, chart) and
only ever sets text and attributes (never innerHTML), so nothing from the API is interpreted as markup.
"""

from __future__ import annotations

STYLE = """
:root { --fg: #1b1f24; --sub: #57606a; --line: #d0d7de; --bg: #fff; --accent: #0969da;
  --ok: #1a7f37; --warn: #9a6700; --bad: #cf222e; --chip: #f6f8fa; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg);
  background: var(--bg); }
header { display: flex; align-items: baseline; justify-content: space-between; gap: 1em;
  padding: 10px 20px; border-bottom: 1px solid var(--line); background: var(--chip); }
header h1 { margin: 0; font-size: 18px; } header h1 a { color: inherit; text-decoration: none; }
main { padding: 8px 20px 24px; max-width: 1200px; }
h2 { font-size: 15px; margin: 18px 0 8px; }
a { color: var(--accent); }
.sub, .meta { color: var(--sub); font-size: 12px; }
.meta { margin: 0; } .stale { color: var(--bad); font-weight: 600; }
table.runs { width: 100%; border-collapse: collapse; }
table.runs th { text-align: left; font-size: 12px; color: var(--sub); font-weight: 600;
  border-bottom: 1px solid var(--line); padding: 4px 8px; }
table.runs td { border-bottom: 1px solid var(--line); padding: 8px; vertical-align: top; }
td.progress { width: 38%; }
.status { display: inline-block; padding: 1px 8px; border-radius: 10px; background: var(--chip);
  border: 1px solid var(--line); font-size: 12px; white-space: nowrap; }
.status[data-status="backfilling"], .status[data-status="expanding"], .status[data-status="contracting"] {
  color: #fff; background: var(--accent); border-color: var(--accent); }
.status[data-status="paused"], .status[data-status^="awaiting"] { color: var(--warn); border-color: var(--warn); }
.status[data-status="failed"], .status[data-status="rolling_back"] { color: #fff; background: var(--bad);
  border-color: var(--bad); }
.status[data-status="completed"] { color: var(--ok); border-color: var(--ok); }
.bar { height: 10px; border-radius: 5px; background: #eaeef2; overflow: hidden; }
.fill { height: 100%; background: var(--accent); transition: width .4s ease; }
tr.run:not(.running) .fill { background: #8c959f; }
.throttled { color: var(--warn); font-weight: 600; font-size: 12px; }
.error { color: var(--bad); font-size: 12px; }
.actions button, form.hold button { margin: 0 4px 4px 0; }
button { font: inherit; font-size: 12px; padding: 3px 10px; border-radius: 6px; border: 1px solid var(--line);
  background: var(--chip); cursor: pointer; }
button:hover { border-color: var(--accent); }
button[data-action="rollback"] { color: var(--bad); }
button:disabled { opacity: .5; cursor: progress; }
#targets { display: flex; flex-wrap: wrap; gap: 12px; }
section.target { border: 1px solid var(--line); border-radius: 8px; padding: 8px 12px; min-width: 340px; }
section.target h2 { margin: 4px 0; }
.state { font-size: 12px; padding: 1px 8px; border-radius: 10px; color: #fff; background: var(--ok); }
.state[data-state="holding"] { background: var(--warn); }
.reason { color: var(--warn); font-weight: 600; margin: 4px 0; }
.manual { color: var(--sub); margin: 4px 0; }
figure.signal { margin: 6px 0; } figcaption { font-size: 12px; }
figcaption [data-field="note"] { display: block; }
svg.chart { display: block; width: 320px; height: 64px; }
svg.chart .frame { fill: #fbfcfd; stroke: var(--line); }
svg.chart .line { fill: none; stroke: var(--accent); stroke-width: 1.5; vector-effect: non-scaling-stroke; }
svg.chart .hold { stroke: var(--bad); stroke-dasharray: 4 3; vector-effect: non-scaling-stroke; }
form.hold input[name="reason"] { width: 14em; } form.hold input[name="minutes"] { width: 4em; }
ol.timeline { list-style: none; padding: 0; margin: 0; border-left: 2px solid var(--line); }
ol.timeline li { padding: 3px 0 3px 10px; }
ol.timeline time { color: var(--sub); font-variant-numeric: tabular-nums; }
ol.timeline .type { font-weight: 600; }
#flash { position: fixed; bottom: 12px; right: 12px; padding: 8px 12px; border-radius: 6px;
  background: var(--fg); color: #fff; }
#flash.bad { background: var(--bad); }
main.login { max-width: 360px; margin: 60px auto; }
main.login input { width: 100%; margin: 6px 0 10px; }
[hidden] { display: none !important; }
"""

SCRIPT = r"""
"use strict";
(() => {
  const body = document.body;
  if (!body || !body.dataset.page) return;
  const page = body.dataset.page;
  const migration = body.dataset.migration;
  const can = (body.dataset.can || "").split(" ").filter(Boolean);
  const ACTIONS = {
    approve_deploy: ["Approve deploy", "deploy-gate", ""],
    pause: ["Pause", "pause", ""],
    resume: ["Resume", "resume", ""],
    rollback: ["Roll back", "rollback", "Roll back {name}? Completed steps are reversed."],
  };
  const RUNNING = ["expanding", "backfilling", "contracting", "rolling_back"];
  const HISTORY_SECONDS = 300, W = 300, H = 64, SVG = "http://www.w3.org/2000/svg";
  const updated = document.getElementById("updated");
  window.osctlRefreshes = 0;

  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v !== null && v !== undefined && v !== false) el.setAttribute(k, v === true ? "" : String(v));
    }
    for (const c of children) el.append(c);
    return el;
  }
  const field = (el, name) => el.querySelector(`[data-field="${name}"]`);
  const num = (n) => Math.round(n).toLocaleString("en-US");

  function duration(s) {
    if (s === null || s === undefined || !isFinite(s)) return "unknown";
    s = Math.max(0, Math.round(s));
    if (s < 60) return `${s} s`;
    if (s < 3600) return `${Math.floor(s / 60)} min` + (s % 60 ? ` ${s % 60} s` : "");
    return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  }

  function progressOf(run) {
    const b = run.progress.backfill;
    if (b && (run.status === "backfilling" || run.status === "paused")) {
      const total = Math.max(b.rows_total_estimate, b.rows_done, 1);
      let text = `${num(b.rows_done)} / ~${num(b.rows_total_estimate)} rows`;
      if (run.status === "backfilling") {
        text += ` · ${num(b.rows_per_second)} rows/s · ETA ${duration(b.eta_seconds)}`;
      }
      return [100 * b.rows_done / total, text, run.status === "backfilling" ? b.throttled : null];
    }
    if (run.status === "completed") return [100, "done", null];
    const p = run.progress;
    return [p.steps_total ? 100 * p.steps_done / p.steps_total : 0, `${p.steps_done} / ${p.steps_total} steps`, null];
  }

  function key() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    return Array.from(crypto.getRandomValues(new Uint8Array(16)), (x) => x.toString(16).padStart(2, "0")).join("");
  }

  async function api(method, path, payload) {
    const headers = { "X-Osctl-Ui": "1", Accept: "application/json" };
    if (method !== "GET") headers["Idempotency-Key"] = key();
    if (payload !== undefined) headers["Content-Type"] = "application/json";
    const r = await fetch(path, {
      method, headers, credentials: "same-origin", cache: "no-store",
      body: payload === undefined ? undefined : JSON.stringify(payload),
    });
    if (r.status === 401) { location.assign("/ui/login"); throw new Error("signed out"); }
    if (!r.ok) {
      let detail = `${r.status} ${r.statusText}`;
      try { detail = (await r.json()).detail || detail; } catch (_) { /* not JSON */ }
      throw new Error(detail);
    }
    return r.status === 204 ? null : r.json();
  }

  function flash(text, bad) {
    let el = document.getElementById("flash");
    if (!el) {
      el = h("div", { id: "flash", role: "status", title: "click to dismiss" });
      el.addEventListener("click", () => el.remove());
      body.append(el);
    }
    el.textContent = text;
    el.className = bad ? "bad" : "";
    clearTimeout(flash.timer);
    flash.timer = setTimeout(() => el.remove(), 5000);
  }

  // --- migrations ---------------------------------------------------------------------------------

  function makeRow(run) {
    const buttons = can.map((action) => h("button", {
      type: "button", "data-action": action,
      "data-confirm": ACTIONS[action][2].replace("{name}", run.name), hidden: true,
    }, ACTIONS[action][0]));
    return h("tr", { class: "run", "data-id": run.id, "data-name": run.name },
      h("td", {}, h("a", { href: `/migrations/${encodeURIComponent(run.id)}` }, run.name),
        h("div", { class: "sub" }, `${run.target} · ${run.engine} · ${run.id}`)),
      h("td", {}, h("span", { class: "status", "data-field": "status" })),
      h("td", { "data-field": "stage" }),
      h("td", { class: "progress" },
        h("div", { class: "bar", role: "progressbar", "aria-valuemin": 0, "aria-valuemax": 100, "data-field": "bar" },
          h("div", { class: "fill", "data-field": "fill" })),
        h("div", { class: "sub", "data-field": "progress" }),
        h("div", { class: "throttled", "data-field": "throttled", hidden: true }),
        h("div", { class: "error", "data-field": "error", hidden: true })),
      h("td", { class: "actions", "data-field": "actions" }, ...buttons));
  }

  function updateRow(tr, run) {
    const [percent, text, throttled] = progressOf(run);
    tr.classList.toggle("running", RUNNING.includes(run.status));
    const status = field(tr, "status");
    status.textContent = run.status;
    status.dataset.status = run.status;
    field(tr, "stage").textContent = run.stage || "";
    field(tr, "bar").setAttribute("aria-valuenow", percent.toFixed(1));
    field(tr, "fill").style.width = `${percent.toFixed(2)}%`;
    field(tr, "progress").textContent = text;
    const t = field(tr, "throttled");
    t.hidden = !throttled;
    t.textContent = throttled ? `throttled: ${throttled}` : "";
    const err = field(tr, "error");
    err.hidden = !run.error;
    err.textContent = run.error || "";
    for (const button of tr.querySelectorAll("button[data-action]")) {
      if (!button.disabled) button.hidden = !run.allowed_actions.includes(button.dataset.action);
    }
  }

  function renderRuns(runs) {
    const tbody = document.getElementById("runs");
    if (!tbody) return;
    const seen = new Set();
    runs.forEach((run, i) => {
      let tr = Array.from(tbody.querySelectorAll("tr.run")).find((row) => row.dataset.id === run.id);
      if (!tr) tr = makeRow(run);
      if (tbody.children[i] !== tr) tbody.insertBefore(tr, tbody.children[i] || null);
      updateRow(tr, run);
      seen.add(run.id);
    });
    for (const tr of tbody.querySelectorAll("tr.run")) if (!seen.has(tr.dataset.id)) tr.remove();
    const empty = tbody.querySelector("tr.empty");
    if (empty && runs.length) empty.remove();
  }

  // --- targets ------------------------------------------------------------------------------------

  function reading(value, unit) {
    if (value === null || value === undefined) return "no reading";
    if (unit === "ratio") return `${(value * 100).toFixed(2)} %`;
    if (unit === "bytes") return `${num(value)} bytes`;
    return `${Number(value.toPrecision(3))} ${unit}`.trim();
  }

  function chartSpan(history) {
    return Math.min(HISTORY_SECONDS, Math.max(60, history.length ? history[0][0] : 0));
  }

  function drawChart(svg, history, threshold) {
    const values = history.filter((p) => p[1] !== null).map((p) => p[1]);
    const holdAt = threshold.hold_at || 0;
    const top = Math.max(holdAt * 1.5, ...values, 1e-9);
    const span = chartSpan(history);
    const x = (ago) => W * (1 - Math.min(ago, span) / span);
    const y = (v) => H - 2 - (H - 4) * Math.min(v, top) / top;
    const shapes = [];
    const frame = document.createElementNS(SVG, "rect");
    for (const [k, v] of Object.entries({ class: "frame", x: 0, y: 0, width: W, height: H })) frame.setAttribute(k, v);
    shapes.push(frame);
    if (holdAt) {
      const line = document.createElementNS(SVG, "line");
      for (const [k, v] of Object.entries({ class: "hold", x1: 0, x2: W, y1: y(holdAt), y2: y(holdAt) })) line.setAttribute(k, v);
      shapes.push(line);
    }
    let points = [];
    const flush = () => {
      if (!points.length) return;
      const poly = document.createElementNS(SVG, "polyline");
      poly.setAttribute("class", "line");
      poly.setAttribute("points", points.join(" "));
      shapes.push(poly);
      points = [];
    };
    for (const [ago, value] of history) {
      if (value === null) flush(); else points.push(`${x(ago).toFixed(1)},${y(value).toFixed(1)}`);
    }
    flush();
    svg.replaceChildren(...shapes);
  }

  function renderTargets(list) {
    for (const snap of list) {
      const section = Array.from(document.querySelectorAll("section.target")).find((s) => s.dataset.target === snap.target);
      if (!section) continue;
      const state = snap.reason ? "holding" : "proceeding";
      const st = field(section, "state");
      st.textContent = state;
      st.dataset.state = state;
      const reason = field(section, "reason");
      reason.hidden = !snap.reason;
      reason.textContent = snap.reason || "";
      const manual = field(section, "manual");
      manual.hidden = !snap.manual;
      manual.textContent = snap.manual
        ? `manual hold: ${snap.manual.reason}` + (snap.manual.until_in_s === null ? "" : ` · lifts in ${duration(snap.manual.until_in_s)}`)
        : "";
      for (const figure of section.querySelectorAll("figure.signal")) {
        const signal = snap.signals[figure.dataset.signal];
        if (!signal) continue;
        field(figure, "value").textContent = reading(signal.value, signal.unit);
        field(figure, "note").textContent = signal.error || signal.detail || "";
        const history = snap.history[figure.dataset.signal] || [];
        drawChart(field(figure, "chart"), history, signal.threshold);
        field(figure, "span").textContent = `last ${duration(chartSpan(history))}`;
      }
    }
  }

  // --- timeline -----------------------------------------------------------------------------------

  async function refreshTimeline() {
    const list = document.getElementById("timeline");
    if (!list) return;
    const after = Number(list.dataset.after || 0);
    const { events } = await api("GET", `/v1/migrations/${encodeURIComponent(migration)}/events?after=${after}`);
    for (const ev of events) {
      const at = new Date(ev.at);
      list.prepend(h("li", { "data-event": ev.id, "data-type": ev.type },
        h("time", { datetime: ev.at }, at.toISOString().slice(11, 19)), " ",
        h("span", { class: "type" }, ev.type), " ", h("span", { class: "sub" }, ev.stage || ""), " ",
        h("span", {}, ev.message)));
      list.dataset.after = ev.id;
    }
  }

  // --- refresh and actions ------------------------------------------------------------------------

  async function refresh() {
    try {
      if (page === "overview") {
        renderRuns((await api("GET", "/v1/migrations?limit=100")).migrations);
      } else {
        renderRuns([await api("GET", `/v1/migrations/${encodeURIComponent(migration)}`)]);
        await refreshTimeline();
      }
      if (document.querySelector("section.target")) renderTargets((await api("GET", "/v1/targets")).targets);
      updated.textContent = `updated ${new Date().toLocaleTimeString()}`;
      updated.classList.remove("stale");
      window.osctlRefreshes += 1;
    } catch (err) {
      updated.textContent = `not updated: ${err.message}`;
      updated.classList.add("stale");
    }
  }

  async function loop() {
    await refresh();
    setTimeout(loop, 1000);
  }

  document.addEventListener("click", async (event) => {
    const button = event.target.closest("button[data-action]");
    if (!button) return;
    const action = button.dataset.action;
    try {
      if (action === "lift") {
        const target = button.closest("section.target").dataset.target;
        await api("DELETE", `/v1/targets/${encodeURIComponent(target)}/throttle`);
        flash(`hold on ${target} lifted`);
      } else if (ACTIONS[action]) {
        const row = button.closest("tr.run");
        if (button.dataset.confirm && !window.confirm(button.dataset.confirm)) return;
        button.disabled = true;
        try {
          // The dialog the person just answered is the confirmation a rollback runbook asks for.
          const confirmed = action === "rollback" ? { confirm: true } : undefined;
          await api("POST", `/v1/migrations/${encodeURIComponent(row.dataset.id)}/${ACTIONS[action][1]}`, confirmed);
          flash(`${ACTIONS[action][0]}: ${row.dataset.name}`);
        } finally {
          button.disabled = false;
        }
      }
      await refresh();
    } catch (err) {
      flash(`${action} failed: ${err.message}`, true);
    }
  });

  document.addEventListener("submit", async (event) => {
    const form = event.target.closest("form.hold");
    if (!form) return;
    event.preventDefault();
    const target = form.closest("section.target").dataset.target;
    const data = new FormData(form);
    try {
      await api("POST", `/v1/targets/${encodeURIComponent(target)}/throttle`,
        { reason: String(data.get("reason")), seconds: Number(data.get("minutes")) * 60 });
      flash(`${target} held`);
      await refresh();
    } catch (err) {
      flash(`hold failed: ${err.message}`, true);
    }
  });

  setTimeout(loop, 1000);
})();
"""
