"""Every projection handler, by event type: one pure function per event type, returning row operations.

An event type without a handler only advances the projector's position.
"""

from __future__ import annotations

from events.envelope import Envelope

# Imported for their registrations: each module adds its handlers to HANDLERS.
from projections import learning_handlers, privacy_handlers, security_handlers, task_handlers  # noqa: F401
from projections.ops import Op
from projections.registry import HANDLERS, Handler

__all__ = ["HANDLERS", "Handler", "ops_for"]


def ops_for(event: Envelope) -> list[Op]:
    handler = HANDLERS.get(event.event_type)
    return handler(event) if handler else []
