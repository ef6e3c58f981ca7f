"""What the learner publishes next: its output of a short interval, a newer estimate replacing an older one.

An outcome moves its agent's estimate on one capability; publishing each of them would send
one estimate per task to every reader of the skills topic (router, projector, audit), most of
them overtaken a few milliseconds later. The learner instead gathers its output for
LEARNER_PUBLISH_INTERVAL_MS and publishes, per agent and capability (or pair of agents), only
the latest estimate, caused by the outcome that led to it. Detected shifts and models are
never merged: each is a fact of its own.
"""

from __future__ import annotations

from collections.abc import Hashable

from events.envelope import Envelope, EventBody
from events.learning import RelationshipScored, SkillEstimated


def superseding_key(body: EventBody) -> Hashable | None:
    """What a later event must share with this one to make it out of date; None: never out of date."""
    if isinstance(body, SkillEstimated):
        return ("skill", body.agent_id, body.capability)
    if isinstance(body, RelationshipScored):
        return ("relationship", body.agent_id, body.other_agent_id)
    return None


class Outbox:
    def __init__(self) -> None:
        self._pending: dict[Hashable, tuple[EventBody, Envelope | None]] = {}
        self._unique = 0  # keys for what is never merged

    def __len__(self) -> int:
        return len(self._pending)

    def add(self, bodies: list[EventBody], cause: Envelope | None) -> None:
        for body in bodies:
            key = superseding_key(body)
            if key is None:
                self._unique += 1
                key = ("unique", self._unique)
            self._pending.pop(key, None)  # the newer one goes last, after whatever came in between
            self._pending[key] = (body, cause)

    def drain(self) -> list[tuple[EventBody, Envelope | None]]:
        """Everything pending, oldest first; the outbox is empty afterwards."""
        pending, self._pending = list(self._pending.values()), {}
        return pending
