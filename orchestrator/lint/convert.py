"""PostgreSQL DDL to osctl operations: the statements the catalogue can stage, and for every other
statement the reason it cannot yet.

A statement converts whole or not at all: a multi-command ALTER TABLE is planned only when every
command maps to an operation, so nothing a user wrote is half in the plan. The column, constraint
and table statements are mapped in convert_ddl.py; the reason for the rest names what is missing.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Any

from pglast import ast, enums
from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError

from orchestrator.domain.operations import Operation, OperationEntry
from orchestrator.domain.spec import MigrationSpec, SpecSettings, spec_problems
from orchestrator.lint import convert_ddl
from orchestrator.lint.convert_ddl import NotConvertibleError
from orchestrator.lint.findings import LintReport
from orchestrator.lint.inputs import read_input
from orchestrator.lint.lexer import RawStatement, split_statements
from orchestrator.lint.linter import lint_sql, parse_postgres
from orchestrator.lint.postgres.nodes import (
    contains,
    sql_text,
)
from orchestrator.lint.postgres.session import lock_timeout_ms

_OPERATION = TypeAdapter(OperationEntry)
_INDEX_METHODS = {"btree", "hash", "gin", "gist", "brin"}


class Outcome(StrEnum):
    CONVERTED = "converted"
    SKIPPED = "skipped"  # nothing to plan: the orchestrator does it its own way (BEGIN, SET lock_timeout)
    NOT_CONVERTED = "not-converted"


class StatementNote(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    statement_index: int
    line: int
    sql: str
    outcome: Outcome
    operations: list[str]
    reason: str


class Conversion(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    source: str
    notes: list[StatementNote]
    spec: MigrationSpec | None
    lint: LintReport

    @property
    def complete(self) -> bool:
        return all(note.outcome is not Outcome.NOT_CONVERTED for note in self.notes)


class _NotConvertible(Exception):
    pass


def spec_name(source: str) -> str:
    stem = re.sub(r"\.(sql|log|diff|patch)$", "", source.rsplit("/", 1)[-1].lower())
    slug = re.sub(r"[^a-z0-9_.-]+", "-", stem).strip("-._")[:100]
    return slug or "from-sql"


def convert_sql(text: str, source: str = "migration.sql") -> Conversion:
    """Convert one file of PostgreSQL DDL; raises UnparsableSqlError with the position on bad input."""
    sql_input = read_input(text, "postgres")
    statements = split_statements(sql_input.text, "postgres").statements
    nodes = parse_postgres(sql_input.text, statements)
    notes: list[StatementNote] = []
    operations: list[Operation] = []
    settings: dict[str, int] = {}
    for statement, node in zip(statements, nodes, strict=True):
        timeout = lock_timeout_ms(node) if isinstance(node, ast.VariableSetStmt) else None
        if timeout is not None and 50 <= timeout <= 60_000:  # the range SpecSettings accepts
            settings["lock_timeout_ms"] = timeout
        try:
            converted, skip_reason = _convert(node, {_constraint_name(op) for op in operations})
        except (_NotConvertible, NotConvertibleError) as reason:
            notes.append(statement_note(statement, Outcome.NOT_CONVERTED, [], str(reason)))
            continue
        if skip_reason:
            notes.append(statement_note(statement, Outcome.SKIPPED, [], skip_reason))
            continue
        validated, problems = validate_operations(converted)
        if problems:
            notes.append(statement_note(statement, Outcome.NOT_CONVERTED, [], "; ".join(problems)))
            continue
        operations.extend(validated)
        notes.append(
            statement_note(
                statement, Outcome.CONVERTED, [op.describe() for op in validated], _why(node, validated)
            )
        )
    spec = None
    if operations:
        spec = MigrationSpec(
            name=spec_name(source),
            description=f"Converted from {source} by osctl plan --from-sql.",
            settings=SpecSettings(**settings),
            operations=operations,
        )
    return Conversion(source=source, notes=notes, spec=spec, lint=lint_sql(text, "postgres"))


def writable_spec(spec: MigrationSpec) -> dict[str, Any]:
    """The spec as users write it (each operation a one-key mapping): save it and `osctl apply` it."""
    data: dict[str, Any] = spec.model_dump(mode="json", exclude={"operations"}, exclude_defaults=True)
    data["operations"] = [
        {op.kind: op.model_dump(mode="json", exclude={"kind"}, exclude_defaults=True)} for op in spec.ops()
    ]
    return data


def statement_note(
    statement: RawStatement, outcome: Outcome, operations: list[str], reason: str
) -> StatementNote:
    one_line = " ".join(statement.text.split())
    return StatementNote(
        statement_index=statement.index,
        line=statement.line,
        sql=one_line if len(one_line) <= 120 else one_line[:117] + "...",
        outcome=outcome,
        operations=operations,
        reason=reason,
    )


def validate_operations(candidates: list[dict[str, Any]]) -> tuple[list[Operation], list[str]]:
    """Each operation through the spec's own validation: identifiers, type names, constants."""
    validated: list[Operation] = []
    problems: list[str] = []
    for candidate in candidates:
        try:
            validated.append(_OPERATION.validate_python(candidate))
        except ValidationError as error:
            problems.extend(f"{path}: {message}" for path, message in spec_problems(error))
    return validated, problems


_WHY = (
    (
        "alter_column",
        "planned as a new column kept in sync by triggers, backfilled, and swapped in "
        "contract: no table rewrite under a write-blocking lock",
    ),
    ("rename_column", "planned expand/contract: a synced new column both application versions can use"),
    ("rename_table", "planned expand/contract: the table renamed, a view under the old name until contract"),
    ("add_foreign_key", "planned as NOT VALID in expand and VALIDATE after the backfill: no scan under lock"),
    ("add_check", "planned as NOT VALID in expand and VALIDATE after the backfill: no scan under lock"),
    ("add_unique", "planned as a unique index built CONCURRENTLY, then attached as the constraint"),
    ("drop_table", "planned in contract, after the deploy gate: set aside, dropped after the retention"),
    ("create_table", "planned in the expand stage: a new table has no traffic to block"),
    ("backfill", "planned as a chunked, checkpointed backfill along the primary key instead of one UPDATE"),
    ("drop_column", "planned in the contract stage, after the deploy gate"),
)


def _why(node: ast.Node, operations: list[Operation]) -> str:
    kinds = {op.kind for op in operations}
    if isinstance(node, ast.IndexStmt) and not node.concurrent:
        return "planned as CREATE INDEX CONCURRENTLY: writes continue during the build"
    for kind, reason in _WHY:
        if kind in kinds:
            return reason
    return "planned in the expand stage under lock_timeout with retries"


def _constraint_name(op: Operation) -> str | None:
    return getattr(op, "name", None) if op.kind in ("add_foreign_key", "add_check", "add_unique") else None


def _validate_only(node: ast.AlterTableStmt, added: set[str | None]) -> str | None:
    """The skip reason for `ALTER TABLE ... VALIDATE CONSTRAINT c` after this file adds c."""
    cmds = node.cmds or ()
    if cmds and all(cmd.subtype == enums.AlterTableType.AT_ValidateConstraint for cmd in cmds):
        if all(cmd.name in added for cmd in cmds):
            return "the add_* operation above validates it itself, after the backfill"
        raise _NotConvertible(
            "VALIDATE CONSTRAINT of a constraint this file does not add: it takes SHARE UPDATE EXCLUSIVE "
            "(writes continue), so run it as written"
        )
    return None


def _convert(node: ast.Node, added: set[str | None] | None = None) -> tuple[list[dict[str, Any]], str]:
    """(operations, skip reason); raises _NotConvertible with the reason."""
    match node:
        case ast.TransactionStmt():
            return [], "each step runs in its own transaction (CONCURRENTLY steps outside one)"
        case ast.VariableSetStmt() if (node.name or "").lower() == "lock_timeout":
            return [], "becomes settings.lock_timeout_ms; every DDL step runs under it and is retried"
        case ast.VariableSetStmt():
            raise _NotConvertible(f"session setting {node.name}: the orchestrator's steps do not run it")
        case ast.AlterTableStmt():
            skip = _validate_only(node, added or set())
            if skip is not None:
                return [], skip
            return _alter_table(node), ""
        case ast.IndexStmt():
            return [_create_index(node)], ""
        case ast.UpdateStmt():
            return _update(node), ""
        case ast.CreateStmt():
            return [convert_ddl.create_table(node)], ""
        case ast.DropStmt() if node.removeType == enums.ObjectType.OBJECT_INDEX:
            raise _NotConvertible(
                "DROP INDEX does not name the index's table, which drop_index needs: write "
                "'drop_index: {table: ..., name: ...}' in the spec (it drops CONCURRENTLY in contract)"
            )
        case ast.DropStmt() if node.removeType == enums.ObjectType.OBJECT_TABLE:
            return convert_ddl.drop_table(node), ""
        case ast.RenameStmt() if node.renameType in (
            enums.ObjectType.OBJECT_COLUMN,
            enums.ObjectType.OBJECT_TABLE,
        ):
            return [convert_ddl.rename(node)], ""
        case ast.DeleteStmt():
            raise _NotConvertible("a batched delete is not in the operation catalogue yet")
        case ast.VacuumStmt() | ast.ClusterStmt() | ast.ReindexStmt():
            raise _NotConvertible(
                "maintenance, not a schema change: run it by hand (pg_repack, REINDEX CONCURRENTLY)"
            )
        case _:
            kind = type(node).__name__.removesuffix("Stmt")
            raise _NotConvertible(f"no operation for {kind} statements in the catalogue yet")


def _table(relation: ast.RangeVar | None) -> str:
    try:
        return convert_ddl.table_of(relation)
    except NotConvertibleError as error:
        raise _NotConvertible(str(error)) from error


def _alter_table(node: ast.AlterTableStmt) -> list[dict[str, Any]]:
    table = _table(node.relation)
    operations: list[dict[str, Any]] = []
    reasons: list[str] = []
    for cmd in node.cmds or ():
        try:
            _merge(operations, _alter_command(table, cmd))
        except (_NotConvertible, NotConvertibleError) as reason:
            reasons.append(str(reason))
    if reasons:
        raise _NotConvertible("; ".join(reasons))
    return operations


def _merge(operations: list[dict[str, Any]], operation: dict[str, Any]) -> None:
    """`ALTER COLUMN a TYPE bigint, ALTER COLUMN a SET NOT NULL` is one alter_column of `a`."""
    change = operation.get("alter_column")
    if change is not None:
        for earlier in operations:
            same = earlier.get("alter_column")
            if same is not None and same["column"] == change["column"]:
                same.update(change)
                return
    operations.append(operation)


_ALTER_COLUMN = frozenset(
    {
        enums.AlterTableType.AT_AlterColumnType,
        enums.AlterTableType.AT_SetNotNull,
        enums.AlterTableType.AT_DropNotNull,
        enums.AlterTableType.AT_ColumnDefault,
    }
)
_MISSING_KINDS = {
    enums.AlterTableType.AT_ValidateConstraint: "VALIDATE CONSTRAINT together with other changes: give it a "
    "statement of its own",
    enums.AlterTableType.AT_DropConstraint: "drop_constraint is not in the catalogue yet",
}


def _alter_command(table: str, cmd: ast.AlterTableCmd) -> dict[str, Any]:
    subtype = cmd.subtype
    if subtype == enums.AlterTableType.AT_AddColumn and isinstance(cmd.def_, ast.ColumnDef):
        column = convert_ddl.column_definition(cmd.def_, new_table=False)
        return {"add_column": {"table": table, "column": column}}
    if subtype == enums.AlterTableType.AT_DropColumn:
        if cmd.behavior == enums.DropBehavior.DROP_CASCADE:
            raise _NotConvertible(
                f"DROP COLUMN {cmd.name} CASCADE drops dependent objects; drop_column does not"
            )
        return {"drop_column": {"table": table, "column": cmd.name}}
    if subtype == enums.AlterTableType.AT_AddConstraint and isinstance(cmd.def_, ast.Constraint):
        return convert_ddl.add_constraint(table, cmd.def_)
    if subtype in _ALTER_COLUMN:
        return convert_ddl.alter_column(table, cmd)
    if subtype in _MISSING_KINDS:
        raise _NotConvertible(_MISSING_KINDS[subtype])
    label = subtype.name.removeprefix("AT_") if subtype is not None else "subcommand"
    raise _NotConvertible(f"no operation for ALTER TABLE {label} in the catalogue yet")


def _create_index(node: ast.IndexStmt) -> dict[str, Any]:
    table = _table(node.relation)
    if node.indexIncludingParams:
        raise _NotConvertible("INCLUDE columns: create_index takes key columns and expressions only")
    method = (node.accessMethod or "btree").lower()
    if method not in _INDEX_METHODS:
        raise _NotConvertible(
            f"index method {method}: create_index knows {', '.join(sorted(_INDEX_METHODS))}"
        )
    columns: list[str] = []
    expressions: list[str] = []
    for element in node.indexParams or ():
        plain_options = (
            isinstance(element, ast.IndexElem)
            and not element.opclass
            and not element.collation
            and element.ordering == enums.SortByDir.SORTBY_DEFAULT
            and element.nulls_ordering == enums.SortByNulls.SORTBY_NULLS_DEFAULT
        )
        if not plain_options:
            raise _NotConvertible(
                "an operator class, collation or ordering in the index: create_index takes none"
            )
        assert isinstance(element, ast.IndexElem)
        if element.expr is not None:
            expressions.append(sql_text(element.expr))
        elif expressions:
            raise _NotConvertible("a plain column after an expression: create_index lists columns first")
        elif element.name is not None:
            columns.append(element.name)
    # PostgreSQL's own choice for an unnamed index, so the plan names what the database would.
    label = "_".join(columns) or "expr"
    name = node.idxname or f"{table}_{label}_{'key' if node.unique else 'idx'}"[:63]
    operation: dict[str, Any] = {
        "table": table,
        "name": name,
        "columns": columns,
        "unique": bool(node.unique),
        "method": method,
    }
    if expressions:
        operation["expressions"] = expressions
    if node.whereClause is not None:
        operation["where"] = sql_text(node.whereClause)
    return {"create_index": operation}


def _update(node: ast.UpdateStmt) -> list[dict[str, Any]]:
    table = _table(node.relation)
    # pglast 8 (PostgreSQL 18) calls it returningClause; earlier releases returningList.
    returning = getattr(node, "returningClause", None) or getattr(node, "returningList", None)
    if node.fromClause or returning or node.withClause:
        raise _NotConvertible(
            "UPDATE with FROM, RETURNING or WITH: a backfill sets a column from its own row only"
        )
    targets = [target for target in node.targetList or () if isinstance(target, ast.ResTarget)]
    names = {target.name for target in targets if target.name is not None}
    operations = []
    for target in targets:
        if target.indirection or target.name is None or isinstance(target.val, ast.MultiAssignRef):
            raise _NotConvertible("a multi-column or subscripted SET: a backfill sets one whole column")
        if contains(target.val, ast.SubLink) or contains(node.whereClause, ast.SubLink):
            raise _NotConvertible("a subquery: a backfill expression reads only the row being updated")
        if len(targets) > 1 and any(_reads(target.val, other) for other in names):
            raise _NotConvertible(
                "SET expressions read columns the same UPDATE sets: separate backfills would differ"
            )
        expression = sql_text(target.val)
        if node.whereClause is not None:
            # Rows the WHERE does not match keep their value, so the backfill skips them as already right.
            expression = f"CASE WHEN {sql_text(node.whereClause)} THEN {expression} ELSE {target.name} END"
        operations.append({"backfill": {"table": table, "column": target.name, "expression": expression}})
    return operations


def _reads(node: ast.Node | None, column: str) -> bool:
    if isinstance(node, ast.ColumnRef):
        fields = [field.sval for field in node.fields or () if isinstance(field, ast.String)]
        return bool(fields) and fields[-1] == column
    if isinstance(node, ast.Node):
        return any(_reads_value(getattr(node, attribute), column) for attribute in node)
    return False


def _reads_value(value: object, column: str) -> bool:
    if isinstance(value, ast.Node):
        return _reads(value, column)
    if isinstance(value, tuple | list):
        return any(_reads_value(item, column) for item in value)
    return False
