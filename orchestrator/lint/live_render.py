"""The live preflight as people read it: lines for the text plan, sections for the markdown document."""

from __future__ import annotations

from orchestrator.lint.live import LivePreflight, StageEstimate, stage_total


def duration(seconds: float) -> str:
    if seconds < 1:
        return "under 1 s"
    if seconds < 120:
        return f"about {seconds:.0f} s"
    if seconds < 7200:
        return f"about {seconds / 60:.0f} min"
    return f"about {seconds / 3600:.1f} h"


def _refusals(preflight: LivePreflight) -> list[tuple[str, str]]:
    """Problems not already shown as a failed data check (schema problems, blocking sessions)."""
    shown = {(check.path, check.message) for check in preflight.checks if not check.passed}
    return [problem for problem in preflight.problems if problem not in shown]


def _rates(preflight: LivePreflight) -> list[str]:
    return [
        f"read rate on {rate.table}: {rate.rows} rows ({rate.bytes / 1024:.0f} kB) in "
        f"{rate.seconds * 1000:.1f} ms, {rate.rows_per_second:,.0f} rows/s, "
        f"{rate.bytes_per_second / 1_048_576:.1f} MB/s"
        for rate in preflight.rates.values()
    ]


def _estimate(estimate: StageEstimate) -> str:
    if estimate.seconds is None:
        return f"{estimate.stage.value}: {estimate.basis[0] if estimate.basis else 'not a duration'}"
    return f"{estimate.stage.value}: {duration(estimate.seconds)}"


def render_live_text(preflight: LivePreflight) -> list[str]:
    verdict = "passed" if preflight.passed else "REFUSED (the service would not store this plan)"
    lines = [f"Live preflight on {preflight.target}: {verdict}"]
    if not preflight.data_checked:
        lines.append("  data checks: not available for this engine (schema checks only)")
    lines.extend(f"  {note}" for note in preflight.notes)
    lines.extend(f"  {rate}" for rate in _rates(preflight))
    for check in preflight.checks:
        lines.append(f"  {'passed' if check.passed else 'FAILED'} {check.path}: {check.message}")
    lines.extend(f"  refused {path}: {message}" for path, message in _refusals(preflight))
    lines.extend(f"  warning {path}: {message}" for path, message in preflight.warnings)
    if preflight.estimates:
        lines.append(f"  estimated time: {duration(stage_total(preflight.estimates))} in all")
        for estimate in preflight.estimates:
            lines.append(f"    {_estimate(estimate)}")
            lines.extend(f"      {basis}" for basis in estimate.basis if estimate.seconds is not None)
    return lines


def markdown_estimates(preflight: LivePreflight) -> list[str]:
    lines = [
        f"Measured on {preflight.target}: {duration(stage_total(preflight.estimates))} of database work "
        "in all, the deploy gate's wait aside."
    ]
    for estimate in preflight.estimates:
        lines.append(f"- {_estimate(estimate)}")
        lines.extend(f"  - {basis}" for basis in estimate.basis if estimate.seconds is not None)
    lines.extend(f"- {rate}" for rate in _rates(preflight))
    if not preflight.rates:
        lines.append("- no read rate could be measured (empty or missing tables): durations are lower bounds")
    return lines


def markdown_checks(preflight: LivePreflight) -> list[str]:
    verdict = "passed" if preflight.passed else "**refused**: the service would not store this plan"
    lines = [f"Live preflight on {preflight.target}: {verdict}.", ""]
    lines.append("- Passed: the spec validates (identifiers, type names, constants, expressions parse).")
    for check in preflight.checks:
        lines.append(f"- {'Passed' if check.passed else '**Failed**'} (`{check.path}`): {check.message}")
    lines.extend(f"- **Refused** (`{path}`): {message}" for path, message in _refusals(preflight))
    lines.extend(f"- Warning (`{path}`): {message}" for path, message in preflight.warnings)
    if not preflight.data_checked:
        lines.append("- Not run: the data checks (not available for this engine).")
    elif not preflight.checks:
        lines.append("- No data check applies: nothing in this plan depends on the rows' values.")
    lines.extend(f"- {note}" for note in preflight.notes)
    return lines
