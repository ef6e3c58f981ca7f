"""Tasks no agent could take yet, kept on a compacted topic of the router's own.

A copy given a partition of the tasks topic (at start, or after a rebalance) reads that
partition of `<app id>-waiting` and routes those tasks again as soon as the agents change.
Keyed by task id, so each task sits in the partition numbered like its partition on the tasks
topic; the value is its TaskSubmitted as received, and a tombstone removes it once it is
routed or has expired. This is what a Faust table with a changelog would hold; the router
reads the tasks topic in batches, outside a Faust stream, where a table cannot be written.
"""

from __future__ import annotations

from aiokafka import TopicPartition
from aiokafka.admin import NewTopic

from events.topics import PARTITIONS
from services import kafka
from services.settings import Settings


def waiting_topic(settings: Settings) -> str:
    return f"{settings.router_app}-waiting"


async def ensure_router_topics(settings: Settings) -> None:
    await kafka.ensure_own_topics(
        settings,
        [
            NewTopic(
                waiting_topic(settings),
                PARTITIONS,
                settings.replication_factor,
                topic_configs={"cleanup.policy": "compact"},
            )
        ],
    )


class WaitingTasks:
    """The waiting tasks of the partitions this copy owns: task id -> its TaskSubmitted bytes."""

    def __init__(self) -> None:
        self.by_partition: dict[int, dict[bytes, bytes]] = {}

    def add(self, partition: int, key: bytes, submitted: bytes) -> None:
        self.by_partition.setdefault(partition, {})[key] = submitted

    def remove(self, partition: int, key: bytes) -> bool:
        return self.by_partition.get(partition, {}).pop(key, None) is not None

    def items(self) -> list[tuple[int, bytes, bytes]]:
        return [(p, key, value) for p, tasks in self.by_partition.items() for key, value in tasks.items()]

    def forget(self, partitions) -> None:
        for partition in partitions:
            self.by_partition.pop(partition, None)

    def restore(self, partition: int, records) -> None:
        """Fold a partition of the waiting topic, read from its start."""
        tasks = self.by_partition.setdefault(partition, {})
        for record in records:
            if record.value is None:
                tasks.pop(record.key, None)
            else:
                tasks[record.key] = record.value


async def read_waiting(settings: Settings, partitions: list[int]) -> dict[int, list]:
    """Every record of those partitions of the waiting topic, in order, up to their end now."""
    topic = waiting_topic(settings)
    tps = [TopicPartition(topic, p) for p in partitions]
    consumer = kafka.consumer(settings)
    await kafka.start(consumer, settings)
    try:
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        read: dict[int, list] = {tp.partition: [] for tp in tps}
        behind = {tp for tp in tps if ends[tp] > 0}
        while behind:
            for tp, records in (await consumer.getmany(*behind, timeout_ms=500)).items():
                read[tp.partition] += [r for r in records if r.offset < ends[tp]]
            behind = {tp for tp in behind if await consumer.position(tp) < ends[tp]}
        return read
    finally:
        await consumer.stop()
