"""What the linter learns while it reads one file in order, shared by both engines' analysers.

A table created earlier in the file has no traffic yet, so locking or rewriting it is no risk; a
lock timeout set earlier covers later DDL; a NOT NULL check validated earlier makes SET NOT NULL
cheap. Tables are compared by name without schema: a migration file seldom touches two schemas'
tables of the same name, and a dump qualifies names (`public.users`) where hand-written SQL does not.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from orchestrator.lint.rules import Site


def table_key(name: str) -> str:
    return name.rsplit(".", 1)[-1].strip('`"').lower()


@dataclass
class FileContext:
    # Table -> column -> type name, for tables this file creates.
    created_tables: dict[str, dict[str, str]] = field(default_factory=dict)
    # Index -> table, for indexes this file creates.
    created_indexes: dict[str, str] = field(default_factory=dict)
    lock_timeout_set: bool = False
    lock_timeout_local: bool = False  # SET LOCAL: ends with the transaction
    lock_timeout_reported: bool = False
    in_transaction: bool = False
    # (table, constraint) -> column of a `CHECK (column IS NOT NULL) NOT VALID` not validated yet.
    pending_not_null_checks: dict[tuple[str, str], str] = field(default_factory=dict)
    validated_not_null: set[tuple[str, str]] = field(default_factory=set)
    foreign_key_checks: bool = True  # MySQL: SET foreign_key_checks = 0 lets ADD FOREIGN KEY run in place
    # MySQL: SQL a variable, prepared statement or procedure holds, judged where it runs ("var:stmt",
    # "prepared:name", "procedure:name" -> statements).
    deferred_sql: dict[str, list[str]] = field(default_factory=dict)

    def is_new(self, table: str) -> bool:
        return table_key(table) in self.created_tables

    def create_table(self, table: str, columns: dict[str, str]) -> None:
        self.created_tables[table_key(table)] = columns

    def add_column(self, table: str, column: str, type_name: str) -> None:
        self.created_tables.setdefault(table_key(table), {})[column.lower()] = type_name

    def column_type(self, table: str, column: str) -> str | None:
        return self.created_tables.get(table_key(table), {}).get(column.lower())

    def rename_table(self, old: str, new: str) -> None:
        if self.is_new(old):
            self.created_tables[table_key(new)] = self.created_tables.pop(table_key(old))

    def begin(self) -> None:
        self.in_transaction = True

    def end_transaction(self) -> None:
        self.in_transaction = False
        if self.lock_timeout_local:
            self.lock_timeout_set = self.lock_timeout_local = False

    def needs_lock(self, site: Site, tables: list[str], message: str | None = None) -> None:
        """A statement waits for a lock that blocks traffic: say once per file when nothing bounds the
        wait. Tables created in this file have no traffic to block."""
        if self.lock_timeout_set or self.lock_timeout_reported:
            return
        if tables and all(self.is_new(table) for table in tables):
            return
        self.lock_timeout_reported = True
        site.report("lock-timeout-missing", message)
