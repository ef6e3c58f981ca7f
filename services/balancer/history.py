"""The balancer's inbox and snapshots on Kafka: its own topics, read back to rebuild its state."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import orjson
from aiokafka import TopicPartition
from aiokafka.admin import NewTopic

from events.topics import EVENT_TOPICS
from services import kafka
from services.balancer.inbox import PRODUCER, InboxRecord
from services.settings import Settings

SNAPSHOT_KEY = b"state"
# A snapshot holds every open task; compressed it is far smaller, but leave room to grow.
SNAPSHOT_MAX_BYTES = 64 * 1024 * 1024
OUTPUTS = ("assignments", "tasks")


def inbox_topic(settings: Settings) -> str:
    return f"{settings.balancer_app}-inbox"


def snapshot_topic(settings: Settings) -> str:
    return f"{settings.balancer_app}-snapshots"


async def ensure_balancer_topics(settings: Settings) -> None:
    # The inbox is the balancer's source of truth: one partition for one order, kept forever.
    wanted = [
        NewTopic(
            inbox_topic(settings),
            1,
            settings.replication_factor,
            topic_configs={"retention.ms": "-1", "cleanup.policy": "delete"},
        ),
        NewTopic(
            snapshot_topic(settings),
            1,
            settings.replication_factor,
            topic_configs={"cleanup.policy": "compact", "max.message.bytes": str(SNAPSHOT_MAX_BYTES)},
        ),
    ]
    await kafka.ensure_own_topics(settings, wanted)


class KafkaInboxHistory:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.inbox = TopicPartition(inbox_topic(settings), 0)
        self.snapshots = TopicPartition(snapshot_topic(settings), 0)

    async def latest_snapshot(self) -> bytes | None:
        consumer = kafka.consumer(self.settings, max_partition_fetch_bytes=SNAPSHOT_MAX_BYTES)
        await kafka.start(consumer, self.settings)
        try:
            consumer.assign([self.snapshots])
            end = (await consumer.end_offsets([self.snapshots]))[self.snapshots]
            if end == 0:
                return None
            consumer.seek(self.snapshots, end - 1)
            latest = None
            while await consumer.position(self.snapshots) < end:
                for record in (await consumer.getmany(self.snapshots, timeout_ms=1000)).get(self.snapshots, []):
                    if record.key == SNAPSHOT_KEY and record.value:
                        latest = record.value
            return latest
        finally:
            await consumer.stop()

    async def save_snapshot(self, snapshot: bytes) -> None:
        producer = kafka.producer(self.settings, compression_type="gzip", max_request_size=SNAPSHOT_MAX_BYTES)
        await kafka.start(producer, self.settings)
        try:
            await producer.send_and_wait(self.snapshots.topic, snapshot, key=SNAPSHOT_KEY, partition=0)
        finally:
            await producer.stop()

    async def emitted_since(self, timestamp_ms: int) -> set[str]:
        consumer = kafka.consumer(self.settings)
        await kafka.start(consumer, self.settings)
        try:
            partitions = kafka.partitions(self.settings, [spec for spec in EVENT_TOPICS if spec.name in OUTPUTS])
            consumer.assign(partitions)
            starts = await consumer.offsets_for_times({tp: timestamp_ms for tp in partitions})
            ends = await consumer.end_offsets(partitions)
            unread = {tp for tp, start in starts.items() if start is not None and start.offset < ends[tp]}
            for tp in unread:
                consumer.seek(tp, starts[tp].offset)
            emitted: set[str] = set()
            while unread:
                for records in (await consumer.getmany(*unread, timeout_ms=1000)).values():
                    emitted |= {event["event_id"] for event in map(_json, records) if event.get("producer") == PRODUCER}
                unread = {tp for tp in unread if await consumer.position(tp) < ends[tp]}
            return emitted
        finally:
            await consumer.stop()

    async def records(self, start: int, stop: int) -> AsyncIterator[InboxRecord]:
        consumer = kafka.consumer(self.settings, max_partition_fetch_bytes=4 * 1024 * 1024)
        await kafka.start(consumer, self.settings)
        try:
            consumer.assign([self.inbox])
            consumer.seek(self.inbox, start)
            expected = start
            while expected < stop:
                batch = (await consumer.getmany(self.inbox, timeout_ms=1000)).get(self.inbox, [])
                for record in batch:
                    if record.offset >= stop:
                        return
                    if record.offset != expected:
                        raise RuntimeError(
                            f"inbox offset {expected} is missing (read {record.offset}); the inbox must be kept forever"
                        )
                    yield InboxRecord.of(record)
                    expected += 1
                await asyncio.sleep(0)
        finally:
            await consumer.stop()


def _json(record) -> dict:
    try:
        value = orjson.loads(record.value)
    except (orjson.JSONDecodeError, TypeError):
        return {}
    return value if isinstance(value, dict) else {}
