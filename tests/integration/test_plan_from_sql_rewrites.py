"""Every lint rule whose statement `plan --from-sql` rewrites, run for real: the SQL as a developer
writes it is converted, and the generated plan goes through expand, rollback, expand again, the gate,
backfill and contract on the real PostgreSQL primary and replica while the application writes (old
names before the gate, new ones after), with no writer statement failing and no row lost."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.lint import lint_sql
from orchestrator.lint.convert import Outcome, convert_sql, writable_spec
from tests.support.roundtrip import RoundTrip, Version, run_round_trip

pytestmark = pytest.mark.integration

# rule -> (SQL as written, the application version that ships at the gate, extra setup)
CASES: dict[str, tuple[str, Version, str]] = {
    "create-index-non-concurrent": ("CREATE INDEX items_name_idx ON items (name);", Version(), ""),
    "add-column-volatile-default": (
        "ALTER TABLE items ADD COLUMN token uuid NOT NULL DEFAULT gen_random_uuid();",
        Version(),
        "",
    ),
    "set-not-null": (
        "UPDATE items SET note = '' WHERE note IS NULL;\nALTER TABLE items ALTER COLUMN note SET NOT NULL;",
        # The backfill turned NULL notes into '' (the mirror keeps NULL: compare through coalesce).
        Version(null_notes=False, expected={"note": "coalesce(note, '')"}),
        "",
    ),
    "constraint-without-not-valid": (
        "ALTER TABLE items ADD CONSTRAINT items_owner_fk FOREIGN KEY (owner_id) REFERENCES owners (id);\n"
        "ALTER TABLE items ADD CONSTRAINT items_qty_check CHECK (qty >= 0);",
        Version(),
        "",
    ),
    "unique-constraint-without-index": (
        "ALTER TABLE items ADD CONSTRAINT items_name_key UNIQUE (name);",
        Version(),
        "",
    ),
    "alter-column-type": ("ALTER TABLE items ALTER COLUMN qty TYPE bigint;", Version(), ""),
    "rename-column": ("ALTER TABLE items RENAME COLUMN note TO memo;", Version(columns={"note": "memo"}), ""),
    "rename-table": ("ALTER TABLE items RENAME TO products;", Version(table="products"), ""),
    "drop-column": ("ALTER TABLE items DROP COLUMN note;", Version(columns={"note": None}), ""),
    "drop-table": (
        "DROP TABLE scratch;",
        Version(),
        "CREATE TABLE scratch (id bigint PRIMARY KEY); INSERT INTO scratch SELECT generate_series(1, 100);",
    ),
    "unbatched-data-change": (
        "ALTER TABLE items ADD COLUMN name_lower text;\nUPDATE items SET name_lower = lower(name);",
        Version(insert_extra={"name_lower": lambda values: values["name"].lower()}),
        "",
    ),
}


@pytest.mark.parametrize("rule", sorted(CASES))
async def test_the_rewritten_plan_runs_under_writes(rule: str, tmp_path: Path) -> None:
    sql, new_version, setup = CASES[rule]
    # The rule fires on the SQL as written: this is a statement the linter calls risky...
    assert rule in {finding.rule for finding in lint_sql(sql, "postgres").findings}
    # ...and plan --from-sql converts all of it, nothing left out.
    conversion = convert_sql(sql, f"{rule}.sql")
    assert [note.outcome for note in conversion.notes] == [Outcome.CONVERTED] * len(conversion.notes), [
        note.reason for note in conversion.notes
    ]
    assert conversion.spec is not None
    operations = writable_spec(conversion.spec)["operations"]
    await run_round_trip(
        RoundTrip(operations=operations, new_version=new_version, extra_setup=setup, rows=3_000), tmp_path
    )
