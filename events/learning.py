from typing import Annotated, Literal

from pydantic import Field, JsonValue, model_validator

from events.envelope import EventBody
from events.values import Count, Identifier, Probability


class ModelPublished(EventBody):
    """A new version of a learned model; parameters are plain JSON so any consumer can load them."""

    event_type = "ModelPublished"
    key_field = "model_id"

    model_id: Identifier
    model_version: Annotated[str, Field(min_length=1, max_length=128)]
    kind: Identifier
    parameters: dict[str, JsonValue]
    metrics: dict[str, float] = {}
    trained_on_events: Count


class SkillEstimated(EventBody):
    """The learner's current belief about how well an agent does one capability."""

    event_type = "SkillEstimated"
    key_field = "agent_id"

    agent_id: Identifier
    capability: Identifier
    proficiency: Probability
    confidence: Probability
    successes: Count
    attempts: Count
    model_version: str | None = None
    # How many of the agent's outcomes on the capability the learner had read when it made the
    # estimate. Unlike `attempts`, which restarts when a skill change is detected, it only grows:
    # a reader that has seen more outcomes knows which of them the estimate does not count yet.
    outcomes_read: Count | None = None
    # What the prior behind `proficiency` is worth in outcomes (learned from the fleet's records): a
    # reader that adds outcomes of its own weighs them against this plus `attempts`.
    prior_strength: Annotated[float, Field(gt=0.0)] | None = None

    @model_validator(mode="after")
    def _successes_within_attempts(self) -> "SkillEstimated":
        if self.successes > self.attempts:
            raise ValueError(f"successes ({self.successes}) exceed attempts ({self.attempts})")
        return self


class RelationshipScored(EventBody):
    """How two agents do together, measured on tasks both worked on."""

    event_type = "RelationshipScored"
    key_field = "agent_id"

    agent_id: Identifier
    other_agent_id: Identifier
    joint_tasks: Count
    joint_success_rate: Probability
    lift: float = Field(ge=0.0, description="Above 1 the pair does better together than expected from each alone.")
    confidence: Probability
    model_version: str | None = None

    @model_validator(mode="after")
    def _two_different_agents(self) -> "RelationshipScored":
        if self.agent_id == self.other_agent_id:
            raise ValueError("an agent cannot be scored against itself")
        return self


class SkillShiftDetected(EventBody):
    """An agent's success rate on one capability changed: its record before the change no longer counts."""

    event_type = "SkillShiftDetected"
    key_field = "agent_id"

    agent_id: Identifier
    capability: Identifier
    direction: Literal["improved", "degraded"]
    before: Probability = Field(description="The proficiency estimate just before the change was detected.")
    after: Probability = Field(description="The estimate from the outcomes since the change.")
    attempts: Count = Field(description="The agent's attempts on the capability when the change was detected.")
    model_version: str | None = None


LEARNING_EVENTS: tuple[type[EventBody], ...] = (ModelPublished, SkillEstimated, RelationshipScored, SkillShiftDetected)
