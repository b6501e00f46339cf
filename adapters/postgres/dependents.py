"""What outside a table depends on it: the views that read it and the foreign keys that reference it.

drop_table refuses both in preflight (a view would be dropped with it, or stop the purge; a foreign
key would lose its target), and says which ones by name.
"""

from __future__ import annotations

import asyncpg

_VIEWS_SQL = """
    SELECT DISTINCT v.oid::regclass::text AS name
    FROM pg_depend d
    JOIN pg_rewrite r ON r.oid = d.objid
    JOIN pg_class v ON v.oid = r.ev_class
    WHERE d.classid = 'pg_rewrite'::regclass AND d.refclassid = 'pg_class'::regclass
      AND d.refobjid = $1 AND r.ev_class <> $1
    ORDER BY 1
"""

_FOREIGN_KEYS_SQL = """
    SELECT format('%s.%s', conrelid::regclass::text, conname) AS name
    FROM pg_constraint
    WHERE contype = 'f' AND confrelid = $1 AND conrelid <> $1
    ORDER BY 1
"""


async def of_table(pool: asyncpg.Pool | asyncpg.Connection, oid: int) -> tuple[list[str], list[str]]:
    """(views, foreign keys of other tables as `table.constraint`) that depend on the table `oid`."""
    views = [row["name"] for row in await pool.fetch(_VIEWS_SQL, oid)]
    foreign_keys = [row["name"] for row in await pool.fetch(_FOREIGN_KEYS_SQL, oid)]
    return views, foreign_keys
