"""The migration spec as users write it (YAML or JSON), validated into frozen models."""

from __future__ import annotations

import json
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from orchestrator.domain.errors import SpecError
from orchestrator.domain.operations import OPERATION_MODELS, Operation, OperationEntry

NAME_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,99}$"


# Without an explicit statement_timeout_ms, a strong-lock statement may run this long once it holds
# its lock: PostgreSQL counts the lock wait in statement_timeout, so the budget comes on top of it.
STATEMENT_BUDGET_MS = 4000

OverridableCheck = Literal["blocking_sessions"]


class PreflightSettings(BaseModel):
    """Thresholds of the live checks run before a migration is accepted, and explicit overrides."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    long_transaction_seconds: float = Field(
        default=60,
        ge=0,
        le=86_400,
        description="A transaction open this long refuses the plan when it would block a step: it "
        "holds a lock on a table the migration changes, or holds a snapshot while an index is built "
        "concurrently (which waits for every such transaction). Elsewhere it is a warning.",
    )
    replica_lag_seconds: float = Field(
        default=10,
        ge=0,
        le=86_400,
        description="Replica lag reported as a warning above this (throttling holds the backfill on "
        "lag; lag alone never refuses the plan).",
    )
    check_timeout_ms: int = Field(
        default=30_000,
        ge=100,
        le=3_600_000,
        description="How long one data check (NULLs, duplicates, orphans, casts) may scan; one that "
        "runs out is reported as a warning, since the migration's own step still enforces the rule.",
    )
    override: list[OverridableCheck] = Field(
        default_factory=list,
        description="Refusals to downgrade to warnings, named one by one and stored with the "
        "migration. Data checks cannot be overridden: the migration would fail on that data later.",
    )


class SpecSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    lock_timeout_ms: int = Field(
        default=1000, ge=50, le=60_000, description="How long one DDL attempt may wait for its lock."
    )
    ddl_attempts: int = Field(
        default=30, ge=1, le=1000, description="Attempts per DDL step before the stage fails."
    )
    statement_timeout_ms: int | None = Field(
        default=None,
        ge=100,
        le=3_600_000,
        description="How long a statement that takes a strong lock (one that blocks writes) may run, "
        "lock wait included, so it must exceed lock_timeout_ms. Default: lock_timeout_ms + "
        f"{STATEMENT_BUDGET_MS} ms. Concurrent index builds and VALIDATE CONSTRAINT, which do not "
        "block writes, are not bounded by it.",
    )
    preflight: PreflightSettings = Field(default_factory=PreflightSettings)

    @field_validator("statement_timeout_ms")
    @classmethod
    def _statement_outlasts_lock_wait(cls, value: int | None, info: ValidationInfo) -> int | None:
        lock_timeout_ms = info.data.get("lock_timeout_ms")
        if value is not None and lock_timeout_ms is not None and value <= lock_timeout_ms:
            raise ValueError(
                f"statement_timeout_ms ({value}) must exceed lock_timeout_ms ({lock_timeout_ms}): "
                f"PostgreSQL counts the lock wait in it; e.g. {lock_timeout_ms + STATEMENT_BUDGET_MS}"
            )
        return value

    def statement_timeout_for(self, lock_timeout_ms: int) -> int:
        """The statement_timeout of a step that waits up to `lock_timeout_ms` for its lock."""
        if self.statement_timeout_ms is not None and self.statement_timeout_ms > lock_timeout_ms:
            return self.statement_timeout_ms
        return lock_timeout_ms + STATEMENT_BUDGET_MS


class MigrationSpec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=NAME_PATTERN, description="A short slug, e.g. 'users-email-verified'.")
    target: str | None = Field(
        default=None,
        pattern=r"^[a-z][a-z0-9_-]{0,62}$",
        description="A configured target name. `osctl migrate --target-dsn` may stand in for it.",
    )
    description: str = ""
    settings: SpecSettings = Field(default_factory=SpecSettings)
    operations: list[OperationEntry] = Field(min_length=1, max_length=200)

    def ops(self) -> list[Operation]:
        return list(self.operations)


def format_location(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc) or "(spec)"


def spec_problems(error: ValidationError) -> list[tuple[str, str]]:
    problems = []
    for item in error.errors(include_url=False):
        message = item["msg"].removeprefix("Value error, ")
        problems.append((format_location(tuple(item["loc"])), message))
    return problems


def parse_spec(data: Any) -> MigrationSpec:
    """Validate a decoded spec; SpecError carries every problem with its field path."""
    if not isinstance(data, dict):
        raise SpecError([("(spec)", "a migration spec is a mapping with name, target and operations")])
    try:
        return MigrationSpec.model_validate(data)
    except ValidationError as error:
        raise SpecError(spec_problems(error)) from error


def decode_spec_text(text: str) -> Any:
    """YAML or JSON text to plain data (JSON is YAML, but its errors read better from the JSON parser)."""
    try:
        return json.loads(text) if text.lstrip().startswith("{") else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as error:
        raise SpecError([("(spec)", f"not valid YAML or JSON: {error}")]) from error


def load_spec_text(text: str) -> MigrationSpec:
    return parse_spec(decode_spec_text(text))


def spec_json_schema() -> dict[str, Any]:
    """The JSON Schema of the spec as users write it: each operation a one-key mapping."""
    schema = MigrationSpec.model_json_schema(mode="validation")
    definitions = schema.get("$defs", {})
    entries = []
    for kind, model in OPERATION_MODELS.items():
        model_name = model.__name__
        params = dict(definitions[model_name])
        params["properties"] = {k: v for k, v in params["properties"].items() if k != "kind"}
        definitions[model_name] = params
        entries.append(
            {
                "type": "object",
                "properties": {kind: {"$ref": f"#/$defs/{model_name}"}},
                "required": [kind],
                "additionalProperties": False,
            }
        )
    schema["properties"]["operations"]["items"] = {"oneOf": entries}
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "osctl migration spec"
    return schema
