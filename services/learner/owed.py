"""What a restarted learner owes: the shifts and relationships of outcomes its last run read but never published for.

At start the learner replays its whole input without publishing. Estimates and the model it
republishes from its state once caught up; a detected shift is a fact of its moment, and a
relationship score is published only when an outcome changes it, so both would be lost. The
marks (`marks.py`) give, per partition read, the first record whose consequences were not yet
published: what the replay emits from a record at or past its mark is owed. A partition without
a mark was never published for (a first start): nothing of its backlog is owed, as before marks.
"""

from __future__ import annotations

from collections.abc import Mapping

from events.envelope import Envelope, EventBody
from events.learning import RelationshipScored, SkillShiftDetected
from services.learner.outbox import Outbox

Marks = Mapping[tuple[str, int], int]  # (topic, partition) -> first offset whose consequences are unpublished
NOT_REPUBLISHED = (SkillShiftDetected, RelationshipScored)  # what the state alone cannot publish again


class Owed:
    def __init__(self, marks: Marks) -> None:
        self.marks = marks
        self._owed: list[tuple[str, int, int, list[EventBody], Envelope | None]] = []

    def add(self, record, cause: Envelope | None, emitted: list[EventBody]) -> None:
        owed = [body for body in emitted if isinstance(body, NOT_REPUBLISHED)]
        mark = self.marks.get((record.topic, record.partition))
        if owed and mark is not None and record.offset >= mark:
            self._owed.append((record.topic, record.partition, record.offset, owed, cause))

    def due(self, marks: Marks, partitions: frozenset[int]) -> list[tuple[EventBody, Envelope | None]]:
        """What the given partitions still owe by `marks` as they stand now: another copy may have
        published for some while this one caught up. Relationships merge per pair, as when live."""
        outbox = Outbox()
        for topic, partition, offset, bodies, cause in self._owed:
            if partition in partitions and offset >= marks.get((topic, partition), offset):
                outbox.add(bodies, cause)
        return outbox.drain()
