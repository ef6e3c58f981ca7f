from typing import Annotated, Literal

from pydantic import Field, JsonValue, model_validator

from events.envelope import EventBody
from events.values import (
    Attempt,
    Candidate,
    Count,
    Identifier,
    NonEmptyRequirements,
    Probability,
    Requirements,
    Tag,
    Text,
    UtcDatetime,
    duplicates,
)

Principal = Annotated[str, Field(min_length=1, max_length=256)]


class TaskEvent(EventBody):
    key_field = "task_id"

    task_id: Identifier


class TaskSubmitted(TaskEvent):
    """A client asked for work. Version 2 replaced the single required_capability with requirements."""

    event_type = "TaskSubmitted"
    version = 2

    requirements: NonEmptyRequirements
    priority: Annotated[int, Field(ge=0, le=9, description="0 is most urgent.")] = 5
    submitter: Principal
    payload: dict[str, JsonValue] = {}
    deadline: UtcDatetime | None = None
    job_id: Identifier | None = None
    parent_task_id: Identifier | None = None
    preferred_agents: tuple[Identifier, ...] = ()
    preferred_tags: tuple[Tag, ...] = ()
    features: dict[str, float] = Field(default={}, description="Numeric task features the router may learn from.")


class TaskRouted(TaskEvent):
    """The router's decision and everything it was based on; replay re-reads it, never re-decides."""

    event_type = "TaskRouted"

    candidates: tuple[Candidate, ...] = Field(description="Every candidate considered, best first.")
    chosen_agent_id: Identifier | None
    predicted_success: Probability | None = None
    confidence: Probability | None = None
    propensity: Probability | None = Field(
        default=None, description="Probability with which the chosen agent was picked."
    )
    model_version: str | None = None
    policy: Identifier
    reason: Text
    risk_factors: tuple[Tag, ...] = ()

    @model_validator(mode="after")
    def _choice_is_a_candidate(self) -> "TaskRouted":
        ids = [c.agent_id for c in self.candidates]
        if dupes := duplicates(ids):
            raise ValueError(f"agents listed twice as candidates: {', '.join(dupes)}")
        if self.chosen_agent_id is not None and self.chosen_agent_id not in ids:
            raise ValueError(f"chosen agent {self.chosen_agent_id} is not among the candidates")
        return self


class TaskQueued(TaskEvent):
    """No agent can take the task now; it waits for capacity."""

    event_type = "TaskQueued"

    reason: Text
    capability: Identifier | None = None
    position: Count | None = None


class TaskAssigned(EventBody):
    """The balancer gave the task to an agent. Keyed by agent so each agent reads only its own partition.
    Version 2 added the propensity: the balancer may give the task to another agent than the router
    drew, or later, so only it can say how likely this agent was to get the task."""

    event_type = "TaskAssigned"
    version = 2
    key_field = "agent_id"

    agent_id: Identifier
    task_id: Identifier
    attempt: Attempt
    capability: Identifier
    deadline: UtcDatetime | None = None
    payload: dict[str, JsonValue] = {}
    routed_event_id: str | None = None
    propensity: Probability | None = Field(
        default=None,
        description="Probability with which this agent was given the task, over the router's draw "
        "and the balancer's rules; none when the router logged no probabilities.",
    )


class TaskOutcome(TaskEvent):
    agent_id: Identifier
    attempt: Attempt


class TaskStarted(TaskOutcome):
    event_type = "TaskStarted"


class TaskCompleted(TaskOutcome):
    """The agent finished; success is the quality verdict, not merely that it returned."""

    event_type = "TaskCompleted"

    result_summary: Text = ""
    metrics: dict[str, float] = {}
    duration_ms: Annotated[float, Field(ge=0.0)] | None = None
    success: bool = True


class TaskFailed(TaskOutcome):
    event_type = "TaskFailed"

    error: Text
    retryable: bool


class TaskRejected(TaskOutcome):
    """The agent declined the assignment without trying it."""

    event_type = "TaskRejected"

    reason: Text


class TaskHandedOff(TaskEvent):
    """The agent passed the task, or a subtask of it, on; to_agent_id None lets the router choose."""

    event_type = "TaskHandedOff"

    from_agent_id: Identifier
    attempt: Attempt
    to_agent_id: Identifier | None = None
    subtask_id: Identifier | None = None
    reason: Text
    requirements: Requirements = ()


class TaskTimedOut(TaskEvent):
    """An agent did not start (`start`) or finish (`completion`) its attempt in time, or the task
    itself ran out (`deadline`): its deadline passed, or the balancer gave up on it, and it will
    not be tried again. Version 2 added the reason."""

    event_type = "TaskTimedOut"
    version = 2

    agent_id: Identifier | None = None
    attempt: Annotated[Count, Field(description="0 when the task was never assigned.")]
    stage: Literal["start", "completion", "deadline"]
    reason: Text | None = None


class TaskReassigned(TaskEvent):
    event_type = "TaskReassigned"

    from_agent_id: Identifier | None = None
    to_agent_id: Identifier | None = None
    attempt: Annotated[Attempt, Field(description="The attempt number the reassignment starts.")]
    reason: Text


TASK_EVENTS: tuple[type[EventBody], ...] = (
    TaskSubmitted,
    TaskRouted,
    TaskQueued,
    TaskAssigned,
    TaskStarted,
    TaskCompleted,
    TaskFailed,
    TaskRejected,
    TaskHandedOff,
    TaskTimedOut,
    TaskReassigned,
)
