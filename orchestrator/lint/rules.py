"""The rule catalogue: every rule's id, default severity, what it guards against and the safe way.

Engines' analysers report by rule id through `Site.report`; a finding may carry a more specific
message, severity or alternative than the default here, but never an id missing from this table
(suppressions are checked against it).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from orchestrator.lint.findings import Finding, Severity


@dataclass(frozen=True)
class Rule:
    id: str
    severity: Severity
    summary: str
    safe_alternative: str


_E, _W, _I = Severity.ERROR, Severity.WARNING, Severity.INFO

RULES: dict[str, Rule] = {
    rule.id: rule
    for rule in (
        Rule(
            "create-index-non-concurrent",
            _E,
            "CREATE INDEX without CONCURRENTLY blocks every write to the table for the whole build.",
            "CREATE INDEX CONCURRENTLY, outside a transaction block (osctl's create_index does this).",
        ),
        Rule(
            "drop-index-non-concurrent",
            _W,
            "DROP INDEX without CONCURRENTLY takes ACCESS EXCLUSIVE on the table: it queues behind every "
            "running query and blocks reads and writes queued behind it.",
            "DROP INDEX CONCURRENTLY, outside a transaction block.",
        ),
        Rule(
            "add-column-volatile-default",
            _E,
            "ADD COLUMN with a volatile default rewrites the whole table under ACCESS EXCLUSIVE.",
            "Add the column without a default (or with a constant one), set the default for new rows, "
            "then backfill existing rows in batches (osctl add_column + backfill).",
        ),
        Rule(
            "not-null-column-without-default",
            _E,
            "A NOT NULL column without a default fails on a table with rows, and where it succeeds the "
            "running application's INSERTs that do not name it fail.",
            "Add it nullable (or with a constant default), backfill, then add the NOT NULL constraint "
            "once the new code writes it.",
        ),
        Rule(
            "set-not-null",
            _E,
            "SET NOT NULL scans the whole table under ACCESS EXCLUSIVE.",
            "ADD CONSTRAINT ... CHECK (col IS NOT NULL) NOT VALID; VALIDATE CONSTRAINT ...; then SET NOT "
            "NULL uses the validated constraint and skips the scan (PostgreSQL 12+).",
        ),
        Rule(
            "constraint-without-not-valid",
            _E,
            "ADD CONSTRAINT (FOREIGN KEY, CHECK) validates every row while holding a lock that blocks "
            "writes.",
            "ADD CONSTRAINT ... NOT VALID, then VALIDATE CONSTRAINT in a separate statement: it holds "
            "only SHARE UPDATE EXCLUSIVE while it scans.",
        ),
        Rule(
            "unique-constraint-without-index",
            _E,
            "ADD UNIQUE / PRIMARY KEY builds its index under ACCESS EXCLUSIVE: reads and writes wait "
            "for the whole build.",
            "CREATE UNIQUE INDEX CONCURRENTLY ..., then ADD CONSTRAINT ... UNIQUE USING INDEX ... "
            "(or PRIMARY KEY USING INDEX).",
        ),
        Rule(
            "alter-column-type",
            _E,
            "ALTER COLUMN TYPE rewrites the table and rebuilds its indexes under ACCESS EXCLUSIVE.",
            "Expand/contract: add a column of the new type, keep it in sync with a trigger, backfill in "
            "batches, switch the application, then drop the old column.",
        ),
        Rule(
            "rename-column",
            _E,
            "Renaming a column breaks the running application, which still uses the old name.",
            "Expand/contract: add the new column, write both, backfill, move reads, then drop the old "
            "one (or a view with the old name while the code moves).",
        ),
        Rule(
            "rename-table",
            _E,
            "Renaming a table breaks the running application, which still uses the old name.",
            "Create the new name as an updatable view (or the reverse), move the code, then swap.",
        ),
        Rule(
            "drop-column",
            _W,
            "Dropping a column loses its data and breaks code that still reads or writes it.",
            "Stop using the column in a deployed release first (Rails: ignored_columns), then drop it "
            "in the contract stage (osctl drop_column runs only after the deploy gate).",
        ),
        Rule(
            "drop-table",
            _W,
            "Dropping a table loses its data and breaks code that still uses it.",
            "Make sure no deployed code uses it (rename it aside first if in doubt), then drop it in a "
            "later release.",
        ),
        Rule(
            "table-rewrite",
            _E,
            "This ALTER TABLE rewrites the whole table under ACCESS EXCLUSIVE: nothing reads or writes it "
            "meanwhile.",
            "pg_repack (it can move tablespaces too), or a new table filled in batches and swapped in.",
        ),
        Rule(
            "lock-table",
            _E,
            "An explicit table lock that blocks writes (and, in ACCESS EXCLUSIVE mode, reads) until the "
            "transaction ends: everything the transaction does after it runs with the table closed.",
            "Drop the explicit lock: take only the locks each statement needs, each under lock_timeout, "
            "and keep the work under it short (batches).",
        ),
        Rule(
            "vacuum-full",
            _E,
            "VACUUM FULL rewrites the table under ACCESS EXCLUSIVE: nothing reads or writes it meanwhile.",
            "Plain VACUUM, or pg_repack / pg_squeeze to reclaim space online.",
        ),
        Rule(
            "cluster",
            _E,
            "CLUSTER rewrites the table under ACCESS EXCLUSIVE: nothing reads or writes it meanwhile.",
            "pg_repack --order-by to reorder online.",
        ),
        Rule(
            "reindex-non-concurrent",
            _E,
            "REINDEX without CONCURRENTLY blocks writes to the table (and reads that use the index).",
            "REINDEX ... CONCURRENTLY (PostgreSQL 12+), outside a transaction block.",
        ),
        Rule(
            "integer-primary-key",
            _W,
            "A 32-bit (or smaller) primary key runs out of values; when it does, every insert fails.",
            "bigint / bigserial (BIGINT AUTO_INCREMENT on MySQL), or a UUID.",
        ),
        Rule(
            "unbatched-data-change",
            _E,
            "One UPDATE/DELETE over many rows locks them all for one long transaction, bloats the "
            "table and lags replicas.",
            "Batches of a few thousand rows along the primary key, each its own transaction "
            "(osctl backfill does this for UPDATE).",
        ),
        Rule(
            "concurrently-in-transaction",
            _I,
            "CONCURRENTLY cannot run inside a transaction block: the statement fails (and rolls back the "
            "transaction) without touching the table.",
            "Run it outside BEGIN/COMMIT (Rails: disable_ddl_transaction!, Ecto: "
            "@disable_ddl_transaction true, Django: atomic = False).",
        ),
        Rule(
            "lock-timeout-missing",
            _I,
            "No lock timeout is set before DDL: a lock request stuck behind a long transaction queues "
            "every later query on the table. osctl sets one itself when it runs a plan.",
            "SET lock_timeout = '1s' (MySQL: SET SESSION lock_wait_timeout = 1) and retry on timeout.",
        ),
        Rule(
            "mysql-blocking-alter",
            _E,
            "This change cannot run online on the server version: ALGORITHM=COPY or LOCK=SHARED blocks "
            "writes for as long as the table takes to copy.",
            "gh-ost or pt-online-schema-change for this change; state ALGORITHM=INPLACE, LOCK=NONE (or "
            "ALGORITHM=INSTANT) so the server refuses instead of blocking.",
        ),
        Rule(
            "mysql-table-rebuild",
            _W,
            "This change rebuilds the table in place: writes continue, but the rebuild runs for the "
            "table's whole size and replicas apply it afterwards, lagging by as long.",
            "gh-ost or pt-online-schema-change for large tables (throttled on replica lag).",
        ),
        Rule(
            "mysql-not-supported",
            _I,
            "The server version rejects this statement as written: it fails without touching the table.",
            "Use the form this server version accepts.",
        ),
        Rule(
            "unanalysed-alter",
            _W,
            "osctl could not read this ALTER well enough to tell how it locks the table.",
            "Check it by hand; on MySQL state ALGORITHM=INPLACE, LOCK=NONE so the server refuses rather "
            "than blocks.",
        ),
        Rule(
            "suppression-without-reason",
            _I,
            "A suppression must say why the finding does not apply; this one is ignored.",
            "-- osctl:ignore <rule> reason: <why it is safe here>",
        ),
        Rule(
            "suppression-unknown-rule",
            _I,
            "A suppression names a rule osctl does not have.",
            "Use a rule id from `osctl lint` output.",
        ),
        Rule(
            "suppression-unused",
            _I,
            "A suppression matches no finding of its statement.",
            "Remove it, or move it next to the statement it is meant for.",
        ),
    )
}

SUPPRESSION_RULES = frozenset(
    {"suppression-without-reason", "suppression-unknown-rule", "suppression-unused"}
)


@dataclass
class Site:
    """One statement being linted: where findings about it point, and the findings so far."""

    index: int
    line: int
    findings: list[Finding] = field(default_factory=list)

    def report(
        self,
        rule_id: str,
        message: str | None = None,
        *,
        severity: Severity | None = None,
        safe_alternative: str | None = None,
        line: int | None = None,
    ) -> None:
        rule = RULES[rule_id]
        finding = Finding(
            rule=rule.id,
            severity=severity or rule.severity,
            statement_index=self.index,
            line=line or self.line,
            message=message or rule.summary,
            safe_alternative=safe_alternative or rule.safe_alternative,
        )
        if finding not in self.findings:  # one statement may reach the same verdict twice (branches)
            self.findings.append(finding)
