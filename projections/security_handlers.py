"""Projection handlers for the `security` topic: one `security_events` row per event."""

from __future__ import annotations

from events.envelope import Envelope
from projections.ops import Insert, Op
from projections.registry import handles


def _row(event: Envelope, kind: str, key_id: str | None, detail: dict, **origin) -> Insert:
    return Insert(
        "security_events",
        {
            "event_id": event.event_id,
            "occurred_at": event.occurred_at,
            "kind": kind,
            "agent_id": event.body.agent_id,
            "key_id": key_id,
            "detail": detail,
            "origin_topic": None,
            "origin_partition": None,
            "origin_offset": None,
            **origin,
        },
    )


@handles("AgentKeyEnrolled")
def key_enrolled(event: Envelope) -> list[Op]:
    body = event.body
    return [
        _row(
            event,
            "key_enrolled",
            body.key_id,
            {"enrolled_by": body.enrolled_by, "algorithm": body.algorithm, "public_key": body.public_key},
        )
    ]


@handles("AgentKeyRevoked")
def key_revoked(event: Envelope) -> list[Op]:
    body = event.body
    return [
        _row(
            event,
            "key_revoked",
            body.key_id,
            {"revoked_by": body.revoked_by, "reason": body.reason, "revoked_at": body.revoked_at.isoformat()},
        )
    ]


@handles("SecurityViolationDetected")
def violation_detected(event: Envelope) -> list[Op]:
    body = event.body
    return [
        _row(
            event,
            body.kind,
            body.key_id,
            {"reason": body.reason, "event_type": body.event_type_claimed, "processor": body.processor},
            origin_topic=body.origin_topic,
            origin_partition=body.origin_partition,
            origin_offset=body.origin_offset,
        )
    ]
