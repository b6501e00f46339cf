"""MySQL/MariaDB DDL to osctl operations, for `plan --from-sql --engine mysql`.

Every ALTER TABLE becomes one `alter_table` operation carrying its clauses, so the planner picks how
it runs (the server's own INSTANT/INPLACE change, gh-ost or pt-online-schema-change) and refuses what
no tool can do; CREATE INDEX and DROP INDEX become the same ALTER. ALGORITHM= and LOCK= clauses are
dropped: the strategy is the planner's to choose, and a LOCK=NONE the server cannot honour would
fail the statement rather than make it safe.
"""

from __future__ import annotations

import re
from typing import Any

from orchestrator.domain.operations import Operation
from orchestrator.domain.spec import MigrationSpec
from orchestrator.lint import lint_sql
from orchestrator.lint.convert import (
    Conversion,
    Outcome,
    StatementNote,
    spec_name,
    statement_note,
    validate_operations,
)
from orchestrator.lint.lexer import split_statements

_NAME = r"`[^`]+`|[A-Za-z0-9_$.]+"
_ALTER = re.compile(
    rf"^ALTER\s+(?:ONLINE\s+)?TABLE\s+(?P<table>{_NAME})\s+(?P<clauses>.+)$", re.IGNORECASE | re.DOTALL
)
_CREATE_INDEX = re.compile(
    rf"^CREATE\s+(?P<kind>UNIQUE\s+|FULLTEXT\s+|SPATIAL\s+)?INDEX\s+(?P<name>{_NAME})\s+ON\s+"
    rf"(?P<table>{_NAME})\s*(?P<keys>\(.+\))(?P<rest>.*)$",
    re.IGNORECASE | re.DOTALL,
)
_DROP_INDEX = re.compile(rf"^DROP\s+INDEX\s+(?P<name>{_NAME})\s+ON\s+(?P<table>{_NAME})(?P<rest>.*)$", re.I)
_STRATEGY_CLAUSE = re.compile(r"^(ALGORITHM|LOCK)\s*=?\s*\w+$", re.IGNORECASE)
_RENAME_TABLE = re.compile(r"^RENAME(\s+(TO|AS))?\s+(?!COLUMN\b|INDEX\b|KEY\b)", re.IGNORECASE)
_SKIPPED = re.compile(r"^(BEGIN|START\s+TRANSACTION|COMMIT|SET\s+(SESSION\s+)?lock_wait_timeout\b)", re.I)


class _NotConvertible(Exception):
    pass


def convert_mysql_sql(text: str, source: str = "migration.sql") -> Conversion:
    statements = split_statements(text, "mysql").statements
    notes: list[StatementNote] = []
    operations: list[Operation] = []
    for statement in statements:
        if _SKIPPED.match(statement.text.strip()):
            notes.append(
                statement_note(
                    statement, Outcome.SKIPPED, [], "each step runs on its own; osctl sets its own waits"
                )
            )
            continue
        try:
            validated, problems = validate_operations([_convert(statement.text.strip())])
        except _NotConvertible as reason:
            notes.append(statement_note(statement, Outcome.NOT_CONVERTED, [], str(reason)))
            continue
        if problems:
            notes.append(statement_note(statement, Outcome.NOT_CONVERTED, [], "; ".join(problems)))
            continue
        [operation] = validated
        operations.append(operation)
        notes.append(
            statement_note(
                statement,
                Outcome.CONVERTED,
                [operation.describe()],
                "planned as an online change: the server's INSTANT/INPLACE when it can, else a copy tool "
                "with throttling and a cut-over after verification",
            )
        )
    spec = None
    if operations:
        spec = MigrationSpec(
            name=spec_name(source),
            description=f"Converted from {source} by osctl plan --from-sql --engine mysql.",
            operations=operations,
        )
    return Conversion(source=source, notes=notes, spec=spec, lint=lint_sql(text, "mysql"))


def _convert(text: str) -> dict[str, Any]:
    if match := _ALTER.match(text):
        return _alter(_table(match["table"]), match["clauses"])
    if match := _CREATE_INDEX.match(text):
        if match["rest"].strip():
            raise _NotConvertible(
                f"index options after the key list ({match['rest'].strip()}): write them as ALTER"
            )
        kind = (match["kind"] or "").strip().upper()
        clause = f"ADD {kind + ' ' if kind else ''}INDEX {_bare(match['name'])} {match['keys'].strip()}"
        return {"alter_table": {"table": _table(match["table"]), "alter": clause}}
    if match := _DROP_INDEX.match(text):
        if match["rest"].strip():
            raise _NotConvertible("ALGORITHM/LOCK options on DROP INDEX: osctl chooses the strategy")
        return {
            "alter_table": {"table": _table(match["table"]), "alter": f"DROP INDEX {_bare(match['name'])}"}
        }
    keyword = " ".join(text.split()[:2]).upper()
    raise _NotConvertible(
        f"{keyword}: no operation for it on MySQL yet (ALTER TABLE and CREATE/DROP INDEX are)"
    )


def _alter(table: str, clauses_text: str) -> dict[str, Any]:
    clauses = [clause for clause in _split_clauses(clauses_text) if not _STRATEGY_CLAUSE.match(clause)]
    if not clauses:
        raise _NotConvertible("only ALGORITHM/LOCK clauses: nothing to change")
    for clause in clauses:
        if _RENAME_TABLE.match(clause):
            raise _NotConvertible("renaming the table: no copy tool renames tables; no operation for it yet")
        if clause.upper().startswith(("PARTITION", "ADD PARTITION", "DROP PARTITION", "DISCARD", "IMPORT")):
            raise _NotConvertible(
                f"{clause.split()[0]} ...: partition and tablespace changes are not planned"
            )
    return {"alter_table": {"table": table, "alter": ", ".join(clauses)}}


def _split_clauses(text: str) -> list[str]:
    """Top-level commas only: not those inside parentheses or quotes (types, key lists, comments)."""
    clauses: list[str] = []
    depth, quote, start = 0, "", 0
    for position, char in enumerate(text):
        if quote:
            if char == quote:
                quote = ""
        elif char in "'\"`":
            quote = char
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "," and depth == 0:
            clauses.append(text[start:position].strip())
            start = position + 1
    clauses.append(text[start:].strip())
    return [clause for clause in clauses if clause]


def _bare(name: str) -> str:
    return name.strip("`")


def _table(name: str) -> str:
    parts = [_bare(part) for part in re.findall(r"`[^`]+`|[^.]+", name)]
    if len(parts) > 1:
        raise _NotConvertible(f"table {name}: specs name tables in the target's own database only")
    return parts[0]
