"""Projection handlers for what the learner publishes: skills, their changes, models, relationships."""

from __future__ import annotations

from events.envelope import Envelope
from projections.ops import Insert, Op
from projections.registry import handles
from projections.rows import body_fields, history_row, latest_fields

_SKILL_KEY = ("agent_id", "capability")
_SKILL_COLUMNS = ("proficiency", "confidence", "successes", "attempts", "model_version")
_SHIFT_COLUMNS = ("agent_id", "capability", "direction", "before", "after", "attempts", "model_version")
_MODEL_COLUMNS = ("model_id", "model_version", "kind", "trained_on_events", "metrics", "parameters")
_PAIR_KEY = ("agent_id", "other_agent_id")
_RELATIONSHIP_COLUMNS = ("joint_tasks", "joint_success_rate", "lift", "confidence", "model_version")


@handles("SkillEstimated")
def skill_estimated(event: Envelope) -> list[Op]:
    return [
        latest_fields("skill_estimates", event, _SKILL_KEY, _SKILL_COLUMNS, at="estimated_at"),
        history_row("skill_trajectory", event, (*_SKILL_KEY, *_SKILL_COLUMNS), at="estimated_at"),
    ]


@handles("SkillShiftDetected")
def skill_shift_detected(event: Envelope) -> list[Op]:
    return [history_row("skill_shifts", event, _SHIFT_COLUMNS, at="detected_at")]


@handles("ModelPublished")
def model_published(event: Envelope) -> list[Op]:
    # Keyed by version, not by event: publishing the same version again changes nothing.
    row = {**body_fields(event.body, _MODEL_COLUMNS), "published_at": event.occurred_at}
    return [Insert("model_versions", row, key=("model_id", "model_version"))]


@handles("RelationshipScored")
def relationship_scored(event: Envelope) -> list[Op]:
    return [latest_fields("agent_relationships", event, _PAIR_KEY, _RELATIONSHIP_COLUMNS, at="scored_at")]
