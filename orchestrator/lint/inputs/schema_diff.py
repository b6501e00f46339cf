"""A unified diff of a schema dump (Rails `db/structure.sql`) into the statements the change implies.

A dump is the end state, not the migration: a new column shows as one added line inside an unchanged
`CREATE TABLE`. So statements the diff adds whole are kept as they are; a column line added, removed
or changed inside an existing table becomes the ALTER TABLE it stands for; a table or index the diff
removes becomes its DROP. Unchanged statements are left out. Each statement sits on the diff line it
comes from and every other line is blank, so positions still point into the diff as given.

git puts the first line of the enclosing statement after the hunk header (`@@ ... @@ CREATE TABLE
public.users (`) because dump statements start in column 0; that is how a hunk opening inside a
table's column list is recognised. A hunk opening inside any other statement cannot be read whole and
is refused with its position (rerun git diff with --function-context).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

import pglast
from pglast import ast
from pglast.stream import RawStream

from orchestrator.lint.findings import UnparsableSqlError

Engine = Literal["postgres", "mysql"]

_HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@ ?(.*)$")
_CREATE_TABLE = re.compile(r"^CREATE (?:UNLOGGED |TEMPORARY |TEMP )?TABLE (?:IF NOT EXISTS )?(\S+) \($", re.I)
_CREATE_INDEX = re.compile(r"^CREATE (?:UNIQUE )?INDEX (?:CONCURRENTLY )?(?:IF NOT EXISTS )?(\S+) ON ", re.I)
_STATEMENT_START = re.compile(
    r"^(?:CREATE|ALTER|DROP|INSERT|UPDATE|DELETE|SET|SELECT|COMMENT|GRANT|REVOKE|BEGIN|COMMIT|"
    r"START|WITH|TRUNCATE|VACUUM|REINDEX|CLUSTER|ANALYZE|LOCK|RENAME|OPTIMIZE|USE|--|/\*)",
    re.I,
)
_SCHEMA_MIGRATION_ROW = re.compile(r"^\s*\('\d+'\)[,;]?\s*$")
_TABLE_ELEMENT = re.compile(r"^\s+(`[^`]+`|\"[^\"]+\"|[\w$]+)\s+(.*?)\s*,?\s*$")
_CONSTRAINT_WORDS = {
    "constraint",
    "primary",
    "unique",
    "check",
    "foreign",
    "exclude",
    "key",
    "index",
    "fulltext",
    "spatial",
    "like",
}


def looks_like_diff(text: str) -> bool:
    lines = text.splitlines()
    return any(_HUNK.match(line) for line in lines) and any(
        line.startswith(("--- ", "+++ ", "diff --git")) for line in lines
    )


@dataclass
class _Line:
    number: int  # 0-based line of the diff
    kind: str  # " " context, "+" added, "-" removed
    text: str


@dataclass
class _Hunk:
    context: str
    lines: list[_Line] = field(default_factory=list)


def diff_to_sql(text: str, engine: Engine) -> str:
    lines = text.split("\n")
    out = [""] * len(lines)
    for hunk in _hunks(lines):
        _Reader(hunk, out, engine).read()
    return "\n".join(out)


def _hunks(lines: list[str]) -> list[_Hunk]:
    """Hunks of .sql files. A hunk's header says how many old and new lines it has; counting them is
    what tells a removed SQL comment (`--- Name: users`) from the next file's `--- a/...` header."""
    hunks: list[_Hunk] = []
    current: _Hunk | None = None
    old_left = new_left = 0
    sql_file = True
    for number, line in enumerate(lines):
        if current is not None and (old_left > 0 or new_left > 0):
            kind = line[:1] if line else " "
            if kind == "\\":  # "\ No newline at end of file"
                continue
            if kind in (" ", "-"):
                old_left -= 1
            if kind in (" ", "+"):
                new_left -= 1
            current.lines.append(_Line(number, kind if kind in ("+", "-") else " ", line[1:]))
            continue
        if line.startswith("+++ "):
            path = line[4:].strip()
            sql_file = path == "/dev/null" or path.endswith(".sql")
            continue
        header = _HUNK.match(line)
        if header is None:
            current = None
            continue
        old_left, new_left = int(header.group(2) or 1), int(header.group(4) or 1)
        current = _Hunk(header.group(5)) if sql_file else None
        if current is not None:
            hunks.append(current)
        else:
            old_left = new_left = 0
    return hunks


class _Reader:
    def __init__(self, hunk: _Hunk, out: list[str], engine: Engine) -> None:
        self.hunk = hunk
        self.out = out
        self.engine = engine

    def read(self) -> None:
        lines = self.hunk.lines
        position = 0
        first = next((line for line in lines if line.text.strip()), None)
        if first is not None and not _STATEMENT_START.match(first.text):
            position = self._continue_statement(self.hunk.context, first)
        while position < len(lines):
            line = lines[position]
            table = _CREATE_TABLE.match(line.text.strip())
            if table is not None and line.kind == " ":
                position = self._existing_table(table.group(1), position + 1)
            elif table is not None and line.kind == "-":
                position = self._removed_table(table.group(1), position)
            elif _STATEMENT_START.match(line.text) and not line.text.startswith(("--", "/*")):
                position = self._statement(position)
            else:
                position += 1

    def _continue_statement(self, context: str, first: _Line) -> int:
        """The hunk opens inside a statement: the column list of an existing table, or refuse."""
        table = _CREATE_TABLE.match(context.strip())
        if table is not None:
            return self._existing_table(table.group(1), 0)
        end = self._statement_end(0)
        changed = [line for line in self.hunk.lines[:end] if line.kind == "+" and line.text.strip()]
        if all(_SCHEMA_MIGRATION_ROW.match(line.text) for line in changed):
            return end  # a version row added to schema_migrations: bookkeeping, not schema
        raise UnparsableSqlError(
            first.number + 1,
            1,
            0,
            "this diff hunk opens in the middle of a statement, so the statement cannot be read whole; "
            "rerun git diff with --function-context (or -U with more context lines)",
        )

    def _statement_end(self, position: int) -> int:
        """Index just past the line that ends the statement starting at `position` (new side)."""
        lines = self.hunk.lines
        while position < len(lines):
            line = lines[position]
            position += 1
            if line.kind != "-" and line.text.rstrip().endswith(";"):
                break
        return position

    def _statement(self, start: int) -> int:
        """A whole statement: kept when the diff added to it, turned into its DROP when removed."""
        end = self._statement_end(start)
        body = self.hunk.lines[start:end]
        if any(line.kind == "+" for line in body):
            for line in body:
                if line.kind != "-":
                    self.out[line.number] = line.text
        elif all(line.kind == "-" for line in body if line.text.strip()):
            index = _CREATE_INDEX.match(body[0].text)
            if index is not None:
                self._emit(body[0], f"DROP INDEX {index.group(1)};")
        return end

    def _removed_table(self, name: str, start: int) -> int:
        end = self._block_end(start + 1)
        if all(line.kind == "-" for line in self.hunk.lines[start:end] if line.text.strip()):
            self._emit(self.hunk.lines[start], f"DROP TABLE {name};")
        return end

    def _block_end(self, position: int) -> int:
        lines = self.hunk.lines
        while position < len(lines):
            line = lines[position]
            position += 1
            if line.text.startswith(")"):
                if line.text.rstrip().endswith(";"):
                    break
                return self._statement_end(position)
        return position

    def _existing_table(self, table: str, position: int) -> int:
        """Column lines of a table the diff keeps: each change becomes the ALTER TABLE it implies."""
        lines = self.hunk.lines
        added: dict[str, _Line] = {}
        removed: dict[str, _Line] = {}
        while position < len(lines) and not lines[position].text.startswith(")"):
            line = lines[position]
            position += 1
            element = _TABLE_ELEMENT.match(line.text)
            if line.kind == " " or element is None:
                continue
            first_word = element.group(1).lower()
            if first_word in _CONSTRAINT_WORDS:
                if line.kind == "+":
                    self._emit(line, f"ALTER TABLE {table} ADD {line.text.strip().rstrip(',')};")
                elif first_word in ("key", "index", "fulltext", "spatial") and self.engine == "mysql":
                    name = element.group(2).split()[0] if element.group(2) else ""
                    if name and not name.startswith("("):
                        self._emit(line, f"ALTER TABLE {table} DROP INDEX {name};")
                continue
            (added if line.kind == "+" else removed)[element.group(1)] = line
        if position < len(lines):
            position = self._statement_end(position)
        for name, line in added.items():
            definition = line.text.strip().rstrip(",")
            if name not in removed:
                self._emit(line, f"ALTER TABLE {table} ADD COLUMN {definition};")
                continue
            old = removed[name].text.strip().rstrip(",")
            if old != definition:
                self._emit(line, " ".join(_column_changes(table, name, old, definition, self.engine)))
        for name, line in removed.items():
            if name not in added:
                self._emit(line, f"ALTER TABLE {table} DROP COLUMN {name};")
        return position

    def _emit(self, line: _Line, sql: str) -> None:
        self.out[line.number] = f"{self.out[line.number]} {sql}".strip()


def _column_changes(table: str, name: str, old: str, new: str, engine: Engine) -> list[str]:
    """The ALTER TABLE statements turning one dumped column definition into another."""
    if engine == "mysql":
        return [f"ALTER TABLE {table} MODIFY COLUMN {new};"]
    old_column, new_column = _pg_column(old), _pg_column(new)
    if old_column is None or new_column is None:
        parts = new.split(None, 1)
        return [f"ALTER TABLE {table} ALTER COLUMN {name} TYPE {parts[1]};"] if len(parts) == 2 else []
    statements = []
    if old_column.type != new_column.type:
        statements.append(f"ALTER TABLE {table} ALTER COLUMN {name} TYPE {new_column.type};")
    if new_column.not_null and not old_column.not_null:
        statements.append(f"ALTER TABLE {table} ALTER COLUMN {name} SET NOT NULL;")
    if old_column.not_null and not new_column.not_null:
        statements.append(f"ALTER TABLE {table} ALTER COLUMN {name} DROP NOT NULL;")
    if new_column.default != old_column.default:
        action = f"SET DEFAULT {new_column.default}" if new_column.default else "DROP DEFAULT"
        statements.append(f"ALTER TABLE {table} ALTER COLUMN {name} {action};")
    return statements


@dataclass(frozen=True)
class _PgColumn:
    type: str
    not_null: bool
    default: str | None


def _pg_column(definition: str) -> _PgColumn | None:
    try:
        (statement,) = pglast.parse_sql(f"CREATE TABLE t ({definition})")
    except (pglast.parser.ParseError, ValueError):
        return None
    create = statement.stmt
    if not isinstance(create, ast.CreateStmt) or not create.tableElts:
        return None
    column = create.tableElts[0]
    if not isinstance(column, ast.ColumnDef) or column.typeName is None:
        return None
    not_null, default = False, None
    for constraint in column.constraints or ():
        if constraint.contype == pglast.enums.ConstrType.CONSTR_NOTNULL:
            not_null = True
        elif constraint.contype == pglast.enums.ConstrType.CONSTR_DEFAULT:
            default = RawStream()(constraint.raw_expr)
    return _PgColumn(RawStream()(column.typeName), not_null, default)
