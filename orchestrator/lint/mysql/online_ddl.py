"""The verdict on one MySQL ALTER: its changes looked up for the server version, then the ALGORITHM
and LOCK clauses it states. A stated ALGORITHM=INPLACE/INSTANT or LOCK=NONE makes the server refuse
what it cannot do that way, so such a statement fails rather than blocks: that is no risk to traffic.
"""

from __future__ import annotations

from dataclasses import dataclass

from orchestrator.lint.findings import Severity
from orchestrator.lint.mysql.versions import UNCERTAIN, Algorithm, Change, ServerVersion, algorithm_for
from orchestrator.lint.rules import Site

_HINTS: dict[Change, str] = {
    Change.ADD_COLUMN: "ADD COLUMN is INSTANT on MySQL 8.0.12+ and MariaDB 10.3+; on older servers use "
    "gh-ost or pt-online-schema-change.",
    Change.ADD_COLUMN_POSITIONED: "Add the column last (no FIRST/AFTER): INSTANT on MySQL 8.0.12+ and "
    "MariaDB 10.3+; positioned adds are INSTANT from MySQL 8.0.29 and MariaDB 10.4.",
    Change.DROP_COLUMN: "DROP COLUMN is INSTANT from MySQL 8.0.29 and MariaDB 10.4; before that use "
    "gh-ost or pt-online-schema-change on large tables.",
    Change.ADD_FOREIGN_KEY: "SET foreign_key_checks = 0 for the session so it runs INPLACE (after "
    "checking for orphans yourself), or use pt-online-schema-change.",
    Change.MODIFY_COLUMN: "State ALGORITHM=INPLACE, LOCK=NONE (or ALGORITHM=INSTANT) so the server "
    "refuses rather than copies; for a real type change use gh-ost or pt-online-schema-change.",
}


@dataclass(frozen=True)
class AlterClauses:
    algorithm: str | None = None  # INSTANT, INPLACE, NOCOPY (MariaDB), COPY, DEFAULT
    lock: str | None = None  # NONE, SHARED, EXCLUSIVE, DEFAULT

    @property
    def demands_online(self) -> bool:
        return self.algorithm in ("INPLACE", "NOCOPY") or self.lock == "NONE"


def judge(
    table: str, changes: list[Change], clauses: AlterClauses, version: ServerVersion, site: Site
) -> None:
    if not changes:
        return
    outcomes = [(change, algorithm_for(change, version)) for change in changes]
    rejected = [change for change, algorithm in outcomes if algorithm is Algorithm.UNSUPPORTED]
    if rejected:
        site.report(
            "mysql-not-supported",
            f"{version} rejects {_names(rejected)}: the statement fails without touching {table}.",
        )
        return
    worst = max(algorithm for _, algorithm in outcomes)
    culprits = [change for change, algorithm in outcomes if algorithm == worst]
    certain = not any(change in UNCERTAIN for change in culprits)
    alternative = next((_HINTS[change] for change in culprits if change in _HINTS), None)

    if clauses.algorithm == "INSTANT":
        if not version.supports_instant_clause:
            site.report("mysql-not-supported", f"{version} has no ALGORITHM=INSTANT: the statement fails.")
        elif worst > Algorithm.INSTANT and certain:
            site.report(
                "mysql-not-supported",
                f"{version} cannot do {_names(culprits)} instantly, so ALGORITHM=INSTANT makes the "
                f"statement fail without touching {table}.",
                safe_alternative=alternative,
            )
        return
    if clauses.algorithm == "COPY" or clauses.lock in ("SHARED", "EXCLUSIVE"):
        stated = f"ALGORITHM={clauses.algorithm}" if clauses.algorithm == "COPY" else f"LOCK={clauses.lock}"
        site.report(
            "mysql-blocking-alter",
            f"{stated} on {table}: writes wait until the whole operation is done.",
            safe_alternative=alternative,
        )
        return
    if clauses.demands_online and (
        worst == Algorithm.COPY or (worst == Algorithm.SHARED and clauses.lock == "NONE")
    ):
        if certain:
            site.report(
                "mysql-not-supported",
                f"{version} cannot do {_names(culprits)} without blocking writes, so the stated "
                f"ALGORITHM/LOCK makes the statement fail without touching {table}.",
                safe_alternative=alternative,
            )
        return
    if worst >= Algorithm.SHARED:
        if certain:
            how = "copies the table (ALGORITHM=COPY)" if worst == Algorithm.COPY else "runs with LOCK=SHARED"
            message = (
                f"{_names(culprits)} on {table} {how} on {version}: writes wait for the whole operation."
            )
        else:
            message = (
                f"{_names(culprits)} on {table}: osctl cannot see the old definition. If the type changes, "
                f"{version} copies the table and writes wait throughout; if only NULL/NOT NULL changes it "
                "rebuilds in place; only a new default or an appended ENUM value is instant."
            )
        site.report(
            "mysql-blocking-alter",
            message,
            severity=Severity.ERROR if certain else Severity.WARNING,
            safe_alternative=alternative,
        )
    elif worst == Algorithm.REBUILD:
        site.report(
            "mysql-table-rebuild",
            f"{_names(culprits)} rebuilds {table} in place on {version}: writes continue, but the rebuild "
            "runs as long as a full copy and replicas apply it afterwards, lagging by as long.",
            safe_alternative=alternative,
        )


def _names(changes: list[Change]) -> str:
    return ", ".join(dict.fromkeys(change.value for change in changes))
