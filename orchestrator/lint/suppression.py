"""Per-statement suppression: `-- osctl:ignore <rule>[, <rule>...] reason: <why it is safe here>`.

The comment goes before the statement, inside it, or after its semicolon on the same line. A reason
is required because the next reader needs it more than the writer does; a suppression without one
suppresses nothing and is reported itself, as are unknown rule ids and suppressions that match no
finding of their statement.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from orchestrator.lint.findings import Finding
from orchestrator.lint.lexer import Comment
from orchestrator.lint.rules import RULES, SUPPRESSION_RULES, Site

_DIRECTIVE = re.compile(r"osctl:ignore\b(?P<rest>.*)", re.IGNORECASE | re.DOTALL)
_REASON = re.compile(r"\breason\s*:", re.IGNORECASE)


@dataclass(frozen=True)
class Suppression:
    rules: tuple[str, ...]
    reason: str
    line: int


def parse_suppression(comment: Comment) -> Suppression | None:
    text = comment.text.strip()
    for marker in ("--", "#", "/*"):
        text = text.removeprefix(marker)
    text = text.removesuffix("*/").strip()
    directive = _DIRECTIVE.match(text)
    if directive is None:
        return None
    rest = directive.group("rest")
    reason_at = _REASON.search(rest)
    names, reason = (rest[: reason_at.start()], rest[reason_at.end() :]) if reason_at else (rest, "")
    rules = tuple(name for name in re.split(r"[\s,]+", names.strip()) if name)
    return Suppression(rules, " ".join(reason.split()), comment.line)


def apply_suppressions(site: Site, comments: tuple[Comment, ...]) -> list[Finding]:
    """The statement's findings minus those a reasoned suppression covers, plus any finding about
    the suppressions themselves."""
    suppressions = [parsed for parsed in map(parse_suppression, comments) if parsed is not None]
    if not suppressions:
        return site.findings
    kept = list(site.findings)
    notes = Site(site.index, site.line)
    for suppression in suppressions:
        if not suppression.reason:
            notes.report(
                "suppression-without-reason",
                f"osctl:ignore {' '.join(suppression.rules)} gives no reason, so it suppresses nothing: "
                "say why the finding does not apply here.",
                line=suppression.line,
            )
            continue
        if not suppression.rules:
            notes.report("suppression-unknown-rule", "osctl:ignore names no rule.", line=suppression.line)
        for rule in suppression.rules:
            if rule not in RULES or rule in SUPPRESSION_RULES:
                notes.report(
                    "suppression-unknown-rule",
                    f"osctl:ignore names {rule!r}, which is not a rule osctl reports.",
                    line=suppression.line,
                )
                continue
            matched = [finding for finding in kept if finding.rule == rule]
            if not matched:
                notes.report(
                    "suppression-unused",
                    f"osctl:ignore {rule} matches no finding of this statement.",
                    line=suppression.line,
                )
            kept = [finding for finding in kept if finding.rule != rule]
    return kept + notes.findings


def stray_suppressions(comments: list[Comment], statement_count: int) -> list[Finding]:
    """Suppressions after the last statement apply to nothing."""
    site = Site(max(0, statement_count - 1), 1)
    for comment in comments:
        suppression = parse_suppression(comment)
        if suppression is not None:
            site.report(
                "suppression-unused",
                "this osctl:ignore follows the last statement, so it applies to nothing.",
                line=suppression.line,
            )
    return site.findings
