"""Ecto's logged migration SQL (`mix ecto.migrate --log-migrations-sql`) back into SQL statements.

Ecto logs each query as a `[debug] QUERY OK db=1.2ms` line followed by the SQL and its parameters:

    12:36:38.471 [debug] QUERY OK db=1.9ms
    ALTER TABLE "users" ADD COLUMN "age" integer []

The SQL has no terminating semicolon and ends with the parameter list (`[]`, `[20240101, ~N[...]]`).
Every other line is blanked rather than removed, so positions still point into the log as given.
"""

from __future__ import annotations

import re

_LOG_LINE = re.compile(
    r"^\s*(?:\d{2}:\d{2}:\d{2}(?:\.\d+)?\s+)?(?:[\w.-]+=\S*\s+)*\[(?:debug|info|notice|warning|warn|error)\]"
)
_QUERY_LINE = re.compile(_LOG_LINE.pattern + r"\s*QUERY (?:OK|ERROR)\b")


def looks_like_ecto_log(text: str) -> bool:
    return any(_QUERY_LINE.match(line) for line in text.splitlines())


def ecto_log_to_sql(text: str) -> str:
    lines = text.split("\n")
    out = [""] * len(lines)
    number = 0
    while number < len(lines):
        if not _QUERY_LINE.match(lines[number]):
            number += 1
            continue
        block_start = number + 1
        number = block_start
        while number < len(lines) and not _LOG_LINE.match(lines[number]):
            number += 1
        block = list(range(block_start, number))
        while block and not lines[block[-1]].strip():
            block.pop()
        if not block:
            continue
        for line_number in block:
            out[line_number] = lines[line_number]
        last = block[-1]
        out[last] = _without_parameters(lines[last].rstrip()) + ";"
    return "\n".join(out)


def _without_parameters(line: str) -> str:
    """Drop the trailing parameter list: the last ` [` whose bracket closes exactly at the end."""
    if not line.endswith("]"):
        return line
    candidate = line.rfind(" [")
    while candidate >= 0:
        if _closes_at_end(line[candidate + 1 :]):
            return line[:candidate].rstrip()
        candidate = line.rfind(" [", 0, candidate)
    return line


def _closes_at_end(tail: str) -> bool:
    depth = 0
    for position, char in enumerate(tail):
        if char == "[":
            depth += 1
        elif char == "]":
            depth -= 1
            if depth == 0:
                return position == len(tail) - 1
    return False
