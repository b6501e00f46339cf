"""Small readers over pglast's AST: names, type names, constants, column references."""

from __future__ import annotations

from collections.abc import Iterable

from pglast import ast, enums
from pglast.stream import RawStream

INTEGER_TYPES = frozenset(
    {"int2", "int4", "smallint", "integer", "serial", "serial2", "serial4", "smallserial"}
)
SERIAL_TYPES = frozenset({"serial", "serial2", "serial4", "serial8", "smallserial", "bigserial"})


def relation_name(relation: ast.RangeVar | None) -> str:
    return relation.relname if relation is not None and relation.relname else ""


def strings(nodes: Iterable[object] | None) -> list[str]:
    return [node.sval for node in nodes or () if isinstance(node, ast.String) and node.sval is not None]


def type_base(type_name: ast.TypeName | None) -> str:
    """The last part of a type's name as PostgreSQL stores it: `integer` -> `int4`."""
    names = strings(type_name.names if type_name is not None else None)
    return names[-1].lower() if names else ""


def type_text(type_name: ast.TypeName | None) -> str:
    """A type as a DBA writes it: `integer`, `varchar(64)`, `timestamp with time zone`."""
    return str(RawStream()(type_name)) if type_name is not None else ""


def sql_text(node: ast.Node | None) -> str:
    return str(RawStream()(node)) if node is not None else ""


def column_constraints(column: ast.ColumnDef) -> list[ast.Constraint]:
    return [item for item in column.constraints or () if isinstance(item, ast.Constraint)]


def has_constraint(column: ast.ColumnDef, kind: enums.ConstrType) -> bool:
    return any(constraint.contype == kind for constraint in column_constraints(column))


def default_expression(column: ast.ColumnDef) -> ast.Node | None:
    for constraint in column_constraints(column):
        if constraint.contype == enums.ConstrType.CONSTR_DEFAULT:
            node: ast.Node | None = constraint.raw_expr
            return node
    return None


def column_name(node: ast.Node | None) -> str | None:
    """The column a ColumnRef names (its last part), else None."""
    if isinstance(node, ast.ColumnRef):
        names = strings(node.fields)
        return names[-1] if names else None
    return None


def is_constant(node: ast.Node | None) -> bool:
    """A literal, a parameter, or a cast of one: its value does not depend on the row."""
    if isinstance(node, ast.TypeCast):
        return is_constant(node.arg)
    return isinstance(node, ast.A_Const | ast.ParamRef)


def constant_value(node: ast.Node | None) -> str | int | float | bool | None:
    """A literal's Python value, or None when it is not a plain literal (or is NULL)."""
    if isinstance(node, ast.TypeCast):
        if isinstance(node.arg, ast.A_Const) and type_base(node.typeName) == "bool":
            value = constant_value(node.arg)
            if isinstance(value, str) and value.lower() in ("t", "true", "f", "false"):
                return value.lower() in ("t", "true")
        return constant_value(node.arg)
    if not isinstance(node, ast.A_Const) or node.isnull:
        return None
    literal = node.val
    if isinstance(literal, ast.Integer) and literal.ival is not None:
        return int(literal.ival)
    if isinstance(literal, ast.Float) and literal.fval is not None:
        return float(literal.fval)
    if isinstance(literal, ast.Boolean):
        return bool(literal.boolval)
    if isinstance(literal, ast.String):
        return str(literal.sval)
    return None


def function_names(node: ast.Node | None) -> list[str]:
    """Every function an expression calls (last part of each name, lower-case)."""
    found: list[str] = []

    def walk(value: object) -> None:
        if isinstance(value, ast.FuncCall):
            names = strings(value.funcname)
            if names:
                found.append(names[-1].lower())
        if isinstance(value, ast.Node):
            for attribute in value:
                walk(getattr(value, attribute))
        elif isinstance(value, tuple | list):
            for item in value:
                walk(item)

    walk(node)
    return found


def contains(node: ast.Node | None, kind: type[ast.Node]) -> bool:
    if isinstance(node, kind):
        return True
    if isinstance(node, ast.Node):
        return any(contains_value(getattr(node, attribute), kind) for attribute in node)
    return False


def contains_value(value: object, kind: type[ast.Node]) -> bool:
    if isinstance(value, ast.Node):
        return contains(value, kind)
    if isinstance(value, tuple | list):
        return any(contains_value(item, kind) for item in value)
    return False
