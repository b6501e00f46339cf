"""The trigger that keeps two columns of one table in step from expand until contract.

rename_column and alter_column both add a column next to the one the application uses and keep the
two equal, in both directions, for as long as either application version may write: the old version
writes the old column, the new version (rename) or a tool (alter) the new one. A BEFORE INSERT OR
UPDATE row trigger decides which side the statement wrote:

- INSERT: the new column still holding what it holds when nobody names it (`unset`: NULL, or its
  constant default) means the writer used the old column, so the new one is derived (`up`);
  anything else was written on purpose, so the old one is derived from it (`down`). Comparing with
  the default rather than with NULL keeps an explicit NULL written by the new version a NULL.
- UPDATE: the column that changed wins. If only the new one changed and it already equals `up` of
  the old one (the copy writing a row, say), the old one is left alone: deriving it again through a
  lossy `down` would change data nobody touched. A row neither side touched is filled when the copy
  has not reached it yet (the new column still NULL), so a NOT VALID check on the new column holds
  for every write while the copy runs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pglast
from pglast import ast
from pglast.stream import RawStream

from orchestrator.domain.errors import SpecError
from orchestrator.domain.identifiers import quote_ident
from orchestrator.engine.planner.postgres.ddl_text import derived_name


@dataclass(frozen=True)
class SyncPair:
    """Two columns kept equal. `up` and `down` are expressions over `NEW` (see `over_new`)."""

    table: str
    old: str
    new: str
    up: str
    down: str
    unset: str = "NULL"

    @property
    def name(self) -> str:
        """The trigger's and its function's name: one pair per column of a table."""
        return derived_name("_osc", self.table, self.old, suffix="sync")


def rewrite_columns(expression: str, field: str, target: Callable[[str], tuple[str, ...]]) -> str:
    """`expression` with every column reference `c` replaced by the name parts `target(c)`.

    The expression must already have passed `check_expression`. Only bare column names are accepted
    (`note`, not `items.note`) and no subqueries, since a name inside one could mean another table.
    """
    [statement] = pglast.parse_sql(f"SELECT ({expression})")
    select = statement.stmt
    assert isinstance(select, ast.SelectStmt) and select.targetList
    node = select.targetList[0].val
    _rename(node, field, target)
    return str(RawStream()(node))


def _rename(node: object, field: str, target: Callable[[str], tuple[str, ...]]) -> None:
    if isinstance(node, ast.SubLink):
        raise SpecError([(field, "must not hold a subquery: use the row's own columns only")])
    if isinstance(node, ast.ColumnRef):
        names = [part.sval for part in node.fields or () if isinstance(part, ast.String) and part.sval]
        if len(names) != 1 or len(node.fields or ()) != 1:
            raise SpecError([(field, "name the row's columns bare (note, not items.note), without *")])
        node.fields = tuple(ast.String(sval=part) for part in target(names[0]))
        return
    if isinstance(node, ast.Node):
        for attribute in node:
            _rename(getattr(node, attribute), field, target)
    elif isinstance(node, tuple | list):
        for item in node:
            _rename(item, field, target)


def bare_constant(expression: str) -> str | None:
    """A constant default without the cast the catalog prints (`'new'::text` -> `'new'`), so it
    takes the type of whichever column it is set on; None for anything but a constant."""
    try:
        [statement] = pglast.parse_sql(f"SELECT ({expression})")
    except pglast.parser.ParseError:
        return None
    select = statement.stmt
    if not isinstance(select, ast.SelectStmt) or not select.targetList:
        return None
    node = select.targetList[0].val
    while isinstance(node, ast.TypeCast):
        node = node.arg
    return str(RawStream()(node)) if isinstance(node, ast.A_Const) else None


def substitute(expression: str, column: str, replacement: str) -> str:
    """`expression` with every reference to `column` replaced by the expression `replacement` (a
    default carried through `up`: `qty * 100` with the default `0` gives `0 * 100`)."""
    [statement] = pglast.parse_sql(f"SELECT ({expression})")
    [value] = pglast.parse_sql(f"SELECT ({replacement})")
    select, other = statement.stmt, value.stmt
    assert isinstance(select, ast.SelectStmt) and select.targetList
    assert isinstance(other, ast.SelectStmt) and other.targetList
    holder = select.targetList[0]
    _replace(holder, column, other.targetList[0].val)
    return str(RawStream()(holder.val))


def _replace(node: ast.Node, column: str, value: ast.Node) -> None:
    for attribute in node:
        child = getattr(node, attribute)
        if _names_column(child, column):
            setattr(node, attribute, value)
        elif isinstance(child, tuple):
            setattr(node, attribute, tuple(value if _names_column(item, column) else item for item in child))
            for item in child:
                if isinstance(item, ast.Node):
                    _replace(item, column, value)
        elif isinstance(child, ast.Node):
            _replace(child, column, value)


def _names_column(node: object, column: str) -> bool:
    if not isinstance(node, ast.ColumnRef) or node.fields is None or len(node.fields) != 1:
        return False
    [field] = node.fields
    return isinstance(field, ast.String) and field.sval == column


def over_new(expression: str, field: str, mapping: dict[str, str] | None = None) -> str:
    """An expression over the row's columns as the trigger reads them: `c` becomes `NEW.c`, or
    `NEW.mapping[c]` for a column read under another name."""
    names = mapping or {}
    return rewrite_columns(expression, field, lambda column: ("new", names.get(column, column)))


def function_sql(pair: SyncPair) -> str:
    old, new = f"NEW.{quote_ident(pair.old)}", f"NEW.{quote_ident(pair.new)}"
    was_old, was_new = f"OLD.{quote_ident(pair.old)}", f"OLD.{quote_ident(pair.new)}"
    unset = "IS NULL" if pair.unset == "NULL" else f"IS NOT DISTINCT FROM {pair.unset}"
    body = f"""BEGIN
  IF TG_OP = 'INSERT' THEN
    IF {new} {unset} THEN
      {new} := {pair.up};
    ELSIF {new} IS DISTINCT FROM {pair.up} THEN
      {old} := {pair.down};
    END IF;
  ELSIF {new} IS DISTINCT FROM {was_new} AND {old} IS NOT DISTINCT FROM {was_old} THEN
    IF {new} IS DISTINCT FROM {pair.up} THEN
      {old} := {pair.down};
    END IF;
  ELSIF {old} IS DISTINCT FROM {was_old} OR {new} IS NULL THEN
    {new} := {pair.up};
  END IF;
  RETURN NEW;
END"""
    tag = "$osc$"
    while tag in body:
        tag = f"${tag.strip('$')}x$"
    return (
        f"CREATE OR REPLACE FUNCTION {quote_ident(pair.name)}() RETURNS trigger LANGUAGE plpgsql "
        f"AS {tag}\n{body}\n{tag}"
    )


def install_sql(pair: SyncPair) -> str:
    """The function and its trigger. The trigger is created in the same transaction as the new
    column, so no write committed after the column appears can miss it."""
    table, name = quote_ident(pair.table), quote_ident(pair.name)
    return (
        f"{function_sql(pair)};\n"
        f"CREATE OR REPLACE TRIGGER {name} BEFORE INSERT OR UPDATE ON {table} "
        f"FOR EACH ROW EXECUTE FUNCTION {name}()"
    )


def remove_statements(pair: SyncPair) -> list[str]:
    table, name = quote_ident(pair.table), quote_ident(pair.name)
    return [f"DROP TRIGGER IF EXISTS {name} ON {table}", f"DROP FUNCTION IF EXISTS {name}()"]


def remove_sql(pair: SyncPair) -> str:
    return ";\n".join(remove_statements(pair))
