"""What the server would do with an alter_table change if asked to make it itself, online: each clause
looked up in the version table the linter keeps (orchestrator/lint/mysql/versions.py, one source of
truth for which release runs what INSTANT or in place), with the live columns deciding what a MODIFY or
CHANGE really is: the text alone cannot tell a widening or a new default from a type change.

Pure: the parsed clause, the live table and the server's VERSION() text in, an OnlineVerdict out. Where
in doubt the verdict says "blocking", which only sends the change to a copy tool; the statement itself
also carries LOCK=NONE or ALGORITHM=INSTANT, so a server that disagrees refuses rather than blocks.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlglot import exp

from orchestrator.domain.direct_ddl import OnlineCost, OnlineVerdict
from orchestrator.domain.schema import ColumnInfo, TableInfo
from orchestrator.lint.mysql.versions import (
    Algorithm,
    Change,
    ServerVersion,
    algorithm_for,
    parse_server_version,
)

# In place, yet catalog-only: no row is read, so the table's size does not matter.
_METADATA_ONLY = frozenset(
    {
        Change.DROP_INDEX,
        Change.RENAME_INDEX,
        Change.RENAME_COLUMN,
        Change.SET_DEFAULT,
        Change.DROP_FOREIGN_KEY,
        Change.DROP_CHECK,
        Change.TABLE_OPTION,
        Change.INDEX_VISIBILITY,
        Change.ADD_VIRTUAL_COLUMN,
    }
)
_REBUILD_OPTIONS = (exp.EngineProperty, exp.RowFormatProperty)
_METADATA_OPTIONS = (
    exp.AutoIncrementProperty,
    exp.SchemaCommentProperty,
    exp.CharacterSetProperty,
    exp.CollateProperty,
)
_DISPLAY_WIDTH = re.compile(r"\b(tinyint|smallint|mediumint|int|bigint)\(\d+\)")
_VARCHAR = re.compile(r"^varchar\((\d+)\)$")
# Bytes per character in the widest character set (utf8mb4): the column's own set is not in TableInfo.
_WIDEST_CHARACTER = 4
Clause = tuple[str, OnlineCost | None]


@dataclass(frozen=True)
class Online:
    """The server's version and its verdict on one change (what the direct step is written for)."""

    version: ServerVersion
    verdict: OnlineVerdict


def server_version(text: str | None) -> ServerVersion | None:
    """The version table's reading of VERSION(); None when unknown or older than it knows."""
    if not text:
        return None
    if "mariadb" in text.lower() and text.startswith("5.5.5-"):
        text = text.removeprefix("5.5.5-")  # what some proxies and old clients report for MariaDB
    try:
        return parse_server_version(text)
    except ValueError:
        return None


def verdict(
    tree: exp.Expression, understood: bool, table: TableInfo, version: ServerVersion
) -> OnlineVerdict:
    """How `version` would make the ALTER `tree` on `table` itself; cost None when only by blocking."""
    server = (
        f"{'MySQL' if version.flavor == 'mysql' else 'MariaDB'} {'.'.join(map(str, version.numbers[:2]))}"
    )
    if not understood or not isinstance(tree, exp.Alter):
        return OnlineVerdict(server, None, "osctl cannot read this clause in detail")
    clauses = [_option(option, version) for option in tree.args.get("options") or []]
    actions = list(tree.args.get("actions") or [])
    replaces_key = any(isinstance(a, exp.DropPrimaryKey) for a in actions) and any(
        isinstance(part, exp.PrimaryKey)
        for a in actions
        if isinstance(a, exp.AddConstraint)
        for part in a.expressions
    )
    for action in actions:
        if replaces_key and isinstance(action, exp.DropPrimaryKey):
            continue  # a new primary key in the same statement: one in-place rebuild, no copy
        clauses.extend(_action(action, table, version))
    blocking = [label for label, cost in clauses if cost is None]
    if blocking:
        return OnlineVerdict(server, None, "; ".join(blocking))
    costs = [cost for _, cost in clauses if cost is not None]
    worst = max(costs, default=OnlineCost.INSTANT)
    deciding = [label for label, cost in clauses if cost is worst]
    return OnlineVerdict(server, worst, "; ".join(deciding) or "nothing to change")


def _looked_up(label: str, change: Change, version: ServerVersion) -> Clause:
    algorithm = algorithm_for(change, version)
    if algorithm is Algorithm.INSTANT:
        return f"{label}: instant", OnlineCost.INSTANT
    if algorithm is Algorithm.INPLACE and change in _METADATA_ONLY:
        return f"{label}: in place, catalog only", OnlineCost.METADATA
    if algorithm in (Algorithm.INPLACE, Algorithm.REBUILD):
        what = "rebuilds the table" if algorithm is Algorithm.REBUILD else "reads every row"
        return f"{label}: in place, {what}", OnlineCost.SCAN
    how = {Algorithm.SHARED: "blocks writes (LOCK=SHARED)", Algorithm.COPY: "copies the table"}
    return f"{label} {how.get(algorithm, 'is not supported')}", None


def _option(option: exp.Expression, version: ServerVersion) -> Clause:
    label = option.sql("mysql")
    if isinstance(option, _REBUILD_OPTIONS):
        return _looked_up(label, Change.REBUILD_TABLE, version)
    if isinstance(option, _METADATA_OPTIONS):
        return _looked_up(label, Change.TABLE_OPTION, version)
    return f"table option {label} (not understood in detail)", None


def _action(action: exp.Expression, table: TableInfo, version: ServerVersion) -> list[Clause]:
    match action:
        case exp.ColumnDef():
            return _add_column(action, version)
        case exp.Drop():
            return [_drop(action, table, version)]
        case exp.DropPrimaryKey():
            return [_looked_up("DROP PRIMARY KEY", Change.DROP_PRIMARY_KEY, version)]
        case exp.ModifyColumn():
            return [_modify(action, table, version)]
        case exp.RenameColumn():
            label = f"RENAME COLUMN {action.this.name}"
            return [_looked_up(label, Change.RENAME_COLUMN, version)]
        case exp.AlterColumn():
            return [_looked_up(f"ALTER COLUMN {action.this.name}", Change.SET_DEFAULT, version)]
        case exp.AddConstraint():
            return [_constraint(part, version) for part in action.expressions]
        case exp.RenameIndex():
            return [_looked_up("RENAME INDEX", Change.RENAME_INDEX, version)]
        case exp.AlterIndex():
            return [_looked_up("ALTER INDEX", Change.INDEX_VISIBILITY, version)]
        case exp.ForceProperty():
            return [_looked_up("FORCE", Change.REBUILD_TABLE, version)]
    return [(f"{action.sql('mysql')} (not understood in detail)", None)]


def _add_column(column: exp.ColumnDef, version: ServerVersion) -> list[Clause]:
    kinds = [constraint.args.get("kind") for constraint in column.args.get("constraints") or []]
    label = f"ADD COLUMN {column.name}"
    computed = next((kind for kind in kinds if isinstance(kind, exp.ComputedColumnConstraint)), None)
    if computed is not None:
        change = Change.ADD_STORED_COLUMN if computed.args.get("persisted") else Change.ADD_VIRTUAL_COLUMN
    elif any(isinstance(kind, exp.AutoIncrementColumnConstraint) for kind in kinds):
        change = Change.ADD_AUTO_INCREMENT_COLUMN
    elif column.args.get("position") is not None:
        change = Change.ADD_COLUMN_POSITIONED
    else:
        change = Change.ADD_COLUMN
    clauses = [_looked_up(label, change, version)]
    if any(isinstance(kind, exp.UniqueColumnConstraint | exp.PrimaryKeyColumnConstraint) for kind in kinds):
        clauses.append(_looked_up(f"{label}'s key", Change.ADD_INDEX, version))
    return clauses


def _drop(action: exp.Drop, table: TableInfo, version: ServerVersion) -> Clause:
    kind = str(action.args.get("kind") or "").upper()
    names = [item.name for item in action.args.get("tables") or []]
    label = f"DROP {kind} {', '.join(names)}".rstrip()
    if kind == "COLUMN":
        keyed = {column.lower() for column in table.primary_key}
        if keyed.intersection(name.lower() for name in names):
            return f"{label}: part of the primary key, the table is copied", None
        return _looked_up(label, Change.DROP_COLUMN, version)
    change = {"INDEX": Change.DROP_INDEX, "FOREIGN KEY": Change.DROP_FOREIGN_KEY}.get(kind, Change.DROP_CHECK)
    return _looked_up(label, change, version)


def _constraint(part: exp.Expression, version: ServerVersion) -> Clause:
    inner = part.expressions[0] if isinstance(part, exp.Constraint) and part.expressions else part
    if isinstance(inner, exp.IndexColumnConstraint):
        kind = str(inner.args.get("kind") or "").upper()
        change = {"FULLTEXT": Change.ADD_FULLTEXT_INDEX, "SPATIAL": Change.ADD_SPATIAL_INDEX}.get(
            kind, Change.ADD_INDEX
        )
        return _looked_up(f"ADD {kind + ' ' if kind else ''}INDEX", change, version)
    if isinstance(inner, exp.UniqueColumnConstraint):
        return _looked_up("ADD UNIQUE KEY", Change.ADD_INDEX, version)
    if isinstance(inner, exp.PrimaryKey):
        return _looked_up("ADD PRIMARY KEY", Change.ADD_PRIMARY_KEY, version)
    if isinstance(inner, exp.ForeignKey):
        # osctl's sessions keep foreign_key_checks on: the server validates every row, under a copy.
        return _looked_up("ADD FOREIGN KEY", Change.ADD_FOREIGN_KEY, version)
    if isinstance(inner, exp.CheckColumnConstraint):
        return _looked_up("ADD CHECK", Change.ADD_CHECK, version)
    return f"ADD {inner.sql('mysql')} (not understood in detail)", None


def normal_type(text: str) -> str:
    """A column type as COLUMN_TYPE spells it and as sqlglot writes it, made comparable."""
    text = re.sub(r"\s+", " ", text.strip().lower()).replace(", ", ",")
    return _DISPLAY_WIDTH.sub(r"\1", text)


def _modify(action: exp.ModifyColumn, table: TableInfo, version: ServerVersion) -> Clause:
    column = action.this
    new_name = column.name
    old_name = action.args["rename_from"].name if action.args.get("rename_from") is not None else new_name
    label = f"CHANGE {old_name} {new_name}" if old_name.lower() != new_name.lower() else f"MODIFY {new_name}"
    old = next((info for name, info in table.columns.items() if name.lower() == old_name.lower()), None)
    if old is None:
        return f"{label}: {table.name} has no column {old_name}", None
    kinds = [constraint.args.get("kind") for constraint in column.args.get("constraints") or []]
    if any(
        isinstance(
            kind,
            exp.CharacterSetColumnConstraint
            | exp.CollateColumnConstraint
            | exp.ComputedColumnConstraint
            | exp.AutoIncrementColumnConstraint
            | exp.UniqueColumnConstraint
            | exp.PrimaryKeyColumnConstraint,
        )
        for kind in kinds
    ):
        return (
            f"{label}: a new character set, collation, expression, key or AUTO_INCREMENT copies the table",
            None,
        )
    new_type = column.args.get("kind")
    if new_type is None:
        return f"{label}: no type given", None
    nullable = not any(
        isinstance(kind, exp.NotNullColumnConstraint) and not kind.args.get("allow_null") for kind in kinds
    )
    same_type = normal_type(new_type.sql("mysql")) == normal_type(old.type)
    if not same_type and not _widens_in_place(old, normal_type(new_type.sql("mysql"))):
        return (
            f"{label}: the type changes ({old.type} to {new_type.sql('mysql').lower()}), the table is copied",
            None,
        )
    if nullable != old.nullable:
        change_text = "NULL to NOT NULL" if old.nullable else "NOT NULL to NULL"
        return _looked_up(f"{label} ({change_text})", Change.REBUILD_TABLE, version)
    if not same_type:
        # A longer VARCHAR with the same length prefix: catalog only on MySQL 5.7+ and MariaDB 10.2+.
        return f"{label}: a longer VARCHAR, in place, catalog only", OnlineCost.METADATA
    renamed = old_name.lower() != new_name.lower()
    if renamed and algorithm_for(Change.RENAME_COLUMN, version) is Algorithm.UNSUPPORTED:
        return f"{label}: in place, catalog only", OnlineCost.METADATA  # only the RENAME COLUMN syntax is new
    return _looked_up(label, Change.RENAME_COLUMN if renamed else Change.SET_DEFAULT, version)


def _widens_in_place(old: ColumnInfo, new_type: str) -> bool:
    """VARCHAR(n) to VARCHAR(m >= n) keeping its length prefix (1 byte below 256 bytes, else 2),
    whatever the character set (assumed the widest where that matters)."""
    before, after = _VARCHAR.match(normal_type(old.type)), _VARCHAR.match(new_type)
    if before is None or after is None:
        return False
    n, m = int(before.group(1)), int(after.group(1))
    if m < n:
        return False
    return m * _WIDEST_CHARACTER < 256 or n >= 256
