"""One error hierarchy. Each class says whether retrying can help and what the caller must do."""

from __future__ import annotations

from collections.abc import Sequence

from orchestrator.domain.sessions import SessionInfo, describe_sessions


class OrchestratorError(Exception):
    retryable = False


class SpecError(OrchestratorError):
    """The spec is wrong. `problems` holds (field path, message) pairs; nothing was stored or run."""

    def __init__(self, problems: Sequence[tuple[str, str]]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(f"{path}: {message}" for path, message in self.problems))


class NotFoundError(OrchestratorError):
    def __init__(self, what: str, key: str) -> None:
        self.what = what
        self.key = key
        super().__init__(f"{what} {key!r} does not exist")


class IllegalTransitionError(OrchestratorError):
    """The action is not allowed in the run's current state; `allowed` lists what is."""

    def __init__(self, current: str, action: str, allowed: Sequence[str], reason: str = "") -> None:
        self.current = current
        self.action = action
        self.allowed = list(allowed)
        self.reason = reason
        detail = f"cannot {action} a migration that is {current}"
        if reason:
            detail += f": {reason}"
        super().__init__(detail)


class ConflictError(OrchestratorError):
    """Another writer got there first (stale status, a second active migration on the same table)."""


class IrreversibleError(OrchestratorError):
    """A step already done cannot be undone by reversing DDL: use a runbook."""


class StepFailedError(OrchestratorError):
    """A step failed for a reason retrying will not fix (syntax, missing object, constraint)."""

    def __init__(self, step_id: str, description: str, cause: str) -> None:
        self.step_id = step_id
        self.cause = cause
        super().__init__(f"step {step_id} ({description}) failed: {cause}")


class LockTimeoutExhaustedError(OrchestratorError):
    """Every attempt waited its lock_timeout and gave up. Retrying later, off-peak, usually helps;
    so does ending the sessions named in `blockers` (those the last attempts waited behind)."""

    retryable = True

    def __init__(self, step_id: str, attempts: int, blockers: Sequence[SessionInfo] = ()) -> None:
        self.step_id = step_id
        self.attempts = attempts
        self.blockers = tuple(blockers)
        message = f"step {step_id} could not take its lock in {attempts} attempts"
        if self.blockers:
            message += f"; blocked by {describe_sessions(self.blockers)}"
        super().__init__(message)


class StageInterruptedError(OrchestratorError):
    """The runner was asked to stop (pause, rollback, shutdown) and stopped between two safe points."""

    retryable = True


class FencedError(OrchestratorError):
    """A state write carried a leader epoch that is no longer current: another replica leads now.

    Never retried: the replica that gets it has lost leadership and must stop acting on migrations;
    the new leader resumes them from their checkpoints.
    """

    def __init__(self, epoch: int, current: int | None) -> None:
        self.epoch = epoch
        self.current = current
        super().__init__(f"leader epoch {epoch} is stale (current: {current}); write refused")
