"""Does a normalised statement (pg_stat_statements text, a MySQL digest) use a table or a column?

Decided on the parse tree: a column counts only in a statement on its table, named unqualified or
through that table's name or alias, so a column called `status` of another table is not a use.
`SELECT *` and an INSERT without a column list touch every column without naming it; they are told
apart (`star`) because dropping a column changes them without breaking them by name. A statement the
parser cannot read (a MySQL digest cut at its length limit, say) falls back to matching whole
identifier tokens, and says so (`parsed=False`). Only data statements count: DDL is not a use.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pglast
import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

_PG_DATA_STATEMENTS = {"SelectStmt", "InsertStmt", "UpdateStmt", "DeleteStmt", "MergeStmt", "CopyStmt"}
_PG_SCHEMAS = {None, "public"}


@dataclass(frozen=True)
class Reference:
    column: bool = False  # the column is named
    star: bool = False  # every column is touched without naming them (SELECT *, INSERT without a list)
    parsed: bool = True  # False: the text did not parse and identifier tokens were matched instead


def references(sql: str, engine: str, table: str, column: str | None = None) -> Reference | None:
    """How `sql` uses `table` (and `column`), or None when it does not (or is not a data statement)."""
    if engine == "mysql":
        return _mysql(sql, table, column)
    return _postgres(sql, table, column)


# -- PostgreSQL (pglast) ---------------------------------------------------------------------------


def _postgres(sql: str, table: str, column: str | None) -> Reference | None:
    try:
        statements = pglast.parse_sql(sql)
    except pglast.parser.ParseError:
        return _by_tokens(sql, table, column)
    found: Reference | None = None
    for raw in statements:
        if raw.stmt is None:
            continue
        tree = raw.stmt(skip_none=True)
        if tree.get("@") not in _PG_DATA_STATEMENTS:
            continue
        reference = _pg_statement(tree, table, column)
        if reference is not None:
            found = _merge(found, reference)
    return found


def _pg_statement(tree: dict[str, Any], table: str, column: str | None) -> Reference | None:
    qualifiers: set[str] = set()
    for node in _nodes(tree):
        if (
            node.get("@") == "RangeVar"
            and node.get("relname") == table
            and node.get("schemaname") in _PG_SCHEMAS
        ):
            qualifiers.add(table)
            alias = node.get("alias", {}).get("aliasname")
            if alias:
                qualifiers.add(alias)
    if not qualifiers:
        return None
    named = star = False
    for node in _nodes(tree):
        kind = node.get("@")
        if kind == "ColumnRef":
            fields = node.get("fields", ())
            names = [field.get("sval") for field in fields]
            qualified = len(names) == 1 or names[-2] in qualifiers
            if fields and fields[-1].get("@") == "A_Star":
                star = star or qualified
            elif column is not None and names[-1] == column and qualified:
                named = True
        elif (
            kind in ("InsertStmt", "UpdateStmt", "CopyStmt")
            and node.get("relation", {}).get("relname") == table
        ):
            listed = _pg_listed_columns(node)
            if listed is None:
                star = True
            elif column in listed:
                named = True
    return Reference(column=named, star=star)


def _pg_listed_columns(node: dict[str, Any]) -> set[str] | None:
    """The columns an INSERT, UPDATE or COPY names for its own table; None when it lists none."""
    kind = node["@"]
    if kind == "UpdateStmt":
        return {target.get("name") for target in node.get("targetList", ())}
    if kind == "CopyStmt":
        if "attlist" not in node:
            return None
        return {item.get("sval") for item in node["attlist"]}
    listed = {target.get("name") for target in node.get("cols", ())}
    conflict = node.get("onConflictClause", {})
    listed |= {target.get("name") for target in conflict.get("targetList", ())}
    listed |= {elem.get("name") for elem in conflict.get("infer", {}).get("indexElems", ())}
    return listed if "cols" in node else None


def _nodes(value: Any) -> Iterator[dict[str, Any]]:
    if isinstance(value, dict):
        yield value
        for item in value.values():
            yield from _nodes(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _nodes(item)


# -- MySQL (sqlglot over performance_schema digests) -----------------------------------------------

_ELIDED_LIST = re.compile(r"\(\s*\.\.\.\s*\)")
_COMMENT = re.compile(r"/\*.*?\*/", re.DOTALL)


def mysql_digest_sql(text: str) -> str | None:
    """A digest made parseable: `IN (...)` -> `IN (?)`, comments gone; None when it was cut short."""
    cleaned = _COMMENT.sub(" ", _ELIDED_LIST.sub("(?)", text)).strip()
    if cleaned.endswith("...") or not cleaned:
        return None
    return cleaned


def _mysql(sql: str, table: str, column: str | None) -> Reference | None:
    cleaned = mysql_digest_sql(sql)
    if cleaned is None:
        return _by_tokens(sql, table, column)
    try:
        trees = [tree for tree in sqlglot.parse(cleaned, read="mysql") if tree is not None]
    except SqlglotError:
        return _by_tokens(sql, table, column)
    found: Reference | None = None
    for tree in trees:
        if not isinstance(tree, exp.Expression) or not isinstance(tree, exp.Query | exp.DML):
            continue
        reference = _mysql_statement(tree, table.lower(), column.lower() if column else None)
        if reference is not None:
            found = _merge(found, reference)
    return found


def _mysql_statement(tree: exp.Expression, table: str, column: str | None) -> Reference | None:
    qualifiers: set[str] = set()
    for found in tree.find_all(exp.Table):
        if found.name.lower() == table:
            qualifiers.add(table)
            if found.alias:
                qualifiers.add(found.alias.lower())
    if not qualifiers:
        return None
    named = star = False
    for reference in tree.find_all(exp.Column):
        qualified = not reference.table or reference.table.lower() in qualifiers
        if isinstance(reference.this, exp.Star):
            star = star or qualified
        elif column is not None and reference.name.lower() == column and qualified:
            named = True
    if any(isinstance(select, exp.Select) and select.is_star for select in tree.find_all(exp.Select)):
        star = True
    if isinstance(tree, exp.Insert):
        target = tree.this
        if isinstance(target, exp.Schema):
            named = named or any(
                isinstance(item, exp.Identifier) and item.name.lower() == column
                for item in target.expressions
            )
        elif isinstance(target, exp.Table) and target.name.lower() == table:
            star = True
    return Reference(column=named, star=star)


# -- shared ----------------------------------------------------------------------------------------

_TOKEN = re.compile(
    r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|`(?:[^`]|``)*`|\$\d+|\?|\.\.\.|\d+(?:\.\d+)?(?:[eE][-+]?\d+)?"
    r"|[A-Za-z_][A-Za-z0-9_$]*|<=>|::|>=|<=|<>|!=|\|\||\S"
)


def tokens(sql: str) -> list[str]:
    """Normalised tokens: identifiers unquoted and lower-cased, every constant and parameter `?`, and a
    parenthesised list of constants `( ... )` the way a MySQL digest writes it."""
    out: list[str] = []
    for token in _TOKEN.findall(_COMMENT.sub(" ", sql)):
        if token[0] == "'" or token[0].isdigit() or token[0] == "$" or token == "?":
            out.append("?")
        elif token[0] in '"`':
            out.append(token[1:-1].lower())
        else:
            out.append(token.lower())
    return _collapse_lists(out)


def _collapse_lists(items: list[str]) -> list[str]:
    out: list[str] = []
    for token in items:
        out.append(token)
        if token != ")":
            continue
        start = len(out) - 2
        while start >= 0 and out[start] in ("?", ","):
            start -= 1
        inner = out[start + 1 : -1]
        if start >= 0 and out[start] == "(" and inner.count("?") >= 2:
            out[start + 1 :] = ["...", ")"]
    return out


def contains_expression(sql: str, expression: str) -> bool:
    """Whether `sql` carries `expression` token for token (constants aside): how osctl recognises its
    own backfill and verify statements, which embed the plan's backfill expression."""
    wanted = tokens(expression)
    have = tokens(sql)
    if not wanted:
        return False
    width = len(wanted)
    return any(have[start : start + width] == wanted for start in range(len(have) - width + 1))


def _by_tokens(sql: str, table: str, column: str | None) -> Reference | None:
    words = {token for token in tokens(sql) if token[:1].isalpha() or token[:1] == "_"}
    if table.lower() not in words:
        return None
    return Reference(column=column is not None and column.lower() in words, star="*" in sql, parsed=False)


def _merge(left: Reference | None, right: Reference) -> Reference:
    if left is None:
        return right
    return Reference(
        column=left.column or right.column, star=left.star or right.star, parsed=left.parsed and right.parsed
    )
