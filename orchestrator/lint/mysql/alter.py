"""ALTER TABLE and CREATE INDEX: each clause mapped to the kind of change the version table knows.

sqlglot reads most ALTER TABLE clauses into a tree; a few forms stay opaque (CONVERT TO CHARACTER
SET, ADD COLUMN (a, b), CREATE FULLTEXT INDEX, MariaDB's ALTER ONLINE TABLE) and are recognised from
their text. A clause neither way explains is reported as unanalysed rather than passed as safe.
"""

from __future__ import annotations

import re

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, TokenError

from orchestrator.lint.context import FileContext, table_key
from orchestrator.lint.mysql.common import (
    INTEGER_TYPES,
    LOCK_MESSAGE,
    name_of,
    report_rename_column,
    report_rename_table,
    table_of,
)
from orchestrator.lint.mysql.online_ddl import AlterClauses, judge
from orchestrator.lint.mysql.versions import Change, ServerVersion
from orchestrator.lint.rules import Site

_CLAUSE = re.compile(r"\b(ALGORITHM|LOCK)\s*=?\s*(\w+)", re.IGNORECASE)
CREATE_INDEX = re.compile(
    r"^CREATE\s+(?:OR\s+REPLACE\s+)?(?:ONLINE\s+)?(?:(UNIQUE|FULLTEXT|SPATIAL)\s+)?INDEX\s+(?:IF\s+NOT\s+EXISTS\s+)?"
    r"(\S+)\s+(?:USING\s+\w+\s+)?ON\s+(\S+?)\s*\(",
    re.IGNORECASE,
)
_ALTER = re.compile(r"^ALTER\s+(ONLINE\s+)?(?:IGNORE\s+)?TABLE\s+(\S+)\s+(.*)$", re.IGNORECASE | re.DOTALL)


def create_index(text: str, site: Site, context: FileContext, version: ServerVersion) -> None:
    match = CREATE_INDEX.match(text)
    if match is None:
        site.report("unanalysed-alter", "osctl could not read this CREATE INDEX.")
        return
    kind, name, table = (match.group(1) or "").upper(), match.group(2), match.group(3)
    context.created_indexes[name.strip("`").lower()] = table_key(table)
    if context.is_new(table):
        return
    context.needs_lock(site, [table], LOCK_MESSAGE)
    change = {"FULLTEXT": Change.ADD_FULLTEXT_INDEX, "SPATIAL": Change.ADD_SPATIAL_INDEX}.get(
        kind, Change.ADD_INDEX
    )
    judge(table_key(table), [change], _clauses(text), version, site)


def _clauses(text: str) -> AlterClauses:
    found = {key.upper(): value.upper() for key, value in _CLAUSE.findall(text)}
    return AlterClauses(found.get("ALGORITHM"), found.get("LOCK"))


def alter_table(node: exp.Alter, site: Site, context: FileContext, version: ServerVersion) -> None:
    table = table_of(node.this)
    algorithm = lock = None
    changes: list[Change] = []
    unknown: list[str] = []
    new = context.is_new(table)
    for option in node.args.get("options") or []:
        if isinstance(option, exp.AlgorithmProperty):
            algorithm = name_of(option.this).upper()
        elif isinstance(option, exp.LockProperty):
            lock = name_of(option.this).upper()
        elif isinstance(option, exp.EngineProperty | exp.RowFormatProperty) or (
            type(option) is exp.Property and name_of(option.this).upper() == "KEY_BLOCK_SIZE"
        ):
            changes.append(Change.REBUILD_TABLE)
        elif isinstance(
            option,
            exp.AutoIncrementProperty
            | exp.SchemaCommentProperty
            | exp.CharacterSetProperty
            | exp.CollateProperty,
        ):
            changes.append(Change.TABLE_OPTION)
        else:
            unknown.append(option.sql("mysql"))
    for action in node.args.get("actions") or []:
        changes.extend(_action_changes(action, table, site, context, new, unknown))
    if Change.DROP_PRIMARY_KEY in changes and Change.ADD_PRIMARY_KEY in changes:
        changes.remove(Change.DROP_PRIMARY_KEY)  # replacing the key rebuilds in place, no copy
    if new:
        return
    context.needs_lock(site, [table], LOCK_MESSAGE)
    if unknown:
        site.report(
            "unanalysed-alter", f"osctl cannot tell how {', '.join(unknown)} on {table} locks the table."
        )
    judge(table_key(table), changes, AlterClauses(algorithm, lock), version, site)


def _action_changes(
    action: exp.Expr, table: str, site: Site, context: FileContext, new: bool, unknown: list[str]
) -> list[Change]:
    if isinstance(action, exp.ColumnDef):
        if new:
            context.add_column(table, action.name, "")
            return []
        return [_add_column(action, table, site)]
    if isinstance(action, exp.Drop):
        kind = str(action.args.get("kind") or "").upper()
        if kind == "COLUMN":
            if not new:
                for column in action.args.get("tables") or []:
                    site.report(
                        "drop-column",
                        f"dropping {table}.{column.name} loses its data for good and breaks running code "
                        "that still reads or writes it.",
                    )
            return [Change.DROP_COLUMN]
        return {
            "INDEX": [Change.DROP_INDEX],
            "FOREIGN KEY": [Change.DROP_FOREIGN_KEY],
            "CHECK": [Change.DROP_CHECK],
            "CONSTRAINT": [Change.DROP_CHECK],
        }.get(kind, [Change.DROP_INDEX])
    if isinstance(action, exp.DropPrimaryKey):
        return [Change.DROP_PRIMARY_KEY]
    if isinstance(action, exp.RenameColumn):
        if not new:
            report_rename_column(site, table, name_of(action.this), name_of(action.args.get("to")))
        return [Change.RENAME_COLUMN]
    if isinstance(action, exp.ModifyColumn):
        old = action.args.get("rename_from")
        column = action.this
        if old is not None and not new and name_of(old).lower() != name_of(column).lower():
            report_rename_column(site, table, name_of(old), name_of(column))
        return [Change.MODIFY_COLUMN]
    if isinstance(action, exp.AlterColumn):
        return [Change.SET_DEFAULT]
    if isinstance(action, exp.AddConstraint):
        return [_constraint_change(part, context) for part in action.expressions]
    if isinstance(action, exp.AlterRename):
        new_name = table_of(action.this)
        if new:
            context.rename_table(table, new_name)
        else:
            report_rename_table(site, table, new_name)
        return [Change.RENAME_TABLE]
    if isinstance(action, exp.RenameIndex):
        return [Change.RENAME_INDEX]
    if isinstance(action, exp.AlterIndex):
        return [Change.INDEX_VISIBILITY]
    if isinstance(action, exp.ForceProperty):
        return [Change.REBUILD_TABLE]
    unknown.append(action.sql("mysql"))
    return []


def _add_column(column: exp.ColumnDef, table: str, site: Site) -> Change:
    constraints = [constraint.kind for constraint in column.constraints]
    computed = next((c for c in constraints if isinstance(c, exp.ComputedColumnConstraint)), None)
    auto_increment = any(isinstance(c, exp.AutoIncrementColumnConstraint) for c in constraints)
    has_default = any(isinstance(c, exp.DefaultColumnConstraint) for c in constraints)
    not_null = any(
        isinstance(c, exp.NotNullColumnConstraint) and not c.args.get("allow_null") for c in constraints
    )
    if not_null and not has_default and not auto_increment and computed is None:
        site.report(
            "not-null-column-without-default",
            f"{table}.{column.name} is NOT NULL without a default: existing rows get the type's implicit "
            "value (0, ''), and the running application's INSERTs that do not name the column fail in "
            'strict mode ("Field doesn\'t have a default value").',
            safe_alternative="Add it with an explicit DEFAULT, or nullable; backfill; then make it NOT NULL "
            "once the new code writes it.",
        )
    data_type = column.args.get("kind")
    if any(isinstance(c, exp.PrimaryKeyColumnConstraint) for c in constraints) and (
        isinstance(data_type, exp.DataType) and data_type.this in INTEGER_TYPES
    ):
        site.report(
            "integer-primary-key",
            f"primary key {table}.{column.name} is {data_type.sql('mysql')}: it runs out, then inserts fail.",
        )
    if computed is not None:
        return Change.ADD_STORED_COLUMN if computed.args.get("persisted") else Change.ADD_VIRTUAL_COLUMN
    if auto_increment:
        return Change.ADD_AUTO_INCREMENT_COLUMN
    return Change.ADD_COLUMN_POSITIONED if column.args.get("position") is not None else Change.ADD_COLUMN


def _constraint_change(part: exp.Expr, context: FileContext) -> Change:
    inner = part.expressions[0] if isinstance(part, exp.Constraint) and part.expressions else part
    if isinstance(inner, exp.IndexColumnConstraint):
        kind = str(inner.args.get("kind") or "").upper()
        return {"FULLTEXT": Change.ADD_FULLTEXT_INDEX, "SPATIAL": Change.ADD_SPATIAL_INDEX}.get(
            kind, Change.ADD_INDEX
        )
    if isinstance(inner, exp.PrimaryKey | exp.PrimaryKeyColumnConstraint):
        return Change.ADD_PRIMARY_KEY
    if isinstance(inner, exp.ForeignKey | exp.Reference):
        return Change.ADD_FOREIGN_KEY if context.foreign_key_checks else Change.ADD_FOREIGN_KEY_UNCHECKED
    if isinstance(inner, exp.CheckColumnConstraint):
        return Change.ADD_CHECK
    return Change.ADD_INDEX  # UNIQUE [KEY|INDEX]


def alter_fallback(text: str, site: Site, context: FileContext, version: ServerVersion) -> None:
    match = _ALTER.match(text)
    if match is None:
        return  # ALTER VIEW, ALTER DATABASE, ALTER USER ...: no table to lock
    online, table, rest = match.groups()
    if online:  # MariaDB's ALTER ONLINE TABLE means LOCK=NONE; read the rest as usual
        try:
            node = sqlglot.parse_one(f"ALTER TABLE {table} {rest}, LOCK=NONE", read="mysql")
        except (ParseError, TokenError):
            node = None
        if isinstance(node, exp.Alter):
            alter_table(node, site, context, version)
            return
    if context.is_new(table):
        return
    context.needs_lock(site, [table], LOCK_MESSAGE)
    clauses = _clauses(rest)
    if re.search(r"\bCONVERT\s+TO\s+(CHARACTER\s+SET|CHARSET)\b", rest, re.IGNORECASE):
        judge(table_key(table), [Change.CONVERT_CHARSET], clauses, version, site)
    elif re.match(r"ADD\s+(COLUMN\s+)?\(", rest, re.IGNORECASE):
        judge(table_key(table), [Change.ADD_COLUMN], clauses, version, site)
    else:
        site.report("unanalysed-alter", f"osctl could not read this ALTER TABLE {table.strip('`')}.")
