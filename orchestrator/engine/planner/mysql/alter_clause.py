"""alter_table's clause: parsed with sqlglot (MySQL dialect) to be one ALTER clause list for the named
table and nothing else, then read into AlterFacts (what it adds, drops, renames; whether old code
survives it) for the stage placement and the choice of copy tool."""

from __future__ import annotations

import re

import sqlglot
from sqlglot import TokenType, exp
from sqlglot.dialects.mysql import MySQL
from sqlglot.errors import ParseError, TokenError

from orchestrator.domain.copy_tools import AlterFacts
from orchestrator.domain.errors import SpecError

# How the tools find renames, re-created from their sources so a disagreement is caught at plan time.
# pt-osc 3.x (find_renamed_cols): drop the first COMMENT '...' (case-sensitive, up to the last quote),
# then match CHANGE [COLUMN] <ident> <ident> anywhere.
_PTOSC_COMMENTS = (
    re.compile(r"^(.*?)\s+COMMENT\s+'(.*?[^\\]')+(.*)", re.DOTALL),
    re.compile(r'^(.*?)\s+COMMENT\s+"(.*?[^\\]")+(.*)', re.DOTALL),
)
_PTOSC_IDENT = r"(?:(?!\d+[.\s])[0-9a-zA-Z_\u0080-\uffff$]+|`(?:[^`]|``)+`|\"(?:[^\"]|\"\")+\")"
_PTOSC_CHANGE = re.compile(rf"\bCHANGE\s+(?:COLUMN\s+)?({_PTOSC_IDENT})\s+({_PTOSC_IDENT})", re.IGNORECASE)
# gh-ost (go/sql/parser.go): split on commas outside '...' and (...), blank out '...', then per token.
_GHOST_CHANGE = re.compile(r"(?i)\bchange\s+(column\s+|)(\S+)\s+(\S+)\s+")
_GHOST_QUOTES = re.compile(r"('[^']*')")
# Clauses sqlglot does not parse that are still welcome (as "not understood": treated as breaking).
_UNREAD_FORMS = re.compile(
    r"(?i)\s*(CONVERT\s+TO\s+(CHARACTER\s+SET|CHARSET)\s+\w+|ADD\s+(COLUMN\s+)?\(.+\)|"
    r"PARTITION\s+BY\s+.+|REMOVE\s+PARTITIONING|(ADD|REORGANIZE|COALESCE)\s+PARTITION.+)",
    re.DOTALL,
)
# Table options a copy rebuilds with and old code never notices.
_HARMLESS_OPTIONS = (
    exp.EngineProperty,
    exp.CharacterSetProperty,
    exp.CollateProperty,
    exp.RowFormatProperty,
    exp.AutoIncrementProperty,
    exp.SchemaCommentProperty,
)


def _refuse(message: str) -> SpecError:
    return SpecError([("alter", message)])


def _name(node: exp.Expression | None) -> str:
    return node.name.lower() if node is not None else ""


def parse_clause(table: str, clause: str) -> tuple[exp.Expression, bool]:
    """The parsed `ALTER TABLE <table> <clause>` and whether sqlglot understood it (False: it only
    tokenised it, as for CONVERT TO CHARACTER SET). SpecError for anything that is not one clause list
    for that table."""
    text = clause.strip().rstrip(";").strip()
    if not text:
        raise _refuse("the ALTER clause is empty")
    if re.match(r"(?i)ALTER\s+(ONLINE\s+|IGNORE\s+)?TABLE\b", text):
        raise _refuse(f"write only the clauses, without ALTER TABLE {table}, e.g. 'ADD COLUMN note text'")
    statement = f"ALTER TABLE `{table}` {text}"
    try:
        tokens = MySQL().tokenize(statement)
    except TokenError as error:
        raise _refuse(f"not valid MySQL: {error}") from error
    if any(token.comments for token in tokens):
        raise _refuse("comments are not allowed in the ALTER clause (MySQL runs /*! ... */ as code)")
    if any(token.token_type is TokenType.SEMICOLON for token in tokens):
        raise _refuse("one ALTER clause list only: no ';'")
    try:
        parsed = sqlglot.parse(statement, read="mysql")
    except ParseError as error:
        raise _refuse(f"not a valid MySQL ALTER TABLE clause: {error.errors[0]['description']}") from error
    if len(parsed) != 1 or parsed[0] is None:
        raise _refuse("one ALTER clause list only")
    tree = parsed[0]
    if isinstance(tree, exp.Command):
        # One statement, but sqlglot could not read it: only the few legitimate forms it lacks pass.
        if not _UNREAD_FORMS.match(text):
            raise _refuse(
                "not a MySQL ALTER TABLE clause osctl can read; forms it takes without reading them in "
                "detail: CONVERT TO CHARACTER SET, ADD [COLUMN] (...), partitioning"
            )
        return tree, False
    if not isinstance(tree, exp.Alter) or str(tree.args.get("kind", "")).upper() != "TABLE":
        raise _refuse("must be an ALTER TABLE clause list")
    if _name(tree.this) != table or tree.this.args.get("db"):
        raise _refuse(f"the clause must alter {table} only")
    return tree, True


def analyse(table: str, clause: str) -> AlterFacts:
    """Validate the clause and say what it does. Unknown constructs count as not backward compatible."""
    tree, understood = parse_clause(table, clause)
    tool_reads = {"ptosc_reads_renames": ptosc_renames(clause), "ghost_reads_renames": ghost_renames(clause)}
    if not understood:
        return AlterFacts(
            parsed=False,
            renamed_columns=tool_reads["ptosc_reads_renames"],
            incompatible=("osctl cannot read this clause in detail, so it treats it as breaking",),
            **tool_reads,
        )
    added: list[str] = []
    dropped: list[str] = []
    renamed: list[tuple[str, str]] = []
    modified: list[str] = []
    unique_keys: list[tuple[str, ...]] = []
    adds_fk = drops_fk = drops_pk = adds_pk = False
    incompatible: list[str] = []

    for option in tree.args.get("options") or []:
        if isinstance(option, exp.AlgorithmProperty | exp.LockProperty):
            raise _refuse("leave ALGORITHM and LOCK out: osctl picks them (strategy: direct) or copies")
        if not isinstance(option, _HARMLESS_OPTIONS):
            incompatible.append(f"table option {option.sql('mysql')}")
    for action in tree.args.get("actions") or []:
        match action:
            case exp.ColumnDef():
                name = _name(action.this)
                added.append(name)
                if _not_null_without_default(action):
                    incompatible.append(f"new column {name} is NOT NULL without a default")
            case exp.Drop():
                kind = str(action.args.get("kind", "")).upper()
                names = [_name(item) for item in action.args.get("tables") or []]
                if kind == "COLUMN":
                    dropped.extend(names)
                    incompatible.extend(f"drops column {name}" for name in names)
                elif kind == "FOREIGN KEY":
                    drops_fk = True
                elif kind != "INDEX":
                    raise _refuse(f"cannot drop {kind.lower() or 'that'} in a copy")
            case exp.DropPrimaryKey():
                drops_pk = True
                incompatible.append("drops the primary key")
            case exp.ModifyColumn():
                new = _name(action.this)
                old = _name(action.args.get("rename_from")) or new
                if old != new:
                    renamed.append((old, new))
                    incompatible.append(f"renames column {old} to {new}")
                else:
                    modified.append(new)
                    incompatible.append(f"changes the definition of column {new}")
            case exp.RenameColumn():
                old, new = _name(action.this), _name(action.args.get("to"))
                renamed.append((old, new))
                incompatible.append(f"renames column {old} to {new}")
            case exp.AlterColumn():
                modified.append(_name(action.this))  # SET/DROP DEFAULT: metadata only, harmless
            case exp.AddConstraint():
                for constraint in action.expressions:
                    inner = (
                        constraint.expressions[0] if isinstance(constraint, exp.Constraint) else constraint
                    )
                    if isinstance(inner, exp.UniqueColumnConstraint):
                        columns = _key_columns(inner.this)
                        unique_keys.append(columns)
                        incompatible.append(f"adds a unique key on ({', '.join(columns)})")
                    elif isinstance(inner, exp.PrimaryKey):
                        adds_pk = True
                        columns = tuple(_name(column) for column in inner.expressions)
                        unique_keys.append(columns)
                        incompatible.append(f"adds a primary key on ({', '.join(columns)})")
                    elif isinstance(inner, exp.ForeignKey):
                        adds_fk = True
                        incompatible.append("adds a foreign key")
                    elif not isinstance(inner, exp.IndexColumnConstraint):
                        incompatible.append(f"adds {inner.sql('mysql')}")
            case exp.RenameIndex() | exp.ForceProperty():
                pass
            case exp.AlterRename():
                raise _refuse("renaming the table is not a copy; use raw SQL")
            case _:
                incompatible.append(f"{action.sql('mysql')} (not understood in detail)")
    return AlterFacts(
        added_columns=tuple(added),
        dropped_columns=tuple(dropped),
        renamed_columns=tuple(renamed),
        modified_columns=tuple(modified),
        added_unique_keys=tuple(unique_keys),
        adds_foreign_key=adds_fk,
        drops_foreign_key=drops_fk,
        drops_primary_key=drops_pk,
        adds_primary_key=adds_pk,
        incompatible=tuple(incompatible),
        **tool_reads,
    )


def _unquote(identifier: str) -> str:
    if len(identifier) >= 2 and identifier[0] == identifier[-1] and identifier[0] in '`"':
        quote = identifier[0]
        return identifier[1:-1].replace(quote * 2, quote)
    return identifier


def ptosc_renames(clause: str) -> tuple[tuple[str, str], ...]:
    """The renames pt-osc 3.x reads in `clause` (old lower-cased, same-name CHANGEs left out)."""
    text = clause
    for comment in _PTOSC_COMMENTS:
        text = comment.sub(r"\1\3", text, count=1)
    found: dict[str, str] = {}
    for old, new in _PTOSC_CHANGE.findall(text):
        old, new = _unquote(old), _unquote(new)
        if old.lower() != new.lower():
            found[old.lower()] = new.lower()
    return tuple(found.items())


def _ghost_tokens(clause: str) -> list[str]:
    tokens: list[str] = []
    current: list[str] = []
    closing = ""
    for char in clause:
        if closing:
            closing = "" if char == closing else closing
        elif char == "'":
            closing = "'"
        elif char == "(":
            closing = ")"
        elif char == ",":
            tokens.append("".join(current).strip())
            current = []
            continue
        current.append(char)
    tokens.append("".join(current).strip())
    return [token for token in tokens if token]


def ghost_renames(clause: str) -> tuple[tuple[str, str], ...]:
    """The renames gh-ost reads in `clause` (old lower-cased, same-name CHANGEs left out)."""
    found: dict[str, str] = {}
    for token in _ghost_tokens(clause):
        for _, old, new in _GHOST_CHANGE.findall(_GHOST_QUOTES.sub("''", token) + " "):
            old, new = _unquote(old), _unquote(new)
            if old != new:
                found[old.lower()] = new.lower()
    return tuple(found.items())


def _not_null_without_default(column: exp.ColumnDef) -> bool:
    kinds = [constraint.args.get("kind") for constraint in column.args.get("constraints") or []]
    not_null = any(
        isinstance(kind, exp.NotNullColumnConstraint) and not kind.args.get("allow_null") for kind in kinds
    )
    default = any(
        isinstance(kind, exp.DefaultColumnConstraint | exp.AutoIncrementColumnConstraint) for kind in kinds
    )
    return not_null and not default


def _key_columns(schema: exp.Expression | None) -> tuple[str, ...]:
    if not isinstance(schema, exp.Schema):
        return ()
    return tuple(
        _name(column.this if isinstance(column, exp.ColumnPrefix) else column)
        for column in schema.expressions
    )
