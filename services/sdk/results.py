"""What a handler hands back, and the outcome event each result becomes."""

from __future__ import annotations

from dataclasses import dataclass, field

from pydantic import ValidationError

from events.envelope import EventBody
from events.tasks import TaskAssigned, TaskCompleted, TaskFailed, TaskRejected
from services.sdk.registration import readable

MAX_TEXT = 4000


@dataclass(frozen=True)
class Completed:
    result_summary: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    success: bool = True


class Failed(Exception):
    """Raise from a handler: the attempt failed; retryable says whether another attempt may succeed."""

    def __init__(self, error: str, retryable: bool = True) -> None:
        super().__init__(error)
        self.error = error
        self.retryable = retryable


class Rejected(Exception):
    """Raise from a handler: the agent declines this task (wrong fit, missing input, …)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def clip(text: str) -> str:
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"


def describe(error: BaseException) -> str:
    text = str(error)
    return clip(f"{type(error).__name__}: {text}" if text else type(error).__name__)


def outcome_for(assignment: TaskAssigned, outcome: object, duration_ms: float) -> EventBody:
    """The event reporting how an attempt ended: `outcome` is what the handler returned or raised."""
    attempt = {"task_id": assignment.task_id, "agent_id": assignment.agent_id, "attempt": assignment.attempt}
    if isinstance(outcome, Failed):
        return TaskFailed(**attempt, error=clip(outcome.error), retryable=outcome.retryable)
    if isinstance(outcome, Rejected):
        return TaskRejected(**attempt, reason=clip(outcome.reason))
    if isinstance(outcome, BaseException):
        return TaskFailed(**attempt, error=describe(outcome), retryable=True)
    if not isinstance(outcome, Completed):
        return TaskFailed(
            **attempt,
            retryable=False,
            error=(f"handler returned {type(outcome).__name__}; return Completed(...) or raise Failed / Rejected"),
        )
    try:
        return TaskCompleted(
            **attempt,
            result_summary=outcome.result_summary,
            metrics=outcome.metrics,
            success=outcome.success,
            duration_ms=max(0.0, duration_ms),
        )
    except ValidationError as error:
        # The same handler would return the same unusable result on another attempt.
        return TaskFailed(
            **attempt, retryable=False, error=clip(f"handler returned an invalid result: {readable(error)}")
        )
