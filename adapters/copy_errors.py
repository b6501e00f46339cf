"""What can go wrong driving a copy tool, as StepFailedError subclasses (the service fails the stage
with the message; the class says whether trying the stage again can help)."""

from __future__ import annotations

from orchestrator.domain.errors import StepFailedError


class CopyRefusedError(StepFailedError):
    """No tool can make this change on this table as it is (foreign keys, triggers, duplicates for a
    new unique key, a collision with a kept old table). Nothing was changed."""


class CopyToolError(StepFailedError):
    """The tool exited with an error. Its copy, triggers and changelog table were removed again; the
    original table is as it was. `retryable` when the cause was the connection or a lock."""

    def __init__(
        self, step_id: str, description: str, cause: str, *, exit_code: int, retryable: bool
    ) -> None:
        super().__init__(step_id, description, cause)
        self.exit_code = exit_code
        self.retryable = retryable


class CopyVerificationError(StepFailedError):
    """The copy does not match the original (row counts or checksums differ). Nothing was swapped;
    both tables are kept for a human to look at. Never retried automatically."""

    needs_human = True
