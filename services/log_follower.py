"""Reading whole topics from their start, outside any group, and the backlog in time order.

The router and the learner each fold every event of a few topics into a view. At start the
backlog is applied in timestamp order across partitions, as the events happened: read topic
by topic instead, every outcome could come before its assignment.
"""

from __future__ import annotations

from collections import deque
from typing import Callable

from aiokafka import AIOKafkaConsumer

from events.codec import decode, header_type, wanted
from events.envelope import Envelope
from events.errors import EventDecodeError
from events.topics import EVENT_TOPICS, belongs
from services import kafka
from services.identity.gate import IdentityGate
from services.settings import Settings

Fetched = Callable[[str, int], None]


async def open_from_start(
    settings: Settings,
    logical_topics,
    event_types: frozenset[str] | None = None,
    fetched: Fetched | None = None,
    fetch_max_wait_ms: float | None = None,
) -> tuple["ScreenedConsumer", dict]:
    """A started consumer on every partition of the topics, at the start; and their end offsets now.

    It never hands out a record the identity gate refuses: whatever folds the log never sees one;
    nor, given `event_types`, one whose header names another type (records without it are handed out).
    `fetched(topic, n)` hears of every record fetched, handed out or not. Its fetches wait for
    company (`kafka.batch_fetches`), up to `fetch_max_wait_ms` when given.
    """
    consumer = kafka.consumer(settings, **kafka.batch_fetches(settings, fetch_max_wait_ms))
    await kafka.start(consumer, settings)
    partitions = kafka.partitions(settings, [s for s in EVENT_TOPICS if s.name in logical_topics])
    consumer.assign(partitions)
    await consumer.seek_to_beginning(*partitions)
    screened = ScreenedConsumer(consumer, IdentityGate(settings), event_types, fetched)
    return screened, await consumer.end_offsets(partitions)


def followed_event(record) -> Envelope | None:
    """The record's event, or None for one a view passes over: a record it cannot read, or a forgery
    on a topic the catalog does not give its type (a verdict on the agents topic). The projector parks
    both; a view needs only what it can use."""
    try:
        event = decode(record.value, header_type(record.headers))
    except EventDecodeError:
        return None
    return event if belongs(event.event_type, record.topic) else None


class ScreenedConsumer:
    """An AIOKafkaConsumer whose `getmany` leaves out what the identity gate refuses, and what is not wanted."""

    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        gate: IdentityGate,
        event_types: frozenset[str] | None = None,
        on_fetched: Fetched | None = None,
    ) -> None:
        self.consumer = consumer
        self.gate = gate
        self.event_types = event_types
        self.on_fetched = on_fetched

    async def getmany(self, *partitions, **options) -> dict:
        fetched = await self.consumer.getmany(*partitions, **options)
        if self.on_fetched is not None:
            for tp, records in fetched.items():
                self.on_fetched(tp.topic, len(records))
        if self.event_types is not None:
            fetched = {
                tp: [r for r in records if wanted(r.headers, self.event_types)] for tp, records in fetched.items()
            }
        return {tp: [r for r in records if not await self.gate.refuses(r)] for tp, records in fetched.items()}

    async def position(self, tp) -> int:
        return await self.consumer.position(tp)

    async def stop(self) -> None:
        try:
            await self.gate.stop()
        finally:
            await self.consumer.stop()


async def apply_backlog_in_time_order(consumer: "ScreenedConsumer", ends: dict, apply: Callable) -> None:
    """Apply every record below `ends`, earliest timestamp first (ties by topic and partition)."""
    queues = {tp: deque() for tp in ends}
    behind = {tp for tp in ends if await consumer.position(tp) < ends[tp]}
    while True:
        if starved := [tp for tp in behind if not queues[tp]]:
            for tp, records in (await consumer.getmany(*starved, timeout_ms=500)).items():
                queues[tp].extend(records)
            behind = {tp for tp in behind if await consumer.position(tp) < ends[tp]}
            continue
        filled = [tp for tp, queue in queues.items() if queue]
        if not filled:
            return
        earliest = min(filled, key=lambda tp: (queues[tp][0].timestamp, tp.topic, tp.partition))
        apply(queues[earliest].popleft())
