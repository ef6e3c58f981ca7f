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


class ForwarderProgress:
    """How far the forwarder has copied the inputs into the inbox, as its group committed it.

    The clock's ticks go straight into the inbox, while inputs reach it through the forwarder; a
    tick written while the forwarder is behind (after a broker outage, a rebalance, a slow start)
    would judge starts and completions that happened but are not copied yet as missing, and time
    out attempts that are running or even done. So a tick is written only once everything that
    was on the inputs at the previous tick has been copied: the clock never runs more than one
    tick interval ahead of what the balancer has seen.
    """

    def __init__(self, settings: Settings, group: str, topics: list[str]) -> None:
        self.settings = settings
        self.group = group
        self.partitions = kafka.partitions(self.settings, [spec for spec in EVENT_TOPICS if spec.name in topics])
        self.marks: dict[TopicPartition, int] | None = None
        self.admin = None
        self.probe = None

    async def caught_up(self) -> bool:
        """Whether the forwarder has copied what was on the inputs when this was last asked (then True:
        the marks move on to what is on them now)."""
        if self.admin is None:
            self.admin = kafka.admin_client(self.settings)
            await self.admin.start()
            self.probe = kafka.consumer(self.settings)  # read_committed: its ends are what the forwarder can read
            await kafka.start(self.probe, self.settings)
        committed = {tp: meta.offset for tp, meta in (await self.admin.list_consumer_group_offsets(self.group)).items()}
        if self.marks is None:  # the first time: what is there now must be copied before any tick
            self.marks = await self.probe.end_offsets(self.partitions)
            return False
        if not forwarded(committed, self.marks):
            return False
        self.marks = await self.probe.end_offsets(self.partitions)
        return True

    async def stop(self) -> None:
        if self.probe is not None:
            await self.probe.stop()
        if self.admin is not None:
            await self.admin.close()


def forwarded(committed: dict, marks: dict) -> bool:
    """Whether the committed positions reach the marks on every partition that had anything."""
    return all(committed.get(tp, 0) >= end for tp, end in marks.items() if end > 0)
