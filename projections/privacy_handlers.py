"""Projection handlers for the privacy topic.

Sealed payload fields need no handler of their own: TaskSubmitted stores the payload as it
came, ciphertext included, and no projection ever holds a key to open it.
"""

from __future__ import annotations

from events.envelope import Envelope
from projections.ops import Insert, Op
from projections.registry import handles


@handles("SubjectErased")
def subject_erased(event: Envelope) -> list[Op]:
    body = event.body
    return [
        Insert(
            "erasures",
            {
                "key_id": body.key_id,
                "erasure_id": body.erasure_id,
                "erased_at": body.erased_at,
                "erased_by": body.erased_by,
                "reason": body.reason,
                "event_id": event.event_id,
                "recorded_at": event.occurred_at,
            },
            key=("key_id",),
        )
    ]
