"""The served OpenAPI 3.1 document, finished: problem+json for every error answer, and the spec's
JSON Schema (written in YAML or JSON) as the body of a create."""

from __future__ import annotations

import copy
from typing import Any

from orchestrator.api.schemas import Problem
from orchestrator.domain.run import BackfillTuning
from orchestrator.domain.spec import spec_json_schema

PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
SPEC_PREFIX = "Spec"


def finish_openapi(schema: dict[str, Any]) -> dict[str, Any]:
    schema = copy.deepcopy(schema)
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components["Problem"] = Problem.model_json_schema()
    # FastAPI's own 422 shape is never sent: the problem handlers answer instead.
    components.pop("HTTPValidationError", None)
    components.pop("ValidationError", None)
    spec = _hoist(spec_json_schema(), components)
    tuning = BackfillTuning.model_json_schema()
    tuning["properties"] = {
        name: {"anyOf": [prop, {"type": "null"}]} if "anyOf" not in prop else prop
        for name, prop in tuning["properties"].items()
    }
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            for code, response in operation.get("responses", {}).items():
                if code.isdigit() and int(code) >= 400:
                    response["content"] = {"application/problem+json": {"schema": PROBLEM_REF}}
            if path == "/v1/migrations" and method == "post":
                operation["requestBody"] = {
                    "required": True,
                    "description": "A migration spec (see `osctl schema`), as JSON or YAML.",
                    "content": {
                        "application/json": {"schema": spec},
                        "application/yaml": {"schema": {"type": "string"}},
                    },
                }
            if path.endswith("/backfill") and method == "patch":
                operation["requestBody"] = {
                    "required": True,
                    "description": "The tuning fields to change; null sets one back to the plan's value.",
                    "content": {"application/json": {"schema": tuning}},
                }
    return schema


def _hoist(json_schema: dict[str, Any], components: dict[str, Any]) -> dict[str, Any]:
    """Move `$defs` into the document's components (prefixed), pointing the references there."""
    definitions = json_schema.pop("$defs", {})
    json_schema.pop("$schema", None)

    def rewrite(node: Any) -> Any:
        if isinstance(node, dict):
            return {
                key: (
                    value.replace("#/$defs/", f"#/components/schemas/{SPEC_PREFIX}")
                    if key == "$ref" and isinstance(value, str)
                    else rewrite(value)
                )
                for key, value in node.items()
            }
        if isinstance(node, list):
            return [rewrite(item) for item in node]
        return node

    for name, definition in definitions.items():
        components[f"{SPEC_PREFIX}{name}"] = rewrite(definition)
    return dict(rewrite(json_schema))
