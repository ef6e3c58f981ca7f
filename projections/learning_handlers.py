"""Projection handlers for what the learner publishes: skills, their changes, models, relationships."""

from __future__ import annotations

from events.envelope import Envelope
from projections.ops import Insert, Op, Upsert
from projections.registry import handles

_SKILL_COLUMNS = ("proficiency", "confidence", "successes", "attempts", "model_version")


@handles("SkillEstimated")
def skill_estimated(event: Envelope) -> list[Op]:
    body = event.body
    values = {c: getattr(body, c) for c in _SKILL_COLUMNS}
    return [
        # Ranked by time, so a replay that reads partitions in another order keeps the latest.
        Upsert(
            "skill_estimates",
            {"agent_id": body.agent_id, "capability": body.capability},
            {**values, "estimated_at": event.occurred_at},
            merge={c: "ranked" for c in values},
            rank=("estimated_at",),
        ),
        Insert(
            "skill_trajectory",
            {
                "event_id": event.event_id,
                "agent_id": body.agent_id,
                "capability": body.capability,
                **values,
                "estimated_at": event.occurred_at,
            },
        ),
    ]


@handles("SkillShiftDetected")
def skill_shift_detected(event: Envelope) -> list[Op]:
    body = event.body
    return [
        Insert(
            "skill_shifts",
            {
                "event_id": event.event_id,
                "agent_id": body.agent_id,
                "capability": body.capability,
                "direction": body.direction,
                "before": body.before,
                "after": body.after,
                "attempts": body.attempts,
                "model_version": body.model_version,
                "detected_at": event.occurred_at,
            },
        )
    ]


@handles("ModelPublished")
def model_published(event: Envelope) -> list[Op]:
    body = event.body
    return [
        Insert(
            "model_versions",
            {
                "model_id": body.model_id,
                "model_version": body.model_version,
                "kind": body.kind,
                "trained_on_events": body.trained_on_events,
                "metrics": body.metrics,
                "parameters": body.parameters,
                "published_at": event.occurred_at,
            },
            key=("model_id", "model_version"),
        )
    ]


@handles("RelationshipScored")
def relationship_scored(event: Envelope) -> list[Op]:
    body = event.body
    values = {
        "joint_tasks": body.joint_tasks,
        "joint_success_rate": body.joint_success_rate,
        "lift": body.lift,
        "confidence": body.confidence,
        "model_version": body.model_version,
    }
    return [
        Upsert(
            "agent_relationships",
            {"agent_id": body.agent_id, "other_agent_id": body.other_agent_id},
            {**values, "scored_at": event.occurred_at},
            merge={c: "ranked" for c in values},
            rank=("scored_at",),
        )
    ]
