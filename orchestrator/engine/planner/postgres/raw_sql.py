"""raw_sql: statements the catalogue does not cover, run as written, undone by their `down`.

Raw is raw: nothing is refused for being risky, but the plan says what it risks. The declared lock
level and the linter's findings (orchestrator/lint: blocking locks, rewrites, unbatched updates) go
into the step's risk, so the change ticket shows them next to the SQL. Refused are only statements
that cannot work as given: unparsable ones, transaction control (osctl owns the transaction), and
statements PostgreSQL will not run inside a transaction block when `transactional` is true.

`transactional: true` runs all the statements in one transaction: one step, all or nothing.
`transactional: false` runs each statement as its own step (CREATE INDEX CONCURRENTLY, VACUUM), each
checkpointed; the `down` runs once, its statements one by one, if any of them was started.
"""

from __future__ import annotations

from pglast import ast, parse_sql
from pglast.parser import ParseError

from orchestrator.domain.errors import SpecError
from orchestrator.domain.operations import RawSql
from orchestrator.domain.plan import Stage, Step, StepAction
from orchestrator.engine.planner.context import PlanContext, step_id
from orchestrator.lint import UnparsableSqlError, lint_sql
from orchestrator.lint.findings import Severity
from orchestrator.lint.lexer import split_statements

LOCKS = {
    "none": "no table lock",
    "access_share": "ACCESS SHARE: only ACCESS EXCLUSIVE (DDL) waits for it",
    "row_share": "ROW SHARE: only EXCLUSIVE and ACCESS EXCLUSIVE wait for it",
    "row_exclusive": "ROW EXCLUSIVE: the rows written stay locked until commit; DDL waits",
    "share_update_exclusive": "SHARE UPDATE EXCLUSIVE: reads and writes go on; other DDL and VACUUM wait",
    "share": "SHARE: reads go on, every write waits while it is held",
    "share_row_exclusive": "SHARE ROW EXCLUSIVE: reads go on, every write waits while it is held",
    "exclusive": "EXCLUSIVE: only plain reads go on; every write waits while it is held",
    "access_exclusive": "ACCESS EXCLUSIVE: every read and write waits while it is held",
}
# osctl sets lock_timeout itself for every step.
_IGNORED_RULES = frozenset({"lock-timeout-missing"})


def plan(op: RawSql, index: int, context: PlanContext) -> None:
    statements = split_checked(op.sql, "sql", transactional=op.transactional)
    if op.down is not None:
        split_checked(op.down, "down", transactional=op.transactional)
    stage = Stage.EXPAND if op.stage == "expand" else Stage.CONTRACT
    risk = risk_text(op, len(statements))
    chunks = [op.sql.strip()] if op.transactional else statements
    for number, sql in enumerate(chunks, start=1):
        suffix = op.table if len(chunks) == 1 else f"{op.table}.{number}"
        forward_id = step_id(stage, index, op.kind, suffix)
        first = number == 1
        rollback = None
        if first and op.down is not None:
            # The whole `down`, once, whichever of the statements were started.
            rollback = Step(
                id=f"rollback.{forward_id}",
                stage=Stage.ROLLBACK,
                operation_index=index,
                action=StepAction.DDL,
                description=f"raw sql down on {op.table}",
                sql=op.down.strip(),
                transactional=op.transactional,
                table=op.table,
                lock_timeout_ms=context.lock_timeout_ms,
            )
        description = op.describe()
        if len(chunks) > 1:
            undone = "" if first or op.down is None else f"; undone by the down of 1/{len(chunks)}"
            description += f" ({number}/{len(chunks)}{undone})"
        context.add(
            Step(
                id=forward_id,
                stage=stage,
                operation_index=index,
                action=StepAction.DDL,
                description=description,
                sql=sql,
                transactional=op.transactional,
                table=op.table,
                lock_timeout_ms=context.lock_timeout_ms,
                risk=risk,
                estimate=(
                    "unknown to osctl (raw SQL): time it on a copy of the table; each attempt waits at "
                    "most lock_timeout for its locks"
                ),
                rollback=rollback,
                irreversible_reason="raw_sql declared irreversible: true" if op.irreversible else None,
            )
        )


def split_checked(text: str, field: str, *, transactional: bool) -> list[str]:
    """The statements of `text`, each parsed; SpecError (at `field`) for those that cannot run here."""
    problems: list[tuple[str, str]] = []
    statements: list[str] = []
    for raw in split_statements(text, "postgres").statements:
        where = f"statement {raw.index + 1} (line {raw.line})"
        try:
            nodes = parse_sql(raw.text)
        except ParseError as error:
            problems.append((field, f"{where} does not parse: {error}"))
            continue
        for node in nodes:
            statement = node.stmt
            if isinstance(statement, ast.TransactionStmt):
                problems.append(
                    (
                        field,
                        f"{where} is transaction control: osctl runs the statements in one transaction "
                        "(transactional: true) or each on its own (false); remove it",
                    )
                )
            elif transactional and _needs_autocommit(statement):
                problems.append(
                    (
                        "transactional",
                        f"{where} of '{field}' cannot run inside a transaction block: set "
                        "'transactional: false'",
                    )
                )
        statements.append(raw.text.strip())
    if not statements and not problems:
        problems.append((field, "holds no SQL statement"))
    if problems:
        raise SpecError(problems)
    return statements


def _needs_autocommit(statement: ast.Node | None) -> bool:
    if isinstance(statement, ast.IndexStmt | ast.DropStmt):
        return bool(statement.concurrent)
    if isinstance(statement, ast.ReindexStmt):
        return any(
            isinstance(param, ast.DefElem) and param.defname == "concurrently"
            for param in statement.params or ()
        )
    return isinstance(statement, ast.VacuumStmt | ast.AlterSystemStmt | ast.CreatedbStmt | ast.DropdbStmt)


def risk_text(op: RawSql, statements: int) -> str:
    how = (
        f"{statements} statement(s) in one transaction"
        if op.transactional
        else f"{statements} statement(s), each in its own step outside a transaction"
    )
    text = f"Declared lock on {op.table}: {LOCKS[op.lock]}; requested under lock_timeout. {how}."
    if _builds_index_concurrently(op.sql):
        text += (
            " A CONCURRENTLY build that fails leaves an INVALID index, which IF NOT EXISTS then keeps: "
            "the create_index operation drops it before retrying, raw SQL does not."
        )
    findings = _lint(op.sql)
    if findings:
        text += " Lint: " + " ".join(findings)
    return text


def _builds_index_concurrently(sql: str) -> bool:
    return any(
        isinstance(node.stmt, ast.IndexStmt) and node.stmt.concurrent
        for raw in split_statements(sql, "postgres").statements
        for node in parse_sql(raw.text)
    )


def _lint(sql: str) -> list[str]:
    try:
        report = lint_sql(sql, "postgres")
    except UnparsableSqlError:  # pragma: no cover - split_checked parsed every statement already
        return []
    return [
        f"[{finding.severity.value}] {finding.rule} (statement {finding.statement_index + 1}): "
        f"{finding.message} Safer: {finding.safe_alternative}"
        for finding in report.findings
        if finding.rule not in _IGNORED_RULES and finding.severity is not Severity.INFO
    ]
