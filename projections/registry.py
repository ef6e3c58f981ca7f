"""Which pure function turns each event type into row operations.

The handler modules register themselves here with `@handles`; `projections.handlers` imports
them all, so this module imports none of them and nothing imports back.
"""

from __future__ import annotations

from typing import Callable

from events.envelope import Envelope
from projections.ops import Op

Handler = Callable[[Envelope], list[Op]]
HANDLERS: dict[str, Handler] = {}


def handles(event_type: str):
    def register(fn: Handler) -> Handler:
        HANDLERS[event_type] = fn
        return fn

    return register
