"""PostgreSQL DDL to osctl operations: the statements the catalogue can stage, and for every other
statement the reason it cannot yet.

A statement converts whole or not at all: a multi-command ALTER TABLE is planned only when every
command maps to an operation, so nothing a user wrote is half in the plan. Only the operation kinds
that exist (add_column, create_index, backfill, drop_column) are produced; the reason for the rest
names the operation it would need.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Any

from pglast import ast, enums
from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError

from orchestrator.domain.operations import Operation, OperationEntry
from orchestrator.domain.spec import MigrationSpec, SpecSettings, spec_problems
from orchestrator.lint.findings import LintReport
from orchestrator.lint.inputs import read_input
from orchestrator.lint.lexer import RawStatement, split_statements
from orchestrator.lint.linter import lint_sql, parse_postgres
from orchestrator.lint.postgres.nodes import (
    column_constraints,
    constant_value,
    contains,
    default_expression,
    relation_name,
    sql_text,
    type_text,
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
            converted, skip_reason = _convert(node)
        except _NotConvertible as reason:
            notes.append(_note(statement, Outcome.NOT_CONVERTED, [], str(reason)))
            continue
        if skip_reason:
            notes.append(_note(statement, Outcome.SKIPPED, [], skip_reason))
            continue
        validated, problems = _validate(converted)
        if problems:
            notes.append(_note(statement, Outcome.NOT_CONVERTED, [], "; ".join(problems)))
            continue
        operations.extend(validated)
        notes.append(
            _note(statement, Outcome.CONVERTED, [op.describe() for op in validated], _why(node, validated))
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


def _note(statement: RawStatement, outcome: Outcome, operations: list[str], reason: str) -> StatementNote:
    one_line = " ".join(statement.text.split())
    return StatementNote(
        statement_index=statement.index,
        line=statement.line,
        sql=one_line if len(one_line) <= 120 else one_line[:117] + "...",
        outcome=outcome,
        operations=operations,
        reason=reason,
    )


def _validate(candidates: list[dict[str, Any]]) -> tuple[list[Operation], list[str]]:
    """Each operation through the spec's own validation: identifiers, type names, constants."""
    validated: list[Operation] = []
    problems: list[str] = []
    for candidate in candidates:
        try:
            validated.append(_OPERATION.validate_python(candidate))
        except ValidationError as error:
            problems.extend(f"{path}: {message}" for path, message in spec_problems(error))
    return validated, problems


def _why(node: ast.Node, operations: list[Operation]) -> str:
    kinds = {op.kind for op in operations}
    if isinstance(node, ast.IndexStmt) and not node.concurrent:
        return "planned as CREATE INDEX CONCURRENTLY: writes continue during the build"
    if "backfill" in kinds:
        return "planned as a chunked, checkpointed backfill along the primary key instead of one UPDATE"
    if "drop_column" in kinds:
        return "planned in the contract stage, after the deploy gate"
    return "planned in the expand stage under lock_timeout with retries"


def _convert(node: ast.Node) -> tuple[list[dict[str, Any]], str]:
    """(operations, skip reason); raises _NotConvertible with the reason."""
    match node:
        case ast.TransactionStmt():
            return [], "each step runs in its own transaction (CONCURRENTLY steps outside one)"
        case ast.VariableSetStmt() if (node.name or "").lower() == "lock_timeout":
            return [], "becomes settings.lock_timeout_ms; every DDL step runs under it and is retried"
        case ast.VariableSetStmt():
            raise _NotConvertible(f"session setting {node.name}: the orchestrator's steps do not run it")
        case ast.AlterTableStmt():
            return _alter_table(node), ""
        case ast.IndexStmt():
            return [_create_index(node)], ""
        case ast.UpdateStmt():
            return _update(node), ""
        case ast.CreateStmt():
            raise _NotConvertible(
                "create_table is not in the operation catalogue yet; a new table has no traffic, so running "
                "it as written before expand is safe"
            )
        case ast.DropStmt() if node.removeType == enums.ObjectType.OBJECT_INDEX:
            raise _NotConvertible(
                "drop_index (DROP INDEX CONCURRENTLY in contract) is not in the catalogue yet"
            )
        case ast.DropStmt() if node.removeType == enums.ObjectType.OBJECT_TABLE:
            raise _NotConvertible(
                "drop_table (in contract, after the deploy gate) is not in the catalogue yet"
            )
        case ast.RenameStmt() if node.renameType == enums.ObjectType.OBJECT_COLUMN:
            raise _NotConvertible(
                "rename_column (expand/contract: new column, dual writes, backfill, drop) is not in the "
                "catalogue yet"
            )
        case ast.RenameStmt() if node.renameType == enums.ObjectType.OBJECT_TABLE:
            raise _NotConvertible(
                "rename_table (a view under the other name while code moves) is not in the catalogue yet"
            )
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
    if relation is not None and relation.schemaname not in (None, "public"):
        raise _NotConvertible(
            f"table {relation.schemaname}.{relation.relname}: specs name tables in the search path only"
        )
    return relation_name(relation)


def _alter_table(node: ast.AlterTableStmt) -> list[dict[str, Any]]:
    table = _table(node.relation)
    operations: list[dict[str, Any]] = []
    reasons: list[str] = []
    for cmd in node.cmds or ():
        try:
            operations.append(_alter_command(table, cmd))
        except _NotConvertible as reason:
            reasons.append(str(reason))
    if reasons:
        raise _NotConvertible("; ".join(reasons))
    return operations


_MISSING_KINDS = {
    enums.AlterTableType.AT_AlterColumnType: "ALTER COLUMN TYPE needs alter_column_type (add a column of the "
    "new type, sync trigger, backfill, swap in contract), not in the catalogue yet",
    enums.AlterTableType.AT_SetNotNull: "SET NOT NULL needs set_not_null (CHECK ... NOT VALID, VALIDATE, then "
    "SET NOT NULL), not in the catalogue yet",
    enums.AlterTableType.AT_DropNotNull: "DROP NOT NULL needs alter_column, not in the catalogue yet (it is "
    "catalog-only: safe to run as written under a lock_timeout)",
    enums.AlterTableType.AT_ColumnDefault: "changing a default needs alter_column, not in the catalogue yet "
    "(it is catalog-only: safe to run as written under a lock_timeout)",
    enums.AlterTableType.AT_ValidateConstraint: "VALIDATE CONSTRAINT belongs to add_foreign_key / "
    "add_check_constraint, not in the catalogue yet",
    enums.AlterTableType.AT_DropConstraint: "drop_constraint is not in the catalogue yet",
}
_CONSTRAINT_KINDS = {
    enums.ConstrType.CONSTR_FOREIGN: "add_foreign_key (NOT VALID, then VALIDATE)",
    enums.ConstrType.CONSTR_CHECK: "add_check_constraint (NOT VALID, then VALIDATE)",
    enums.ConstrType.CONSTR_UNIQUE: "add_unique (unique index CONCURRENTLY, then USING INDEX)",
    enums.ConstrType.CONSTR_PRIMARY: "a primary key operation (unique index CONCURRENTLY, then USING INDEX)",
    enums.ConstrType.CONSTR_EXCLUSION: "an exclusion constraint operation",
}


def _alter_command(table: str, cmd: ast.AlterTableCmd) -> dict[str, Any]:
    subtype = cmd.subtype
    if subtype == enums.AlterTableType.AT_AddColumn and isinstance(cmd.def_, ast.ColumnDef):
        return _add_column(table, cmd.def_)
    if subtype == enums.AlterTableType.AT_DropColumn:
        if cmd.behavior == enums.DropBehavior.DROP_CASCADE:
            raise _NotConvertible(
                f"DROP COLUMN {cmd.name} CASCADE drops dependent objects; drop_column does not"
            )
        return {"drop_column": {"table": table, "column": cmd.name}}
    if subtype == enums.AlterTableType.AT_AddConstraint and isinstance(cmd.def_, ast.Constraint):
        contype = cmd.def_.contype
        needed = (
            _CONSTRAINT_KINDS.get(contype, "a constraint operation") if contype else "a constraint operation"
        )
        raise _NotConvertible(f"ADD CONSTRAINT needs {needed}, not in the catalogue yet")
    if subtype in _MISSING_KINDS:
        raise _NotConvertible(_MISSING_KINDS[subtype])
    label = subtype.name.removeprefix("AT_") if subtype is not None else "subcommand"
    raise _NotConvertible(f"no operation for ALTER TABLE {label} in the catalogue yet")


def _add_column(table: str, column: ast.ColumnDef) -> dict[str, Any]:
    name = column.colname
    allowed = {enums.ConstrType.CONSTR_NOTNULL, enums.ConstrType.CONSTR_NULL, enums.ConstrType.CONSTR_DEFAULT}
    extra = [
        c.contype.name.removeprefix("CONSTR_")
        for c in column_constraints(column)
        if c.contype is not None and c.contype not in allowed
    ]
    if extra:
        raise _NotConvertible(
            f"column {name} with {', '.join(extra)}: add_column takes a type, nullability and a constant default; "
            "the constraint needs its own operation (add_unique, add_foreign_key, add_check_constraint), not in "
            "the catalogue yet"
        )
    if column.collClause is not None:
        raise _NotConvertible(f"column {name} with COLLATE: add_column takes no collation")
    definition: dict[str, Any] = {"name": name, "type": type_text(column.typeName)}
    default = default_expression(column)
    if isinstance(default, ast.A_Const) and default.isnull:
        default = None  # DEFAULT NULL is no default
    if default is not None:
        value = constant_value(default)
        if value is None:
            raise _NotConvertible(
                f"default {sql_text(default)} of {name} is not a constant: add_column takes constants only; "
                "add the column without it and backfill (a default for new rows needs alter_column, not in "
                "the catalogue yet)"
            )
        definition["default"] = value
    if any(c.contype == enums.ConstrType.CONSTR_NOTNULL for c in column_constraints(column)):
        if default is None:
            raise _NotConvertible(
                f"NOT NULL column {name} without a default: needs add nullable + backfill + set_not_null, and "
                "set_not_null is not in the catalogue yet"
            )
        definition["nullable"] = False
    return {"add_column": {"table": table, "column": definition}}


def _create_index(node: ast.IndexStmt) -> dict[str, Any]:
    table = _table(node.relation)
    if node.whereClause is not None:
        raise _NotConvertible("a partial index (WHERE): create_index takes plain columns only")
    if node.indexIncludingParams:
        raise _NotConvertible("INCLUDE columns: create_index takes plain key columns only")
    method = (node.accessMethod or "btree").lower()
    if method not in _INDEX_METHODS:
        raise _NotConvertible(
            f"index method {method}: create_index knows {', '.join(sorted(_INDEX_METHODS))}"
        )
    columns = []
    for element in node.indexParams or ():
        plain = (
            isinstance(element, ast.IndexElem)
            and element.name
            and element.expr is None
            and not element.opclass
            and not element.collation
            and element.ordering == enums.SortByDir.SORTBY_DEFAULT
            and element.nulls_ordering == enums.SortByNulls.SORTBY_NULLS_DEFAULT
        )
        if not plain:
            raise _NotConvertible(
                "an expression, operator class or ordering in the index: create_index takes plain columns"
            )
        assert isinstance(element, ast.IndexElem) and element.name is not None
        columns.append(element.name)
    # PostgreSQL's own choice for an unnamed index, so the plan names what the database would.
    name = node.idxname or f"{table}_{'_'.join(columns)}_{'key' if node.unique else 'idx'}"[:63]
    return {
        "create_index": {
            "table": table,
            "name": name,
            "columns": columns,
            "unique": bool(node.unique),
            "method": method,
        }
    }


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
