import math

from events.tasks import TaskAssigned, TaskCompleted, TaskFailed, TaskRejected
from services.sdk.results import MAX_TEXT, Completed, Failed, Rejected, outcome_for

ASSIGNMENT = TaskAssigned(task_id="task-1", agent_id="agent-1", attempt=2, capability="python")
ATTEMPT = {"task_id": "task-1", "agent_id": "agent-1", "attempt": 2}


def test_a_completed_result_becomes_task_completed_with_its_duration():
    event = outcome_for(ASSIGNMENT, Completed("done", {"tokens": 12.0}, success=False), 250.0)
    assert event == TaskCompleted(
        **ATTEMPT, result_summary="done", metrics={"tokens": 12.0}, success=False, duration_ms=250.0
    )


def test_failed_keeps_the_handlers_verdict_on_retrying():
    assert outcome_for(ASSIGNMENT, Failed("quota exceeded", retryable=False), 1.0) == TaskFailed(
        **ATTEMPT, error="quota exceeded", retryable=False
    )


def test_rejected_becomes_task_rejected():
    rejected = outcome_for(ASSIGNMENT, Rejected("not my language"), 1.0)
    assert rejected == TaskRejected(**ATTEMPT, reason="not my language")


def test_an_unexpected_exception_is_a_retryable_failure_with_its_text():
    event = outcome_for(ASSIGNMENT, KeyError("payload"), 1.0)
    assert event == TaskFailed(**ATTEMPT, error="KeyError: 'payload'", retryable=True)


def test_returning_something_else_is_a_failure_that_says_what_to_return():
    event = outcome_for(ASSIGNMENT, None, 1.0)
    assert isinstance(event, TaskFailed) and not event.retryable
    assert "return Completed" in event.error


def test_a_result_that_cannot_be_an_event_is_a_non_retryable_failure():
    event = outcome_for(ASSIGNMENT, Completed(metrics={"score": math.nan}), 1.0)
    assert isinstance(event, TaskFailed) and not event.retryable
    assert "metrics.score" in event.error


def test_long_texts_are_clipped_to_what_the_event_allows():
    event = outcome_for(ASSIGNMENT, RuntimeError("x" * 10_000), 1.0)
    assert len(event.error) == MAX_TEXT
