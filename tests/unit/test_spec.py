"""parse_spec / load_spec_text / spec_json_schema: the spec as users write it."""

from __future__ import annotations

import json
from typing import Any

import pytest

from orchestrator.domain.errors import SpecError
from orchestrator.domain.operations import (
    KINDS,
    OPERATION_MODELS,
    AddColumn,
    Backfill,
    CreateIndex,
    DropColumn,
)
from orchestrator.domain.spec import load_spec_text, parse_spec, spec_json_schema

ADD = {"add_column": {"table": "users", "column": {"name": "band", "type": "text"}}}
INDEX = {"create_index": {"table": "users", "name": "users_band_idx", "columns": ["band"]}}
BACKFILL = {"backfill": {"table": "users", "column": "band", "expression": "lower(email)"}}
DROP = {"drop_column": {"table": "users", "column": "legacy"}}


def spec(*operations: Any, **top: Any) -> dict[str, Any]:
    return {"name": "demo", "target": "app", "operations": list(operations), **top}


def problems_of(data: Any) -> list[tuple[str, str]]:
    with pytest.raises(SpecError) as caught:
        parse_spec(data)
    return caught.value.problems


def paths_of(data: Any) -> list[str]:
    return [path for path, _ in problems_of(data)]


def test_one_key_form_parses_into_tagged_models() -> None:
    parsed = parse_spec(spec(ADD, INDEX, BACKFILL, DROP))
    ops = parsed.ops()
    assert [type(op) for op in ops] == [AddColumn, CreateIndex, Backfill, DropColumn]
    assert [op.kind for op in ops] == ["add_column", "create_index", "backfill", "drop_column"]
    add = ops[0]
    assert isinstance(add, AddColumn)
    assert (add.table, add.column.name, add.column.type, add.column.nullable) == (
        "users",
        "band",
        "text",
        True,
    )
    index = ops[1]
    assert isinstance(index, CreateIndex)
    assert (index.unique, index.method, index.columns) == (False, "btree", ["band"])
    backfill = ops[2]
    assert isinstance(backfill, Backfill)
    assert (backfill.batch_size, backfill.pause_ms) == (1000, 0)
    assert parsed.settings.lock_timeout_ms == 1000
    assert parsed.settings.ddl_attempts == 30
    assert parsed.target == "app"


def test_spec_models_are_frozen() -> None:
    parsed = parse_spec(spec(ADD))
    with pytest.raises(ValueError, match="frozen"):
        parsed.ops()[0].table = "other"  # type: ignore[misc]


def test_type_name_is_normalised_in_the_model() -> None:
    op = parse_spec(
        spec(
            {"add_column": {"table": "users", "column": {"name": "at", "type": "TIMESTAMP  With Time Zone"}}}
        )
    ).ops()[0]
    assert isinstance(op, AddColumn)
    assert op.column.type == "timestamp with time zone"


@pytest.mark.parametrize(
    ("data", "path"),
    [
        (
            spec({"add_column": {"table": "users", "column": {"name": "band", "type": "int; drop table x"}}}),
            "operations.0.add_column.column.type",
        ),
        (
            spec(ADD, {"add_column": {"table": "users", "column": {"name": "Band", "type": "text"}}}),
            "operations.1.add_column.column.name",
        ),
        (
            spec({"add_column": {"table": "Users", "column": {"name": "band", "type": "text"}}}),
            "operations.0.add_column.table",
        ),
        (spec({"add_column": {"table": "users"}}), "operations.0.add_column.column"),
        (spec(ADD, {"frobnicate": {"table": "users"}}), "operations.1"),
        (spec(ADD, {**DROP, **ADD}), "operations.1"),  # two keys in one entry
        (spec({}), "operations.0"),
        (spec("add_column"), "operations.0"),
        (spec({"drop_column": "users.legacy"}), "operations.0"),
        (
            spec({"drop_column": {"table": "users", "column": "legacy", "cascade": True}}),
            "operations.0.drop_column.cascade",
        ),
        (
            spec({"create_index": {"table": "users", "name": "i", "columns": []}}),
            "operations.0.create_index",
        ),
        (
            spec({"create_index": {"table": "users", "name": "i", "columns": ["a"], "method": "rtree"}}),
            "operations.0.create_index.method",
        ),
        (
            spec({"create_index": {"table": "users", "name": "i", "columns": ["a", "B"]}}),
            "operations.0.create_index.columns.1",
        ),
        (
            spec({"backfill": {"table": "users", "column": "band", "expression": ""}}),
            "operations.0.backfill.expression",
        ),
        (
            spec({"backfill": {"table": "users", "column": "band", "expression": "1", "batch_size": 0}}),
            "operations.0.backfill.batch_size",
        ),
        (
            spec({"backfill": {"table": "users", "column": "band", "expression": "1", "pause_ms": -1}}),
            "operations.0.backfill.pause_ms",
        ),
        (spec(), "operations"),
        (spec(*[DROP] * 201), "operations"),
        ({"target": "app", "operations": [ADD]}, "name"),
        (spec(ADD, name="Users Migration"), "name"),
        (spec(ADD, name=""), "name"),
        (spec(ADD, target="App"), "target"),
        (spec(ADD, settings={"lock_timeout_ms": 10}), "settings.lock_timeout_ms"),
        (spec(ADD, settings={"ddl_attempts": 0}), "settings.ddl_attempts"),
        (spec(ADD, settings={"retries": 3}), "settings.retries"),
        (spec(ADD, owner="me"), "owner"),
        ({"name": "demo"}, "operations"),
    ],
)
def test_each_problem_carries_its_field_path(data: Any, path: str) -> None:
    assert paths_of(data) == [path]


def test_unknown_kind_names_the_known_kinds() -> None:
    [(path, message)] = problems_of(spec(ADD, {"alter_everything": {}}))
    assert path == "operations.1"
    assert "alter_everything" in message
    for kind in KINDS:
        assert kind in message


def test_every_problem_is_reported_at_once() -> None:
    data = spec(
        {"add_column": {"table": "users", "column": {"name": "band", "type": "text)--"}}},
        {"nope": {}},
        name="Bad Name",
        extra=1,
    )
    assert sorted(paths_of(data)) == sorted(
        ["name", "operations.0.add_column.column.type", "operations.1", "extra"]
    )


def test_problems_are_clean_messages_without_pydantic_prefix() -> None:
    for _, message in problems_of(spec({"frobnicate": {}})):
        assert not message.startswith("Value error")


def test_spec_error_message_joins_path_and_message() -> None:
    with pytest.raises(SpecError, match=r"operations\.0\.add_column\.column\.type: "):
        parse_spec(spec({"add_column": {"table": "users", "column": {"name": "b", "type": "text)--"}}}))


@pytest.mark.parametrize("data", [None, [], "name: demo", 42])
def test_a_spec_must_be_a_mapping(data: Any) -> None:
    assert paths_of(data) == ["(spec)"]


def test_not_null_without_default_is_refused() -> None:
    [(path, message)] = problems_of(
        spec(
            {"add_column": {"table": "users", "column": {"name": "band", "type": "text", "nullable": False}}}
        )
    )
    assert path == "operations.0.add_column.column"
    assert "NOT NULL" in message and "default" in message


@pytest.mark.parametrize("default", ["none", 0, False, 0.0, ""])
def test_not_null_with_a_constant_default_is_accepted(default: Any) -> None:
    op = parse_spec(
        spec(
            {
                "add_column": {
                    "table": "users",
                    "column": {"name": "band", "type": "text", "nullable": False, "default": default},
                }
            }
        )
    ).ops()[0]
    assert isinstance(op, AddColumn)
    assert op.column.default == default
    assert type(op.column.default) is type(default)  # bool stays bool, "0" would stay a string


def test_kind_inside_the_parameters_cannot_change_the_kind() -> None:
    op = parse_spec(
        spec({"drop_column": {"table": "users", "column": "legacy", "kind": "add_column"}})
    ).ops()[0]
    assert isinstance(op, DropColumn)


def test_already_built_operations_pass_through() -> None:
    op = DropColumn(table="users", column="legacy")
    assert parse_spec(spec(op)).ops() == [op]


YAML_TEXT = """\
name: users-band
target: app
settings:
  lock_timeout_ms: 250
operations:
  - add_column:
      table: users
      column: {name: band, type: text}
  - backfill:
      table: users
      column: band
      expression: lower(email)
      batch_size: 500
"""


def test_load_yaml_text() -> None:
    parsed = load_spec_text(YAML_TEXT)
    assert parsed.name == "users-band"
    assert parsed.settings.lock_timeout_ms == 250
    assert [op.kind for op in parsed.ops()] == ["add_column", "backfill"]
    backfill = parsed.ops()[1]
    assert isinstance(backfill, Backfill)
    assert backfill.batch_size == 500


def test_load_json_text_gives_the_same_spec() -> None:
    data = {
        "name": "users-band",
        "target": "app",
        "settings": {"lock_timeout_ms": 250},
        "operations": [
            {"add_column": {"table": "users", "column": {"name": "band", "type": "text"}}},
            {
                "backfill": {
                    "table": "users",
                    "column": "band",
                    "expression": "lower(email)",
                    "batch_size": 500,
                }
            },
        ],
    }
    assert load_spec_text("  \n" + json.dumps(data, indent=2)) == load_spec_text(YAML_TEXT)


@pytest.mark.parametrize(
    "text",
    [
        '{"name": "demo", "operations": [',  # broken JSON
        "name: demo\noperations: [\n",  # broken YAML
        "name: demo\n  bad: indentation\n- x",
    ],
)
def test_undecodable_text_is_a_spec_error(text: str) -> None:
    with pytest.raises(SpecError) as caught:
        load_spec_text(text)
    [(path, message)] = caught.value.problems
    assert path == "(spec)"
    assert "not valid YAML or JSON" in message


def test_valid_yaml_with_invalid_content_reports_paths() -> None:
    with pytest.raises(SpecError) as caught:
        load_spec_text("name: demo\noperations:\n  - drop_column: {table: users}\n")
    assert [path for path, _ in caught.value.problems] == ["operations.0.drop_column.column"]


def test_empty_text_is_refused() -> None:
    with pytest.raises(SpecError):
        load_spec_text("")


# --- JSON Schema -------------------------------------------------------------------------------

MODELS = {kind: model.__name__ for kind, model in OPERATION_MODELS.items()}


def _resolve(schema: dict[str, Any], ref: str) -> dict[str, Any]:
    assert ref.startswith("#/$defs/")
    definition: dict[str, Any] = schema["$defs"][ref.removeprefix("#/$defs/")]
    return definition


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if "$ref" in node else []
        return found + [ref for value in node.values() for ref in _refs(value)]
    if isinstance(node, list):
        return [ref for value in node for ref in _refs(value)]
    return []


def test_schema_top_level() -> None:
    schema = spec_json_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["type"] == "object"
    assert schema["additionalProperties"] is False
    assert set(schema["required"]) == {"name", "operations"}
    assert set(schema["properties"]) == {"name", "target", "description", "settings", "operations"}
    assert schema["properties"]["name"]["pattern"] == r"^[a-z0-9][a-z0-9_.-]{0,99}$"
    operations = schema["properties"]["operations"]
    assert (operations["type"], operations["minItems"], operations["maxItems"]) == ("array", 1, 200)


def test_schema_items_are_one_key_mappings_for_every_kind() -> None:
    schema = spec_json_schema()
    items = schema["properties"]["operations"]["items"]
    assert set(items) == {"oneOf"}  # no discriminator/anyOf on the tagged form left behind
    entries = items["oneOf"]
    assert len(entries) == len(KINDS) == 15
    kinds = []
    for entry in entries:
        assert entry["type"] == "object"
        assert entry["additionalProperties"] is False
        [(kind, ref)] = entry["properties"].items()
        assert entry["required"] == [kind]
        assert ref == {"$ref": f"#/$defs/{MODELS[kind]}"}
        kinds.append(kind)
    assert sorted(kinds) == sorted(KINDS)


@pytest.mark.parametrize("kind", KINDS)
def test_schema_parameters_have_no_kind_and_no_extra_keys(kind: str) -> None:
    schema = spec_json_schema()
    params = _resolve(schema, f"#/$defs/{MODELS[kind]}")
    assert params["type"] == "object"
    assert params["additionalProperties"] is False
    assert "kind" not in params["properties"]
    assert "kind" not in params.get("required", [])
    assert "table" in params["required"]


def test_schema_parameter_properties_match_the_models() -> None:
    schema = spec_json_schema()
    for kind, model in OPERATION_MODELS.items():
        params = _resolve(schema, f"#/$defs/{MODELS[kind]}")
        assert set(params["properties"]) == set(model.model_fields) - {"kind"}
    column = _resolve(schema, "#/$defs/ColumnDefinition")
    assert column["additionalProperties"] is False
    assert set(column["required"]) == {"name", "type"}
    index = _resolve(schema, "#/$defs/CreateIndex")
    assert index["properties"]["method"]["enum"] == ["btree", "hash", "gin", "gist", "brin"]
    assert index["properties"]["columns"]["maxItems"] == 32


def test_schema_refs_all_resolve_and_defs_are_closed() -> None:
    schema = spec_json_schema()
    for ref in _refs(schema):
        _resolve(schema, ref)
    for name, definition in schema["$defs"].items():
        if definition.get("type") == "object":
            assert definition.get("additionalProperties") is False, name


def test_schema_is_json_serialisable_and_stable() -> None:
    first = spec_json_schema()
    assert json.loads(json.dumps(first)) == first
    assert spec_json_schema() == first
