"""Reading and re-injecting the dead-letter topic."""

from __future__ import annotations

from aiokafka import TopicPartition

from events.topics import DEAD_LETTER, topic_name
from services import kafka
from services.deadletter.park import H_ATTEMPT, Parked, parked_from
from services.settings import Settings


def dlq_topic(settings: Settings) -> str:
    return topic_name(DEAD_LETTER, settings.topic_prefix)


def replay_group(settings: Settings) -> str:
    return f"{settings.topic_prefix}.dlq-replay"


async def read_parked(settings: Settings, *, group: str | None = None, limit: int | None = None) -> list[Parked]:
    """Parked records from the start (or from `group`'s committed offsets) to the current end."""
    consumer = kafka.consumer(settings, group_id=group)
    await kafka.start(consumer, settings)
    try:
        partitions = kafka.partitions(settings, [DEAD_LETTER])
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)
        from_start = []
        for tp in partitions:
            committed = await consumer.committed(tp) if group else None
            if committed is None:
                from_start.append(tp)
            else:
                consumer.seek(tp, committed)
        if from_start:
            await consumer.seek_to_beginning(*from_start)
        parked: list[Parked] = []
        pending = {tp for tp in partitions if await consumer.position(tp) < ends[tp]}
        while pending and (limit is None or len(parked) < limit):
            fetched = await consumer.getmany(*pending, timeout_ms=1000)
            for tp, records in fetched.items():
                parked += [parked_from(r) for r in records if r.offset < ends[tp]]
            pending = {tp for tp in pending if await consumer.position(tp) < ends[tp]}
        parked.sort(key=lambda p: (p.failed_at, p.partition, p.offset))
        return parked[:limit] if limit is not None else parked
    finally:
        await consumer.stop()


async def reinject(settings: Settings, parked: list[Parked]) -> int:
    """Send each parked record back to its original topic, unchanged but for its attempt count."""
    producer = kafka.producer(settings)
    await kafka.start(producer, settings)
    try:
        for item in parked:
            headers = [(k, v) for k, v in item.original_headers if k != H_ATTEMPT]
            headers.append((H_ATTEMPT, str(item.attempt).encode()))
            await producer.send_and_wait(item.origin_topic, item.value, key=item.key, headers=headers)
    finally:
        await producer.stop()
    return len(parked)


async def replay_parked(
    settings: Settings, *, only: set[tuple[int, int]] | None = None, dry_run: bool = False
) -> list[Parked]:
    """Re-inject parked records not re-injected before (or exactly those in `only`)."""
    if only:
        read = [p for p in await read_parked(settings) if (p.partition, p.offset) in only]
    else:
        read = await read_parked(settings, group=replay_group(settings))
    chosen = _once_per_origin(read)
    if not dry_run:
        await reinject(settings, chosen)
        if not only:
            await _commit_replayed(settings, read)  # the copies left out count as done too
    return chosen


def _once_per_origin(parked: list[Parked]) -> list[Parked]:
    """Several processors read the same topic, so one bad record may be parked by each of
    them; it goes back to its topic once, where every processor sees it again."""
    seen, unique = set(), []
    for item in parked:
        origin = (item.origin_topic, item.origin_partition, item.origin_offset, item.attempt)
        if origin not in seen:
            seen.add(origin)
            unique.append(item)
    return unique


async def _commit_replayed(settings: Settings, parked: list[Parked]) -> None:
    if not parked:
        return
    consumer = kafka.consumer(settings, group_id=replay_group(settings))
    await kafka.start(consumer, settings)
    try:
        newest: dict[int, int] = {}
        for item in parked:
            newest[item.partition] = max(newest.get(item.partition, -1), item.offset)
        topic = dlq_topic(settings)
        consumer.assign([TopicPartition(topic, p) for p in newest])
        await consumer.commit({TopicPartition(topic, p): o + 1 for p, o in newest.items()})
    finally:
        await consumer.stop()
