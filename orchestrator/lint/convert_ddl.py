"""The PostgreSQL statements `plan --from-sql` turns into the catalogue's column, constraint and
table operations: each risky form as written becomes the operation that does it without blocking.

| as written | becomes |
|---|---|
| ALTER COLUMN ... TYPE [USING] | alter_column (synced new column, or a shadow table for a key) |
| ALTER COLUMN ... SET/DROP NOT NULL, SET/DROP DEFAULT | alter_column |
| ADD CONSTRAINT ... FOREIGN KEY / CHECK / UNIQUE | add_foreign_key / add_check / add_unique |
| ADD COLUMN with UNIQUE, REFERENCES, a volatile default | add_column's unique / references / default_expression |
| RENAME COLUMN, RENAME TO | rename_column, rename_table |
| CREATE TABLE, DROP TABLE | create_table, drop_table (set aside in contract) |
"""

from __future__ import annotations

from typing import Any

from pglast import ast, enums

from orchestrator.lint.postgres.nodes import (
    column_constraints,
    constant_value,
    default_expression,
    relation_name,
    sql_text,
    strings,
    type_text,
)


class NotConvertibleError(Exception):
    pass


_ON_DELETE = {
    "a": "no_action",
    "r": "restrict",
    "c": "cascade",
    "n": "set_null",
    "d": "set_default",
}


def table_of(relation: ast.RangeVar | None) -> str:
    if relation is not None and relation.schemaname not in (None, "public"):
        raise NotConvertibleError(
            f"table {relation.schemaname}.{relation.relname}: specs name tables in the search path only"
        )
    return relation_name(relation)


def _references(constraint: ast.Constraint) -> dict[str, Any]:
    reference: dict[str, Any] = {"table": table_of(constraint.pktable)}
    columns = strings(constraint.pk_attrs)
    if columns:
        reference["columns"] = columns
    action = constraint.fk_del_action or "a"
    if constraint.fk_upd_action not in (None, "a"):
        raise NotConvertibleError("ON UPDATE actions: add_foreign_key takes ON DELETE only")
    reference["on_delete"] = _ON_DELETE.get(action, "no_action")
    return reference


def alter_column(table: str, cmd: ast.AlterTableCmd) -> dict[str, Any]:
    """ALTER COLUMN TYPE / SET|DROP NOT NULL / SET|DROP DEFAULT."""
    column = cmd.name
    subtype = cmd.subtype
    change: dict[str, Any] = {"table": table, "column": column}
    if subtype == enums.AlterTableType.AT_AlterColumnType and isinstance(cmd.def_, ast.ColumnDef):
        change["type"] = type_text(cmd.def_.typeName)
        if cmd.def_.raw_default is not None:  # the USING expression
            change["up"] = sql_text(cmd.def_.raw_default)
    elif subtype == enums.AlterTableType.AT_SetNotNull:
        change["nullable"] = False
    elif subtype == enums.AlterTableType.AT_DropNotNull:
        change["nullable"] = True
    elif subtype == enums.AlterTableType.AT_ColumnDefault:
        new_default = cmd.def_ if isinstance(cmd.def_, ast.Node) else None
        if new_default is None:
            change["drop_default"] = True
        else:
            value = constant_value(new_default)
            if value is None:
                raise NotConvertibleError(
                    f"default {sql_text(new_default)} of {column} is not a constant: alter_column sets constant "
                    "defaults (a volatile default for new rows is catalog-only: run it as written under a "
                    "lock_timeout)"
                )
            change["default"] = value
    return {"alter_column": change}


def add_constraint(table: str, constraint: ast.Constraint) -> dict[str, Any]:
    kind = constraint.contype
    if kind == enums.ConstrType.CONSTR_FOREIGN:
        columns = strings(constraint.fk_attrs)
        name = constraint.conname or f"{table}_{'_'.join(columns)}_fkey"[:63]
        return {
            "add_foreign_key": {
                "table": table,
                "name": name,
                "columns": columns,
                "references": _references(constraint),
            }
        }
    if kind == enums.ConstrType.CONSTR_CHECK:
        name = constraint.conname or f"{table}_check"
        return {"add_check": {"table": table, "name": name, "expression": sql_text(constraint.raw_expr)}}
    if kind == enums.ConstrType.CONSTR_UNIQUE:
        if constraint.indexname:
            raise NotConvertibleError(
                "UNIQUE USING INDEX: the index exists already; run it as written under a lock_timeout"
            )
        columns = strings(constraint.keys)
        name = constraint.conname or f"{table}_{'_'.join(columns)}_key"[:63]
        return {"add_unique": {"table": table, "name": name, "columns": columns}}
    label = kind.name.removeprefix("CONSTR_") if kind is not None else "this"
    raise NotConvertibleError(f"ADD CONSTRAINT {label}: no operation for it in the catalogue yet")


def column_definition(column: ast.ColumnDef, *, new_table: bool) -> dict[str, Any]:
    """A ColumnDef as the spec's column: type, nullability, default, unique, references."""
    name = column.colname
    if column.collClause is not None:
        raise NotConvertibleError(f"column {name} with COLLATE: the spec takes no collation")
    definition: dict[str, Any] = {"name": name, "type": type_text(column.typeName)}
    default = default_expression(column)
    if isinstance(default, ast.A_Const) and default.isnull:
        default = None  # DEFAULT NULL is no default
    if default is not None:
        value = constant_value(default)
        if value is None:
            definition["default_expression"] = sql_text(default)
        else:
            definition["default"] = value
    for constraint in column_constraints(column):
        match constraint.contype:
            case enums.ConstrType.CONSTR_NOTNULL | enums.ConstrType.CONSTR_PRIMARY:
                definition["nullable"] = False
            case enums.ConstrType.CONSTR_UNIQUE:
                definition["unique"] = True
            case enums.ConstrType.CONSTR_FOREIGN:
                definition["references"] = _references(constraint)
            case enums.ConstrType.CONSTR_NULL | enums.ConstrType.CONSTR_DEFAULT:
                pass
            case other:
                label = other.name.removeprefix("CONSTR_") if other is not None else "a constraint"
                raise NotConvertibleError(
                    f"column {name} with {label}: give it its own operation (add_check, ...)"
                )
    if not new_table and definition.get("nullable") is False and default is None:
        raise NotConvertibleError(
            f"NOT NULL column {name} without a default: existing rows need a value; write the spec with a "
            "'backfill' expression for them (add nullable, backfill, then NOT NULL through a validated check)"
        )
    return definition


def create_table(node: ast.CreateStmt) -> dict[str, Any]:
    table = table_of(node.relation)
    if node.inhRelations or node.partspec or node.partbound or node.ofTypename:
        raise NotConvertibleError(
            "inheritance, partitioning or typed tables: create_table makes plain tables"
        )
    columns: list[dict[str, Any]] = []
    primary_key: list[str] = []
    for element in node.tableElts or ():
        if isinstance(element, ast.ColumnDef):
            columns.append(column_definition(element, new_table=True))
            primary = any(c.contype == enums.ConstrType.CONSTR_PRIMARY for c in column_constraints(element))
            if primary and element.colname:
                primary_key.append(element.colname)
        elif isinstance(element, ast.Constraint) and element.contype == enums.ConstrType.CONSTR_PRIMARY:
            primary_key.extend(strings(element.keys))
        else:
            raise NotConvertibleError(
                "a table-level constraint other than PRIMARY KEY: add it with its own operation after "
                "create_table (add_unique, add_foreign_key, add_check)"
            )
    operation: dict[str, Any] = {"table": table, "columns": columns}
    if primary_key:
        operation["primary_key"] = primary_key
    return {"create_table": operation}


def drop_table(node: ast.DropStmt) -> list[dict[str, Any]]:
    if node.behavior == enums.DropBehavior.DROP_CASCADE:
        raise NotConvertibleError("DROP TABLE ... CASCADE drops dependent objects; drop_table does not")
    operations = []
    for names in node.objects or ():
        parts = strings(names)
        if len(parts) > 1 and parts[0] != "public":
            raise NotConvertibleError(f"table {'.'.join(parts)}: specs name tables in the search path only")
        operations.append({"drop_table": {"table": parts[-1]}})
    return operations


def rename(node: ast.RenameStmt) -> dict[str, Any]:
    table = table_of(node.relation)
    if node.renameType == enums.ObjectType.OBJECT_COLUMN:
        return {"rename_column": {"table": table, "column": node.subname, "new_name": node.newname}}
    return {"rename_table": {"table": table, "new_name": node.newname}}
