"""Column changes inside ALTER TABLE: what rewrites, scans or breaks an existing table.

Measured on PostgreSQL 15 (3 million rows): ADD COLUMN nullable, with a constant default or with
`DEFAULT now() NOT NULL` is catalog-only (milliseconds); `DEFAULT random()` rewrites (seconds); an
inline CHECK, or REFERENCES with a non-NULL default, scans the table under the ALTER's lock.
"""

from __future__ import annotations

from pglast import ast, enums

from orchestrator.lint.context import FileContext, table_key
from orchestrator.lint.findings import Severity
from orchestrator.lint.postgres.nodes import (
    INTEGER_TYPES,
    SERIAL_TYPES,
    column_constraints,
    default_expression,
    function_names,
    type_base,
    type_text,
)
from orchestrator.lint.rules import Site

# Volatile: evaluated per row, so PostgreSQL must write the value into every existing row.
VOLATILE_FUNCTIONS = frozenset(
    {
        "random",
        "gen_random_uuid",
        "uuid_generate_v1",
        "uuid_generate_v1mc",
        "uuid_generate_v4",
        "uuidv4",
        "uuidv7",
        "clock_timestamp",
        "timeofday",
        "nextval",
        "setseed",
        "txid_current",
        "pg_current_xact_id",
    }
)
# Stable or immutable: evaluated once by ALTER TABLE and stored as the missing value (PostgreSQL 11+).
NON_VOLATILE_FUNCTIONS = frozenset(
    {
        "now",
        "statement_timestamp",
        "transaction_timestamp",
        "current_timestamp",
        "current_date",
        "lower",
        "upper",
        "coalesce",
        "to_timestamp",
        "to_date",
        "to_char",
        "make_date",
        "make_interval",
        "jsonb_build_object",
        "json_build_object",
        "jsonb_build_array",
        "json_build_array",
        "array_fill",
        "concat",
        "length",
        "abs",
        "round",
        "timezone",
        "date_trunc",
    }
)
# Types ALTER COLUMN TYPE may reach without a rewrite, depending on the old type (varchar(n) to a
# longer varchar or text, numeric to a wider numeric, cidr to inet, timestamp to timestamptz in UTC).
MAYBE_BINARY_COERCIBLE = frozenset({"text", "varchar", "numeric", "inet", "timestamptz", "varbit", "citext"})


def add_column(table: str, column: ast.ColumnDef, site: Site, context: FileContext) -> None:
    name = f"{table}.{column.colname}"
    base = type_base(column.typeName)
    constraints = {constraint.contype for constraint in column_constraints(column)}
    default = default_expression(column)
    generated_by_table = (
        base in SERIAL_TYPES
        or enums.ConstrType.CONSTR_IDENTITY in constraints
        or enums.ConstrType.CONSTR_GENERATED in constraints
    )

    if base in SERIAL_TYPES:
        site.report(
            "add-column-volatile-default",
            f"{name} {base} fills every existing row from a sequence (nextval is volatile): PostgreSQL "
            "rewrites the whole table under ACCESS EXCLUSIVE.",
        )
    elif enums.ConstrType.CONSTR_IDENTITY in constraints:
        site.report(
            "add-column-volatile-default",
            f"{name} as an identity column numbers every existing row: a table rewrite under ACCESS EXCLUSIVE.",
        )
    elif enums.ConstrType.CONSTR_GENERATED in constraints:
        site.report(
            "add-column-volatile-default",
            f"{name} as a stored generated column is computed for every existing row: a table rewrite "
            "under ACCESS EXCLUSIVE.",
            safe_alternative="Add a plain nullable column, fill it with a trigger for new rows and a "
            "batched backfill for old ones, or compute it in a view.",
        )
    elif default is not None:
        called = function_names(default)
        volatile = sorted(set(called) & VOLATILE_FUNCTIONS)
        unknown = sorted(set(called) - VOLATILE_FUNCTIONS - NON_VOLATILE_FUNCTIONS)
        if volatile:
            site.report(
                "add-column-volatile-default",
                f"{name} DEFAULT {', '.join(f'{f}()' for f in volatile)} is volatile: PostgreSQL writes a "
                "value into every existing row, rewriting the table under ACCESS EXCLUSIVE.",
            )
        elif unknown:
            site.report(
                "add-column-volatile-default",
                f"{name} DEFAULT calls {', '.join(f'{f}()' for f in unknown)}: if any is volatile, "
                "PostgreSQL rewrites the table under ACCESS EXCLUSIVE (stable and immutable defaults "
                "are catalog-only).",
                severity=Severity.WARNING,
            )

    if enums.ConstrType.CONSTR_NOTNULL in constraints and default is None and not generated_by_table:
        site.report(
            "not-null-column-without-default",
            f"{name} is NOT NULL without a default: it fails if {table} has rows, and where it succeeds "
            "the running application's INSERTs that do not name the column fail.",
        )
    if enums.ConstrType.CONSTR_CHECK in constraints:
        site.report(
            "constraint-without-not-valid",
            f"the CHECK on {name} is verified against every row while ALTER TABLE holds ACCESS EXCLUSIVE.",
            safe_alternative="Add the column without the CHECK, then ADD CONSTRAINT ... CHECK (...) NOT "
            "VALID and VALIDATE CONSTRAINT separately.",
        )
    if enums.ConstrType.CONSTR_FOREIGN in constraints and default is not None:
        site.report(
            "constraint-without-not-valid",
            f"the REFERENCES on {name} with a default is checked for every row under the ALTER's lock "
            "(without a default the new column is NULL everywhere and nothing is scanned).",
        )
    unique = constraints & {enums.ConstrType.CONSTR_UNIQUE, enums.ConstrType.CONSTR_PRIMARY}
    if unique:
        site.report(
            "unique-constraint-without-index",
            f"the {'PRIMARY KEY' if enums.ConstrType.CONSTR_PRIMARY in unique else 'UNIQUE'} on {name} "
            "builds its index under ACCESS EXCLUSIVE: reads and writes wait for the whole build.",
        )
    if enums.ConstrType.CONSTR_PRIMARY in constraints and base in INTEGER_TYPES:
        site.report(
            "integer-primary-key",
            f"primary key {name} is {base}: at 2,147,483,647 rows every insert fails.",
        )


def alter_type(table: str, cmd: ast.AlterTableCmd, site: Site) -> None:
    definition = cmd.def_
    if not isinstance(definition, ast.ColumnDef):
        return
    target = type_text(definition.typeName)
    name = f"{table}.{cmd.name}"
    if definition.raw_default is None and type_base(definition.typeName) in MAYBE_BINARY_COERCIBLE:
        site.report(
            "alter-column-type",
            f"{name} TYPE {target} is catalog-only when it only widens the old type (varchar to a longer "
            "varchar or text, numeric to a wider numeric, cidr to inet); from any other type it rewrites "
            "the table and its indexes under ACCESS EXCLUSIVE.",
            severity=Severity.WARNING,
        )
        return
    using = " with USING" if definition.raw_default is not None else ""
    site.report(
        "alter-column-type",
        f"{name} TYPE {target}{using} rewrites the table and rebuilds its indexes under ACCESS EXCLUSIVE: "
        "no reads or writes until it finishes.",
    )


def set_not_null(table: str, column: str, site: Site, context: FileContext) -> None:
    if (table_key(table), column.lower()) in context.validated_not_null:
        return  # PostgreSQL 12+ proves it from the validated CHECK and skips the scan
    site.report(
        "set-not-null",
        f"SET NOT NULL on {table}.{column} scans every row under ACCESS EXCLUSIVE: reads and writes wait.",
    )


def drop_column(table: str, column: str, site: Site) -> None:
    site.report(
        "drop-column",
        f"dropping {table}.{column} loses its data for good and breaks running code that still reads "
        "or writes it.",
    )
