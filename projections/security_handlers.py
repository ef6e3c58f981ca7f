"""Projection handlers for the `security` topic: one `security_events` row per event."""

from __future__ import annotations

from typing import Any

from events.envelope import Envelope
from projections.ops import Insert, Op
from projections.registry import handles
from projections.rows import body_fields

_ORIGIN_COLUMNS = ("origin_topic", "origin_partition", "origin_offset")


def _row(event: Envelope, kind: str, detail: dict[str, Any], origin: dict[str, Any] | None = None) -> Insert:
    """`origin` says where a rejected record sits; events about keys have none."""
    return Insert(
        "security_events",
        {
            "event_id": event.event_id,
            "occurred_at": event.occurred_at,
            "kind": kind,
            "agent_id": event.body.agent_id,
            "key_id": event.body.key_id,
            "detail": detail,
            **(origin or dict.fromkeys(_ORIGIN_COLUMNS)),
        },
    )


@handles("AgentKeyEnrolled")
def key_enrolled(event: Envelope) -> list[Op]:
    return [_row(event, "key_enrolled", body_fields(event.body, ("enrolled_by", "algorithm", "public_key")))]


@handles("AgentKeyRevoked")
def key_revoked(event: Envelope) -> list[Op]:
    body = event.body
    detail = {"revoked_by": body.revoked_by, "reason": body.reason, "revoked_at": body.revoked_at.isoformat()}
    return [_row(event, "key_revoked", detail)]


@handles("SecurityViolationDetected")
def violation_detected(event: Envelope) -> list[Op]:
    body = event.body
    detail = {"reason": body.reason, "event_type": body.event_type_claimed, "processor": body.processor}
    return [_row(event, body.kind, detail, body_fields(body, _ORIGIN_COLUMNS))]
