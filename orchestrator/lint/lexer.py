"""Split SQL text into statements with their positions and comments, before any parser sees it.

Splitting ourselves, rather than asking pglast or sqlglot for the whole file, gives both engines the
same positions (every statement counted, BEGIN/COMMIT/SET included), keeps a syntax error local to
one statement, and keeps the comments a parser would drop: suppressions live in them.
The lexer knows only what decides where a statement ends: quotes, comments, dollar quotes
(PostgreSQL), backticks and the client's DELIMITER command (MySQL), and the BEGIN ... END body of a
routine (a procedure sent without DELIMITER is still one statement to the server).
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass, field
from typing import Literal

Dialect = Literal["postgres", "mysql"]

_DOLLAR_TAG = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)?\$")
# A routine whose body is BEGIN ... END (MySQL, PostgreSQL's BEGIN ATOMIC) holds semicolons: the server
# reads it as one statement even without a client DELIMITER.
_ROUTINE = re.compile(
    r"CREATE\s+(?:OR\s+REPLACE\s+)?(?:DEFINER\s*=\s*\S+\s+)?(?:AGGREGATE\s+)?"
    r"(?:PROCEDURE|FUNCTION|TRIGGER|EVENT)\b",
    re.IGNORECASE,
)
_NOT_BLOCK_END = ("IF", "LOOP", "WHILE", "REPEAT")
_DELIMITER_COMMAND = re.compile(r"[ \t]*DELIMITER[ \t]+(\S+)[ \t]*(?:\r?\n|$)", re.IGNORECASE)


@dataclass(frozen=True)
class Comment:
    text: str
    line: int
    start: int


@dataclass(frozen=True)
class RawStatement:
    index: int
    text: str
    start: int
    end: int
    line: int
    column: int
    end_line: int
    comments: tuple[Comment, ...] = ()


@dataclass
class SplitResult:
    statements: list[RawStatement]
    # Comments after the last statement: a suppression here applies to nothing.
    stray_comments: list[Comment] = field(default_factory=list)


class _Lines:
    def __init__(self, text: str) -> None:
        self._starts = [0] + [match.end() for match in re.finditer(r"\n", text)]

    def line(self, offset: int) -> int:
        return bisect.bisect_right(self._starts, offset)

    def column(self, offset: int) -> int:
        return offset - self._starts[self.line(offset) - 1] + 1


def position(text: str, offset: int) -> tuple[int, int]:
    """1-based (line, column) of a character offset."""
    lines = _Lines(text)
    return lines.line(offset), lines.column(offset)


def _is_word_char(char: str) -> bool:
    return char.isalnum() or char in "_$"


def split_statements(text: str, dialect: Dialect) -> SplitResult:
    lines = _Lines(text)
    mysql = dialect == "mysql"
    comments: list[Comment] = []
    spans: list[tuple[int, int]] = []  # (first token, end) of each non-empty statement
    delimiter = ";"
    depth = 0  # BEGIN ... END blocks open in a routine body, where ';' ends inner statements only
    start: int | None = None
    i, length = 0, len(text)

    def at_line_start(offset: int) -> bool:
        return text[text.rfind("\n", 0, offset) + 1 : offset].strip() == ""

    while i < length:
        char = text[i]
        client_command = char in "dD" if mysql else char == "\\"
        if start is None and client_command and at_line_start(i):
            if mysql:
                command = _DELIMITER_COMMAND.match(text, text.rfind("\n", 0, i) + 1)
                if command is not None:
                    delimiter = command.group(1)
                    i = command.end()
                    continue
            elif char == "\\":  # a psql meta-command (\set, \connect): not SQL, skip the line
                end = text.find("\n", i)
                i = length if end < 0 else end + 1
                continue
        if char.isspace():
            i += 1
            continue
        if text.startswith(delimiter, i) and depth == 0:
            if start is not None:
                spans.append((start, i))
                start = None
            i += len(delimiter)
            continue
        comment_end = _comment_end(text, i, mysql)
        if comment_end is not None:
            comments.append(Comment(text[i:comment_end], lines.line(i), i))
            i = comment_end
            continue
        if start is None:
            start = i
        end = _token_end(text, i, mysql)
        if delimiter != ";":
            # A client DELIMITER such as $$ may touch a word (END$$); under one, the client splits
            # and routine bodies need no block counting.
            cut = text.find(delimiter, i + 1, end)
            end = cut if cut > i else end
        word = text[i:end].upper()
        if delimiter == ";" and word in ("BEGIN", "CASE", "END") and _ROUTINE.match(text, start):
            depth = _block_depth(text, end, word, depth)
        i = end
    if start is not None:
        spans.append((start, length))

    statements = []
    for index, (first, end) in enumerate(spans):
        body = text[first:end].rstrip()
        last = first + len(body)
        statements.append(
            RawStatement(
                index=index,
                text=body,
                start=first,
                end=last,
                line=lines.line(first),
                column=lines.column(first),
                end_line=lines.line(max(first, last - 1)),
            )
        )
    return _attach_comments(statements, comments)


def _block_depth(text: str, after: int, word: str, depth: int) -> int:
    """BEGIN and CASE open a block; END closes one unless it ends an IF, LOOP, WHILE or REPEAT."""
    if word in ("BEGIN", "CASE"):
        previous = text[: after - len(word)].rstrip().rsplit(None, 1)
        ends_case = word == "CASE" and bool(previous) and previous[-1].upper() == "END"
        return depth if ends_case else depth + 1
    following = text[after:].lstrip().split(None, 1)
    closes = not following or following[0].upper().rstrip(";") not in _NOT_BLOCK_END
    return max(0, depth - 1) if closes else depth


def _comment_end(text: str, i: int, mysql: bool) -> int | None:
    if text.startswith("--", i):
        # MySQL reads `--` as a comment only when whitespace follows (`1--1` is arithmetic).
        if mysql and i + 2 < len(text) and not text[i + 2].isspace():
            return None
        end = text.find("\n", i)
        return len(text) if end < 0 else end
    if mysql and text[i] == "#":
        end = text.find("\n", i)
        return len(text) if end < 0 else end
    if text.startswith("/*", i):
        if mysql:  # no nesting in MySQL; `/*! ... */` version comments are read as comments too
            end = text.find("*/", i + 2)
            return len(text) if end < 0 else end + 2
        depth, j = 0, i
        while j < len(text):
            if text.startswith("/*", j):
                depth, j = depth + 1, j + 2
            elif text.startswith("*/", j):
                depth, j = depth - 1, j + 2
                if depth == 0:
                    return j
            else:
                j += 1
        return len(text)
    return None


def _token_end(text: str, i: int, mysql: bool) -> int:
    """The end of the token at i: a quoted string or identifier in one piece, else one character."""
    char = text[i]
    if char == "'":
        backslashes = mysql or (i > 0 and text[i - 1] in "eE" and (i < 2 or not _is_word_char(text[i - 2])))
        return _quoted_end(text, i, "'", backslashes)
    if char == '"':
        return _quoted_end(text, i, '"', mysql)
    if char == "`" and mysql:
        return _quoted_end(text, i, "`", False)
    if char == "$" and not mysql and (i == 0 or not _is_word_char(text[i - 1])):
        tag = _DOLLAR_TAG.match(text, i)
        if tag is not None:
            close = text.find(tag.group(0), tag.end())
            return len(text) if close < 0 else close + len(tag.group(0))
    if _is_word_char(char):
        j = i
        while j < len(text) and _is_word_char(text[j]):
            j += 1
        return j
    return i + 1


def _quoted_end(text: str, i: int, quote: str, backslashes: bool) -> int:
    j = i + 1
    while j < len(text):
        if backslashes and text[j] == "\\":
            j += 2
            continue
        if text[j] == quote:
            if text.startswith(quote * 2, j):  # a doubled quote is the quote character itself
                j += 2
                continue
            return j + 1
        j += 1
    return len(text)  # unterminated: the parser reports it with its position


def _attach_comments(statements: list[RawStatement], comments: list[Comment]) -> SplitResult:
    """A comment belongs to the statement it is inside, to the statement ending on its line (a
    trailing `-- ...` after the semicolon), or else to the next statement."""
    attached: dict[int, list[Comment]] = {}
    stray: list[Comment] = []
    starts = [statement.start for statement in statements]
    for comment in comments:
        following = bisect.bisect_right(starts, comment.start)
        previous = statements[following - 1] if following > 0 else None
        if previous is not None and (comment.start < previous.end or (comment.line == previous.end_line)):
            attached.setdefault(previous.index, []).append(comment)
        elif following < len(statements):
            attached.setdefault(following, []).append(comment)
        else:
            stray.append(comment)
    result = [
        RawStatement(
            index=statement.index,
            text=statement.text,
            start=statement.start,
            end=statement.end,
            line=statement.line,
            column=statement.column,
            end_line=statement.end_line,
            comments=tuple(attached.get(statement.index, ())),
        )
        for statement in statements
    ]
    return SplitResult(result, stray)
