"""SQL fragments the table operations share: relation lookups that keep a replayed step harmless.

A step may run again after a crash between its commit and its checkpoint. Renames and drops have no
IF [NOT] EXISTS form that is safe when the old name is reused (a table renamed away leaves a view of
the same name behind), so those steps are DO blocks that look the relations up by kind first.
"""

from __future__ import annotations

from orchestrator.domain.identifiers import quote_ident, quote_literal

# pg_class.relkind of an ordinary and of a partitioned table.
TABLE_KINDS = "('r', 'p')"


def regclass(name: str) -> str:
    """`to_regclass('"name"')`: the relation's oid through the search path, NULL when there is none."""
    return f"to_regclass({quote_literal(quote_ident(name))})"


def is_table(name: str) -> str:
    return f"EXISTS (SELECT 1 FROM pg_class WHERE oid = {regclass(name)} AND relkind IN {TABLE_KINDS})"  # noqa: S608 - quoted


def is_view(name: str) -> str:
    return f"EXISTS (SELECT 1 FROM pg_class WHERE oid = {regclass(name)} AND relkind = 'v')"  # noqa: S608 - quoted


def do_block(body: str, declare: str = "") -> str:
    """A DO block around `body` (statements, each ending with ';'), indented as a DBA would read it;
    `declare` holds its variables (`name type;`)."""
    indented = "\n".join(f"  {line}" if line else line for line in body.strip().splitlines())
    declarations = f"DECLARE\n  {declare}\n" if declare else ""
    return f"DO $osc$\n{declarations}BEGIN\n{indented}\nEND\n$osc$"
