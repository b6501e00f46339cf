"""What a shadow rewrite reads from the catalog: the table's columns, keys, indexes, constraints, grants
and owned sequences, and everything about it a rewrite could not carry over (the reasons it refuses)."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from orchestrator.domain.identifiers import check_identifier, quote_ident


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # format_type, e.g. "integer", "character varying(80)"
    not_null: bool
    default: str | None  # pg_get_expr of the default, server-rendered
    generated: str | None  # the expression of a STORED generated column
    collation: str | None  # a collation other than the type's, already quoted by the server


@dataclass(frozen=True)
class Index:
    name: str
    definition: str  # pg_get_indexdef
    primary: bool
    unique_constraint: bool  # backs a UNIQUE constraint (not merely a unique index)
    valid: bool


@dataclass(frozen=True)
class Sequence:
    name: str  # server-quoted, schema-qualified
    type: str


@dataclass(frozen=True)
class LiveTable:
    schema: str
    name: str
    unlogged: bool
    reloptions: tuple[str, ...]
    owner: str  # server-quoted
    grants: tuple[tuple[str, str, bool], ...]  # (privilege, server-quoted role, grantable)
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    key_constraint: str
    indexes: tuple[Index, ...]
    checks: tuple[tuple[str, str], ...]  # (name, pg_get_constraintdef)
    sequences: dict[str, Sequence]  # column -> the sequence it owns (serial)
    blockers: tuple[str, ...]  # why a shadow rewrite cannot carry this table over

    def qualified(self, name: str | None = None) -> str:
        return f"{quote_ident(self.schema)}.{quote_ident(name or self.name)}"

    def column(self, name: str) -> Column:
        return next(column for column in self.columns if column.name == name)

    def key_types(self) -> list[str]:
        return [self.column(name).type for name in self.key]


async def exists(conn: asyncpg.Connection, qualified: str) -> bool:
    return bool(await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", qualified))


async def read_table(conn: asyncpg.Connection, name: str, schema: str | None = None) -> LiveTable | None:
    """The table `name` (in `schema`, else as the search path finds it), or None when it is missing."""
    target = f"{quote_ident(schema)}.{quote_ident(name)}" if schema else quote_ident(name)
    rel = await conn.fetchrow(
        """
        SELECT c.oid, n.nspname, c.relkind::text AS relkind, c.relispartition, c.relrowsecurity,
               c.relpersistence = 'u' AS unlogged, coalesce(c.reloptions, '{}') AS reloptions,
               quote_ident(pg_get_userbyid(c.relowner)) AS owner
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = to_regclass($1)
        """,
        target,
    )
    if rel is None:
        return None
    oid = rel["oid"]
    columns = await conn.fetch(
        """
        SELECT a.attname, format_type(a.atttypid, a.atttypmod) AS type, a.attnotnull,
               a.attidentity <> '' AS identity, a.attgenerated = 's' AS generated,
               pg_get_expr(d.adbin, d.adrelid) AS expr,
               CASE WHEN a.attcollation <> t.typcollation
                    THEN quote_ident(cn.nspname) || '.' || quote_ident(co.collname) END AS collation
        FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
        LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
        LEFT JOIN pg_collation co ON co.oid = a.attcollation
        LEFT JOIN pg_namespace cn ON cn.oid = co.collnamespace
        WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum
        """,
        oid,
    )
    indexes = await conn.fetch(
        """
        SELECT ic.relname, pg_get_indexdef(i.indexrelid) AS definition, i.indisprimary, i.indisvalid,
               ARRAY(SELECT a.attname FROM pg_attribute a WHERE a.attrelid = i.indrelid
                     AND a.attnum = ANY (i.indkey) ORDER BY array_position(i.indkey::int2[], a.attnum)
               )::text[] AS columns,
               EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid
                       AND k.conrelid = i.indrelid AND k.contype = 'u') AS unique_constraint
        FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid WHERE i.indrelid = $1 ORDER BY ic.relname
        """,
        oid,
    )
    constraints = await conn.fetch(
        """
        SELECT conname, contype::text AS contype, condeferrable, conrelid = $1 AS own, confrelid = $1 AS referenced,
               conrelid::regclass::text AS owner_table, pg_get_constraintdef(oid) AS definition
        FROM pg_constraint WHERE conrelid = $1 OR confrelid = $1 ORDER BY conname
        """,
        oid,
    )
    grants = await conn.fetch(
        """
        SELECT a.privilege_type, a.is_grantable,
               CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(a.grantee)) END AS role
        FROM pg_class c, aclexplode(c.relacl) a WHERE c.oid = $1 AND a.grantee <> c.relowner
        """,
        oid,
    )
    sequences = await conn.fetch(
        """
        SELECT a.attname, s.oid::regclass::text AS name, format_type(q.seqtypid, NULL) AS type
        FROM pg_depend d JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S'
        JOIN pg_sequence q ON q.seqrelid = s.oid
        JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
        WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass
          AND d.refobjid = $1 AND d.deptype = 'a'
        """,
        oid,
    )
    primary = next((row for row in indexes if row["indisprimary"]), None)
    key_constraint = next((row["conname"] for row in constraints if row["contype"] == "p"), "")
    blockers = [
        *_relation_blockers(rel),
        *_column_blockers(columns),
        *_constraint_blockers(constraints),
        *await _dependent_blockers(conn, oid),
    ]
    if primary is None:
        blockers.append("it has no primary key: a shadow rewrite copies and replays along one")
    blockers.extend(_name_blockers([row["relname"] for row in indexes], "index"))
    blockers.extend(_name_blockers([row["conname"] for row in constraints if row["own"]], "constraint"))
    return LiveTable(
        schema=rel["nspname"],
        name=name,
        unlogged=rel["unlogged"],
        reloptions=tuple(rel["reloptions"]),
        owner=rel["owner"],
        grants=tuple((row["privilege_type"], row["role"], row["is_grantable"]) for row in grants),
        columns=tuple(
            Column(
                name=row["attname"],
                type=row["type"],
                not_null=row["attnotnull"],
                default=None if row["generated"] else row["expr"],
                generated=row["expr"] if row["generated"] else None,
                collation=row["collation"],
            )
            for row in columns
        ),
        key=tuple(primary["columns"]) if primary is not None else (),
        key_constraint=key_constraint,
        indexes=tuple(
            Index(
                name=row["relname"],
                definition=row["definition"],
                primary=row["indisprimary"],
                unique_constraint=row["unique_constraint"],
                valid=row["indisvalid"],
            )
            for row in indexes
        ),
        checks=tuple(
            (row["conname"], row["definition"]) for row in constraints if row["own"] and row["contype"] == "c"
        ),
        sequences={row["attname"]: Sequence(row["name"], row["type"]) for row in sequences},
        blockers=tuple(blockers),
    )


def _relation_blockers(rel: asyncpg.Record) -> list[str]:
    blockers = []
    if rel["relkind"] != "r" or rel["relispartition"]:
        blockers.append("it is partitioned or a partition: rewrite its partitions one by one")
    if rel["relrowsecurity"]:
        blockers.append("it has row-level security, whose policies a swap would not carry over")
    try:
        check_identifier(rel["nspname"])
    except ValueError as error:
        blockers.append(f"its schema name is one osctl does not quote: {error}")
    return blockers


def _column_blockers(columns: list[asyncpg.Record]) -> list[str]:
    blockers = _name_blockers([row["attname"] for row in columns], "column")
    blockers.extend(
        f"column {row['attname']} is an identity column, whose sequence cannot follow it to another "
        "table (use a sequence default, or ALTER COLUMN ... TYPE in a maintenance window)"
        for row in columns
        if row["identity"]
    )
    return blockers


def _constraint_blockers(constraints: list[asyncpg.Record]) -> list[str]:
    blockers = []
    for row in constraints:
        if row["contype"] == "f" and row["referenced"]:
            blockers.append(
                f"foreign key {row['conname']} on {row['owner_table']} references it and would keep "
                "pointing at the old table after the swap"
            )
        elif row["contype"] == "f":
            blockers.append(f"its foreign key {row['conname']} is not carried over to the shadow table")
        elif row["contype"] == "x":
            blockers.append(f"exclusion constraint {row['conname']} is not carried over")
        elif row["contype"] in ("p", "u") and row["condeferrable"]:
            blockers.append(f"deferrable constraint {row['conname']} is not carried over")
    return blockers


async def _dependent_blockers(conn: asyncpg.Connection, oid: int) -> list[str]:
    """Objects that name the table by its identity, not by its name: after a swap they would follow
    the old table."""
    rows = await conn.fetch(
        """
        SELECT 'view or rule ' || r.ev_class::regclass::text AS what FROM pg_depend d
        JOIN pg_rewrite r ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid
        WHERE d.refclassid = 'pg_class'::regclass AND d.refobjid = $1
        UNION SELECT 'trigger ' || tgname FROM pg_trigger
        WHERE tgrelid = $1 AND NOT tgisinternal AND tgname NOT LIKE '\\_osc\\_%'
        UNION SELECT 'publication ' || p.pubname FROM pg_publication_rel pr
        JOIN pg_publication p ON p.oid = pr.prpubid WHERE pr.prrelid = $1
        UNION SELECT 'table inheritance (a parent or child table)' FROM pg_inherits
        WHERE inhrelid = $1 OR inhparent = $1
        ORDER BY 1
        """,
        oid,
    )
    return [f"{row['what']} is tied to it and would follow the old table" for row in rows]


def _name_blockers(names: list[str], kind: str) -> list[str]:
    blockers = []
    for name in names:
        try:
            check_identifier(name)
        except ValueError:
            blockers.append(f"{kind} {name!r} has a name osctl does not quote (lower-case names only)")
    return blockers
