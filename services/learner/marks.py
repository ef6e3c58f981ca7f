"""How far the learner has published, per partition it reads: a small compacted topic of its own.

Key `<topic>:<partition>` of a topic the learner reads; value the offset of the first record
there whose consequences are not yet published. The copy publishing for a partition advances its
marks once what it published is on the broker, and a restarted copy reads them (`owed.py`).
"""

from __future__ import annotations

from collections.abc import Mapping

from aiokafka import TopicPartition
from aiokafka.admin import NewTopic

from services import kafka
from services.settings import Settings


def marks_topic(settings: Settings) -> str:
    return f"{settings.learner_app}-published"


async def ensure_learner_topics(settings: Settings) -> None:
    await kafka.ensure_own_topics(
        settings,
        [NewTopic(marks_topic(settings), 1, settings.replication_factor, topic_configs={"cleanup.policy": "compact"})],
    )


def parse_mark(key: bytes | None, value: bytes | None) -> tuple[tuple[str, int], int] | None:
    try:
        topic, partition = key.decode().rsplit(":", 1)
        return (topic, int(partition)), int(value)
    except (AttributeError, TypeError, ValueError):
        return None  # not a mark: nothing this learner wrote


class KafkaMarks:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.partition = TopicPartition(marks_topic(settings), 0)
        self.known: dict[tuple[str, int], int] = {}
        self._producer = None

    async def read(self) -> dict[tuple[str, int], int]:
        consumer = kafka.consumer(self.settings)
        await kafka.start(consumer, self.settings)
        try:
            consumer.assign([self.partition])
            await consumer.seek_to_beginning(self.partition)
            end = (await consumer.end_offsets([self.partition]))[self.partition]
            while await consumer.position(self.partition) < end:
                for record in (await consumer.getmany(self.partition, timeout_ms=1000)).get(self.partition, []):
                    if (mark := parse_mark(record.key, record.value)) is not None:
                        self.known[mark[0]] = max(mark[1], self.known.get(mark[0], 0))
        finally:
            await consumer.stop()
        return dict(self.known)

    async def advance(self, positions: Mapping[tuple[str, int], int]) -> None:
        """Record the positions that are ahead of the marks known here; a mark never moves back."""
        ahead = {
            (tp[0], tp[1]): offset for tp, offset in positions.items() if offset > self.known.get((tp[0], tp[1]), -1)
        }
        if not ahead:
            return
        if self._producer is None:
            self._producer = kafka.producer(self.settings)
            await kafka.start(self._producer, self.settings)
        for (topic, partition), offset in ahead.items():
            await self._producer.send(
                self.partition.topic, str(offset).encode(), key=f"{topic}:{partition}".encode(), partition=0
            )
        await self._producer.flush()
        self.known.update(ahead)

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
