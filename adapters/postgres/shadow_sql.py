"""The statements of a shadow rewrite, built from the live catalog and the step's ShadowWork. No I/O.

Names of tables, columns and indexes are validated and quoted here; defaults, index definitions, type
names and role names come rendered (and quoted) by the server from its own catalog.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from adapters.postgres.shadow_catalog import LiveTable
from orchestrator.domain.identifiers import quote_ident, quote_literal
from orchestrator.domain.shadow import (
    ShadowWork,
    log_table_name,
    old_index_name,
    old_table_name,
    reverse_log_table_name,
    shadow_index_name,
    shadow_table_name,
)

EVENTS = {"i": "INSERT", "u": "UPDATE", "d": "DELETE", "t": "TRUNCATE"}


@dataclass(frozen=True)
class Names:
    """The work objects of one table's rewrite: qualified and quoted, plus the bare names renames take."""

    schema: str
    table_name: str

    def qualified(self, name: str) -> str:
        return f"{quote_ident(self.schema)}.{quote_ident(name)}"

    @property
    def table(self) -> str:
        return self.qualified(self.table_name)

    @property
    def shadow(self) -> str:
        return self.qualified(shadow_table_name(self.table_name))

    @property
    def old(self) -> str:
        return self.qualified(old_table_name(self.table_name))

    @property
    def log(self) -> str:
        return self.qualified(log_table_name(self.table_name))

    @property
    def reverse_log(self) -> str:
        return self.qualified(reverse_log_table_name(self.table_name))

    def function(self, *, reverse: bool) -> str:
        return self.qualified(f"_osc_{'r' if reverse else 'c'}f_{self.table_name}")

    def triggers(self, *, reverse: bool) -> dict[str, str]:
        """Event letter -> quoted trigger name."""
        side = "r" if reverse else "c"
        return {event: quote_ident(f"_osc_{side}{event}_{self.table_name}") for event in EVENTS}


def converted(column: str, expression: str | None, type_name: str | None) -> str:
    """The value a changed column gets on the other side: its expression (or itself), cast."""
    value = f"({expression})" if expression else quote_ident(column)
    return f"CAST({value} AS {type_name})" if type_name else value


def new_column_type(live: LiveTable, work: ShadowWork, column: str) -> str:
    return work.type if column == work.column and work.type else live.column(column).type


# -- the shadow table and the change capture --------------------------------------------------------


def create_shadow(live: LiveTable, work: ShadowWork, names: Names, current_user: str) -> list[str]:
    definitions = []
    for column in live.columns:
        changed = column.name == work.column
        definition = f"{quote_ident(column.name)} {new_column_type(live, work, column.name)}"
        if column.collation and not (changed and work.type):  # a new type brings its own collation
            definition += f" COLLATE {column.collation}"
        default = column.default
        if changed and work.default is not None:
            default = quote_literal(work.default)
        elif changed and work.drop_default:
            default = None
        if column.generated:
            definition += f" GENERATED ALWAYS AS ({column.generated}) STORED"
        elif default:
            definition += f" DEFAULT {default}"
        not_null = (not work.nullable) if changed and work.nullable is not None else column.not_null
        if not_null:
            definition += " NOT NULL"
        definitions.append(definition)
    unlogged = "UNLOGGED " if live.unlogged else ""
    options = f" WITH ({', '.join(live.reloptions)})" if live.reloptions else ""
    statements = [f"CREATE {unlogged}TABLE {names.shadow} ({', '.join(definitions)}){options}"]
    # ALTER rather than inline, so that a NOT VALID check stays NOT VALID (inline ones are validated).
    statements += [
        f"ALTER TABLE {names.shadow} ADD CONSTRAINT {quote_ident(name)} {definition}"
        for name, definition in live.checks
    ]
    statements += [
        f"GRANT {privilege} ON {names.shadow} TO {role}" + (" WITH GRANT OPTION" if grantable else "")
        for privilege, role, grantable in live.grants
    ]
    if live.owner != current_user:
        statements.append(f"ALTER TABLE {names.shadow} OWNER TO {live.owner}")
    return statements


def primary_key(live: LiveTable, names: Names) -> list[str]:
    """The shadow's primary key, built after the copy: one sorted build is cheaper than keeping an
    index up to date through a million inserts. Under the original's constraint name once swapped."""
    name = quote_ident(shadow_index_name(live.name, live.key_constraint))
    key = ", ".join(quote_ident(column) for column in live.key)
    return [
        f"CREATE UNIQUE INDEX IF NOT EXISTS {name} ON {names.shadow} ({key})",
        f"ALTER TABLE {names.shadow} ADD CONSTRAINT {name} PRIMARY KEY USING INDEX {name}",
    ]


def create_log(log: str, key: Sequence[str], types: Sequence[str]) -> str:
    columns = ", ".join(f"{quote_ident(name)} {type_}" for name, type_ in zip(key, types, strict=True))
    return f"CREATE TABLE {log} ({columns})"


def capture(
    names: Names, table: str, log: str, truncates: Sequence[str], key: Sequence[str], *, reverse: bool
) -> list[str]:
    """A statement-level trigger per event on `table`, recording the keys each statement wrote in `log`
    (one insert per statement, however many rows). SECURITY DEFINER: the application's role needs no
    rights on the log; a fixed search_path keeps that safe."""
    columns = ", ".join(quote_ident(name) for name in key)
    function = names.function(reverse=reverse)
    body = f"""
BEGIN
  IF TG_OP = 'TRUNCATE' THEN
    TRUNCATE {", ".join(truncates)};
  ELSIF TG_OP = 'INSERT' THEN
    INSERT INTO {log} ({columns}) SELECT {columns} FROM osc_new;
  ELSIF TG_OP = 'UPDATE' THEN
    INSERT INTO {log} ({columns}) SELECT {columns} FROM osc_new UNION SELECT {columns} FROM osc_old;
  ELSE
    INSERT INTO {log} ({columns}) SELECT {columns} FROM osc_old;
  END IF;
  RETURN NULL;
END"""  # noqa: S608 - names validated and quoted above
    statements = [
        f"CREATE OR REPLACE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER "
        f"SET search_path = pg_catalog, pg_temp AS $osc${body}\n$osc$"
    ]
    transition = {
        "i": " REFERENCING NEW TABLE AS osc_new",
        "u": " REFERENCING OLD TABLE AS osc_old NEW TABLE AS osc_new",
        "d": " REFERENCING OLD TABLE AS osc_old",
        "t": "",
    }
    for event, trigger in names.triggers(reverse=reverse).items():
        statements.append(
            f"CREATE OR REPLACE TRIGGER {trigger} AFTER {EVENTS[event]} ON {table}{transition[event]} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION {function}()"
        )
    return statements


def drop_capture(names: Names, table: str, log: str, *, reverse: bool, present: Collection[str]) -> list[str]:
    """Only triggers that exist are dropped: DROP TRIGGER locks the table even when there is none."""
    statements = [
        f"DROP TRIGGER IF EXISTS {trigger} ON {table}"
        for trigger in names.triggers(reverse=reverse).values()
        if trigger.strip('"') in present
    ]
    statements.append(f"DROP FUNCTION IF EXISTS {names.function(reverse=reverse)}()")
    statements.append(f"DROP TABLE IF EXISTS {log}")
    return statements


# -- indexes ----------------------------------------------------------------------------------------

_INDEX_DEFINITION = re.compile(r"^CREATE (UNIQUE )?INDEX \S+ ON (ONLY )?\S+ USING (.+)$", re.DOTALL)


def shadow_index(definition: str, name: str, shadow: str) -> str:
    """The original's index definition, renamed and pointed at the shadow table."""
    match = _INDEX_DEFINITION.match(definition)
    if match is None:
        raise ValueError(f"unexpected index definition: {definition}")
    unique = match.group(1) or ""
    return f"CREATE {unique}INDEX {quote_ident(name)} ON {shadow} USING {match.group(3)}"


def rename_indexes(pairs: Sequence[tuple[str, str]], schema: str) -> list[str]:
    """Renames in two passes, so that no new name collides with one not renamed yet."""
    return [
        f"ALTER INDEX {quote_ident(schema)}.{quote_ident(current)} RENAME TO {quote_ident(new)}"
        for current, new in pairs
    ]


def forward_index_renames(live: LiveTable) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(the original's indexes to their old names, the shadow's indexes to the original names)."""
    carried = [index.name for index in live.indexes if index.valid]
    return (
        [(name, old_index_name(live.name, name)) for name in carried],
        [(shadow_index_name(live.name, name), name) for name in carried],
    )


# -- copy, replay, verify ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Sync:
    """One direction of the rewrite: rows of `source` made to match in `dest`, keys logged in `log`."""

    source: str
    dest: str
    log: str
    key: tuple[str, ...]
    key_types: tuple[str, ...]  # the source's key types: bounds travel as text and are cast to these
    columns: tuple[str, ...]  # the destination's written columns (generated ones are computed)
    values: tuple[str, ...]  # what the source gives for each of them
    hash_records: bool = False  # verification hashes records (every column type can be hashed)

    @property
    def _key(self) -> str:
        return ", ".join(quote_ident(name) for name in self.key)

    @property
    def _columns(self) -> str:
        return ", ".join(quote_ident(name) for name in self.columns)

    def _bounds(self, first: int) -> str:
        return ", ".join(f"${first + n}::text::{type_}" for n, type_ in enumerate(self.key_types))

    def range(self, *, lower_at: int | None, upper_at: int | None) -> str:
        parts = []
        if lower_at is not None:
            parts.append(f"({self._key}) > ({self._bounds(lower_at)})")
        if upper_at is not None:
            parts.append(f"({self._key}) <= ({self._bounds(upper_at)})")
        return " AND ".join(parts) or "TRUE"

    def as_text(self) -> str:
        return ", ".join(f"{quote_ident(name)}::text" for name in self.key)

    def replay(self) -> list[str]:
        """Make `dest` hold what `source` holds now for every logged key, and empty the log. Run in one
        REPEATABLE READ transaction, the log entries removed are exactly those replayed."""
        logged = ", ".join(f"l.{quote_ident(name)}" for name in self.key)
        joined = " AND ".join(f"d.{quote_ident(name)} = l.{quote_ident(name)}" for name in self.key)
        return [
            f"DELETE FROM {self.dest} AS d USING (SELECT DISTINCT {self._key} FROM {self.log}) AS l "  # noqa: S608
            f"WHERE {joined}",
            f"INSERT INTO {self.dest} ({self._columns}) SELECT {', '.join(self.values)} "  # noqa: S608
            f"FROM {self.source} WHERE ({self._key}) IN (SELECT {logged} FROM {self.log} AS l)",
            f"DELETE FROM {self.log}",  # noqa: S608
        ]

    def next_bound(self, *, resume: bool) -> str:
        """$1: rows per chunk; then the lower bound. The chunk's last key, or nothing when fewer remain."""
        where = self.range(lower_at=2 if resume else None, upper_at=None)
        return (
            f"SELECT ARRAY[{self.as_text()}] AS k FROM {self.source} WHERE {where} "  # noqa: S608
            f"ORDER BY {self._key} OFFSET $1 - 1 LIMIT 1"
        )

    def last_bound(self, *, resume: bool, with_dest: bool) -> str:
        """The rows left after the lower bound ($1...) and the last key, of the source (or of either
        side, for verification: rows only the destination has are differences too)."""
        where = self.range(lower_at=1 if resume else None, upper_at=None)
        keys = f"SELECT {self._key} FROM {self.source} WHERE {where}"  # noqa: S608
        if with_dest:
            keys += f" UNION ALL SELECT {self._key} FROM {self.dest} WHERE {where}"  # noqa: S608
        return (
            f"SELECT (SELECT count(*) FROM {self.source} WHERE {where}) AS n, "  # noqa: S608
            f"(SELECT ARRAY[{self.as_text()}] FROM ({keys}) AS u ORDER BY {self._key} DESC LIMIT 1) AS k"
        )

    def clear_after(self, *, resume: bool) -> str:
        """Everything the destination holds past a resumed copy's checkpoint (a chunk may have committed
        after it): the copy starts again from there."""
        return f"DELETE FROM {self.dest} WHERE {self.range(lower_at=1 if resume else None, upper_at=None)}"  # noqa: S608

    def copy(self, *, resume: bool) -> str:
        lower = 1 if resume else None
        upper = 1 + len(self.key) if resume else 1
        where = self.range(lower_at=lower, upper_at=upper)
        return (
            f"INSERT INTO {self.dest} ({self._columns}) SELECT {', '.join(self.values)} "  # noqa: S608
            f"FROM {self.source} WHERE {where}"
        )

    def row_hash(self, values: str) -> str:
        # Both sides give the same types in the same order, so a record's hash compares them; it is
        # about twice as fast as hashing the row's text, which serves types without a hash function.
        if self.hash_records:
            return f"hash_record_extended(ROW({values}), 0)"
        return f"hashtextextended(ROW({values})::text, 0)"

    def probe_hash(self) -> str:
        """Fails when some column type of the table has no hash function (then rows hash as text): one
        row of NULLs of every column's type, so that an empty table answers too."""
        hashed = self.row_hash(", ".join(self.values))
        return f"SELECT {hashed} FROM (SELECT 1) AS __osc_one LEFT JOIN {self.source} ON false"  # noqa: S608

    def checksums(self, *, resume: bool) -> str:
        """Row count and a sum of row hashes over a key range, per side: one cheap pass each."""
        lower = 1 if resume else None
        upper = 1 + len(self.key) if resume else 1
        where = self.range(lower_at=lower, upper_at=upper)
        source, dest = self.row_hash(", ".join(self.values)), self.row_hash(self._columns)
        return (
            f"SELECT (SELECT ARRAY[count(*)::numeric, coalesce(sum({source}), 0)] "  # noqa: S608
            f"FROM {self.source} WHERE {where}) AS o, "
            f"(SELECT ARRAY[count(*)::numeric, coalesce(sum({dest}), 0)] FROM {self.dest} WHERE {where}) AS d"
        )

    def compare(self, *, resume: bool) -> str:
        """Rows of a key range whose text differs between the two sides (or that one side lacks)."""
        lower = 1 if resume else None
        upper = 1 + len(self.key) if resume else 1
        where = self.range(lower_at=lower, upper_at=upper)
        aliases = [f"__osc_k{n}" for n in range(len(self.key))]
        keyed = ", ".join(
            f"{quote_ident(name)} AS {alias}" for name, alias in zip(self.key, aliases, strict=True)
        )
        joined = " AND ".join(f"o.{alias} = d.{alias}" for alias in aliases)
        merged = ", ".join(f"coalesce(o.{alias}, d.{alias}) AS {alias}" for alias in aliases)
        as_text = ", ".join(f"{alias}::text" for alias in aliases)
        return f"""
            WITH o AS (SELECT {keyed}, ROW({", ".join(self.values)})::text AS r FROM {self.source} WHERE {where}),
                 d AS (SELECT {keyed}, ROW({self._columns})::text AS r FROM {self.dest} WHERE {where}),
                 j AS (SELECT {merged}, o.r AS o_r, d.r AS d_r FROM o FULL JOIN d ON {joined})
            SELECT (SELECT count(*) FROM j WHERE o_r IS NOT NULL)::int AS scanned,
                   (SELECT count(*) FROM j WHERE o_r IS DISTINCT FROM d_r)::int AS mismatches,
                   (SELECT json_agg(json_build_array({as_text}))
                      FROM (SELECT * FROM j WHERE o_r IS DISTINCT FROM d_r LIMIT 5) AS s)::text AS samples
        """  # noqa: S608


def forward_sync(live: LiveTable, work: ShadowWork, names: Names) -> Sync:
    written = [column for column in live.columns if not column.generated]
    return Sync(
        source=names.table,
        dest=names.shadow,
        log=names.log,
        key=live.key,
        key_types=tuple(live.key_types()),
        columns=tuple(column.name for column in written),
        values=tuple(
            converted(column.name, work.up, work.type)
            if column.name == work.column
            else quote_ident(column.name)
            for column in written
        ),
    )


def reverse_sync(new: LiveTable, old: LiveTable, work: ShadowWork, names: Names) -> Sync:
    """After the swap: the live table (`names.table`, the former shadow) back into the old one."""
    written = [column for column in old.columns if not column.generated]
    return Sync(
        source=names.table,
        dest=names.old,
        log=names.reverse_log,
        key=new.key,
        key_types=tuple(new.key_types()),
        columns=tuple(column.name for column in written),
        values=tuple(
            converted(column.name, work.down, column.type)
            if column.name == work.column
            else quote_ident(column.name)
            for column in written
        ),
    )
