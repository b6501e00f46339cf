"""Lock safety without a database: jittered backoff, which statements get a statement_timeout, the
timeout's setting, and blocking sessions carried from the last attempt into the failure."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from adapters.postgres.lock_safety import statement_timeout_ms, takes_strong_lock
from orchestrator.domain.errors import LockTimeoutExhaustedError, SpecError
from orchestrator.domain.plan import Stage, Step, StepAction
from orchestrator.domain.run import EventType
from orchestrator.domain.sessions import SessionInfo, shorten_query
from orchestrator.domain.spec import parse_spec
from orchestrator.engine.runner import RetryPolicy
from orchestrator.ports import Attempt
from tests.unit.fakes import ScriptedTarget
from tests.unit.test_runner import A_ID, ADD_A, harness


def test_backoff_draws_a_jitter_fraction_of_each_pause_from_the_injected_source() -> None:
    draws = iter([0.0, 1.0, 0.5])
    policy = RetryPolicy(base_seconds=1.0, max_seconds=8.0, jitter=0.5, draw=lambda: next(draws))
    assert [policy.delay(1), policy.delay(2), policy.delay(5)] == [1.0, 1.0, 6.0]


def test_default_backoff_stays_between_half_and_the_whole_exponential_pause() -> None:
    policy = RetryPolicy(base_seconds=0.25, max_seconds=10.0)
    for attempt, ceiling in [(1, 0.25), (3, 1.0), (12, 10.0)]:
        assert ceiling / 2 <= policy.delay(attempt) <= ceiling


@pytest.mark.parametrize(
    ("sql", "strong"),
    [
        ("ALTER TABLE t ADD COLUMN c int", True),
        ("ALTER TABLE t ADD CONSTRAINT c CHECK (x > 0) NOT VALID", True),
        ("ALTER TABLE t VALIDATE CONSTRAINT c", False),
        ("ALTER TABLE t VALIDATE CONSTRAINT c; ALTER TABLE t ALTER COLUMN c SET NOT NULL", True),
        ("CREATE INDEX CONCURRENTLY i ON t (c)", False),
        ("CREATE INDEX i ON t (c)", True),
        ("DROP INDEX CONCURRENTLY i", False),
        ("DROP TABLE t", True),
        ("ALTER TABLE t RENAME TO u", True),
        ("CREATE TRIGGER x AFTER INSERT ON t FOR EACH ROW EXECUTE FUNCTION f()", True),
        ("REINDEX (CONCURRENTLY) INDEX i", False),
        ("INSERT INTO archive SELECT id, c FROM t", False),
        ("CREATE TABLE archive AS SELECT id, c FROM t", False),
        ("this is not sql", True),
    ],
)
def test_strong_locks_are_the_ones_that_block_writes(sql: str, strong: bool) -> None:
    assert takes_strong_lock(sql) is strong


def step(sql: str | None, action: StepAction = StepAction.DDL) -> Step:
    return Step(
        id="s", stage=Stage.EXPAND, operation_index=0, action=action, description="d", sql=sql, table="t"
    )


def test_the_statement_timeout_bounds_strong_statements_only() -> None:
    assert statement_timeout_ms(step("ALTER TABLE t ADD COLUMN c int"), 5000) == 5000
    assert statement_timeout_ms(step("ALTER TABLE t VALIDATE CONSTRAINT c"), 5000) == 0
    build = step("CREATE UNIQUE INDEX CONCURRENTLY i ON t (c)", StepAction.CREATE_INDEX_CONCURRENTLY)
    assert statement_timeout_ms(build, 5000) == 0
    assert statement_timeout_ms(step("ALTER TABLE t ADD COLUMN c int"), None) == 0


def settings(**values: Any) -> dict[str, Any]:
    return {"name": "x", "settings": values, "operations": [ADD_A]}


def test_statement_timeout_defaults_above_the_lock_wait_and_must_exceed_it() -> None:
    assert parse_spec(settings(lock_timeout_ms=1000)).settings.statement_timeout_for(1000) == 5000
    assert parse_spec(settings(statement_timeout_ms=3000)).settings.statement_timeout_for(1000) == 3000
    # A step waiting longer than the spec's statement timeout still gets room to run after its wait.
    assert parse_spec(settings(statement_timeout_ms=3000)).settings.statement_timeout_for(5000) == 9000
    with pytest.raises(SpecError) as caught:
        parse_spec(settings(lock_timeout_ms=2000, statement_timeout_ms=1500))
    [(path, message)] = caught.value.problems
    assert path == "settings.statement_timeout_ms"
    assert "must exceed lock_timeout_ms (2000)" in message


async def test_the_runner_passes_the_statement_timeout_from_the_spec() -> None:
    h = await harness(ADD_A, target=ScriptedTarget(lock_timeouts={A_ID: 1}), lock_timeout_ms=500)
    await h.run_stage(Stage.EXPAND)
    assert h.target.statement_timeouts == [4500, 4500]


BLOCKER = SessionInfo(
    pid=4242,
    state="idle in transaction",
    query=shorten_query("UPDATE t SET secret = 'x' WHERE password = 'hunter2'"),
    transaction_seconds=12.5,
    application_name="report-job",
)


@dataclass
class BlockedTarget(ScriptedTarget):
    """Every attempt times out behind BLOCKER, except the last, which saw nobody."""

    seen: list[tuple[SessionInfo, ...]] = field(default_factory=lambda: [(BLOCKER,), (BLOCKER,), ()])

    async def execute_step(
        self, step: Step, *, lock_timeout_ms: int, statement_timeout_ms: int | None = None
    ) -> Attempt:
        await super().execute_step(
            step, lock_timeout_ms=lock_timeout_ms, statement_timeout_ms=statement_timeout_ms
        )
        return Attempt(lock_timed_out=True, seconds=lock_timeout_ms / 1000, blockers=self.seen.pop(0))


async def test_exhausted_attempts_name_the_last_sessions_seen_blocking() -> None:
    h = await harness(ADD_A, target=BlockedTarget(), ddl_attempts=3)
    with pytest.raises(LockTimeoutExhaustedError) as caught:
        await h.run_stage(Stage.EXPAND)
    assert caught.value.blockers == (BLOCKER,)
    message = str(caught.value)
    assert message.startswith(
        f"step {A_ID} could not take its lock in 3 attempts; blocked by pid 4242 (report-job)"
    )
    assert "in a transaction for 12.5 s" in message
    assert "hunter2" not in message
    retries = h.store.events_of(EventType.STEP_RETRY)
    assert [event.data["blockers"][0]["pid"] for event in retries] == [4242, 4242]
    assert "waiting behind pid 4242" in retries[0].message
    [failed] = h.store.events_of(EventType.STEP_FAILED)
    assert failed.data == {"attempts": 3, "blockers": [BLOCKER.as_data()]}


@pytest.mark.parametrize(
    ("query", "leak"),
    [
        ("ALTER ROLE app PASSWORD 'hunter2'", "hunter2"),
        ("SELECT dblink_connect('host=db password=s3cret dbname=x')", "s3cret"),
        ("SELECT * FROM dblink('postgresql://u:pw0rd@h/db', 'select 1')", "pw0rd"),
    ],
)
def test_session_queries_are_shortened_and_masked(query: str, leak: str) -> None:
    shown = shorten_query(query)
    assert leak not in shown and "***" in shown
    assert len(shorten_query("SELECT " + "x, " * 200)) == 200
