"""The raw ceiling: plain aiokafka produce -> consume on the same broker, with no processing.

Messages of a given size go to a fresh topic with the catalog's partition count, with the
producer settings every service uses (acks=all, idempotence, linger 5 ms) and read back by
a read_committed consumer as they arrive. The rate is messages over the time from the first
send to the last message read: what Kafka and aiokafka alone allow on this machine now.

    python -m bench.pipeline.raw_kafka --messages 200000 --size 600
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
import uuid

from aiokafka.admin import NewTopic

from events.topics import PARTITIONS
from services import kafka
from services.settings import Settings


async def produce_consume(settings: Settings, *, messages: int, size: int) -> dict:
    topic = f"{settings.topic_prefix}.raw-ceiling-{uuid.uuid4().hex[:6]}"
    await kafka.ensure_own_topics(settings, [NewTopic(topic, PARTITIONS, settings.replication_factor)])
    try:
        return await _run(settings, topic, messages, size)
    finally:
        await kafka.delete_topics(settings, only=[topic])


async def _run(settings: Settings, topic: str, messages: int, size: int) -> dict:
    consumer = kafka.consumer(settings, topic)
    producer = kafka.producer(settings)
    await kafka.start(consumer, settings)
    await kafka.start(producer, settings)
    try:
        while not consumer.assignment():  # subscribed, not yet given its partitions
            await consumer.getmany(timeout_ms=100)
        payload = os.urandom(size // 2).hex().encode()[:size]
        # A new topic's leaders settle for a moment: one message through first keeps that out of the timing.
        await producer.send_and_wait(topic, payload, key=b"first")
        await _read(consumer, 1)
        started = time.perf_counter()
        reading = asyncio.create_task(_read(consumer, messages))
        for n in range(messages):
            await producer.send(topic, payload, key=str(n).encode())
        await producer.flush()
        produced_s = time.perf_counter() - started
        await reading
        elapsed = time.perf_counter() - started
    finally:
        await producer.stop()
        await consumer.stop()
    return {
        "messages": messages,
        "message_bytes": size,
        "produce_msgs_per_second": round(messages / produced_s),
        "raw_kafka_msgs_per_second": round(messages / elapsed),
    }


async def _read(consumer, messages: int) -> None:
    seen = 0
    while seen < messages:
        for records in (await consumer.getmany(timeout_ms=500, max_records=10_000)).values():
            seen += len(records)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--size", type=int, default=600, help="bytes per message")
    args = parser.parse_args()
    settings = Settings.from_env(topic_prefix=f"bench-raw-{uuid.uuid4().hex[:6]}")
    print(json.dumps(asyncio.run(produce_consume(settings, messages=args.messages, size=args.size)), indent=2))


if __name__ == "__main__":
    main()
