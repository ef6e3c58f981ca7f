"""The agent's Kafka clients: a transactional producer and a consumer of one partition."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError, ProducerFenced
from aiokafka.structs import OffsetAndMetadata

from services import kafka
from services.sdk.ledger import Position
from services.sdk.outbox import Outgoing, backoff
from services.settings import Settings

STOP_TIMEOUT_S = 5.0
COORDINATOR_RETRIES = 12  # about 30 seconds with backoff


class Fenced(RuntimeError):
    """Another process took over this agent id (or a transaction outlived its timeout)."""


class MissingTopic(RuntimeError):
    pass


class KafkaTransactions:
    """Commits batches of records plus consumer offsets atomically.

    The transactional id is the agent's own: starting a producer with it aborts whatever
    transaction a previous process of the same agent left open, and fences that process off.
    """

    def __init__(self, settings: Settings, transactional_id: str, group_id: str) -> None:
        self.settings = settings
        self.transactional_id = transactional_id
        self.group_id = group_id
        self._producer = None

    async def open(self) -> None:
        producer = self._new_producer()
        await kafka.start(producer, self.settings)
        self._producer = producer

    async def partition_count(self, topic: str) -> int:
        # Asking for all metadata answers at once; asking for one topic waits for it to appear.
        partitions = (await self._producer.client.fetch_all_metadata()).partitions_for_topic(topic)
        if not partitions:
            raise MissingTopic(
                f"topic {topic} does not exist on {self.settings.kafka_bootstrap_servers}; "
                "create the topics with `orchestrator topics ensure`"
            )
        return len(partitions)

    async def commit(self, records: Sequence[Outgoing], offsets: dict[TopicPartition, Position]) -> None:
        if self._producer is None:
            producer = self._new_producer()
            try:
                await producer.start()
            except BaseException:
                await stop_quietly(producer)
                raise
            self._producer = producer
        try:
            async with self._producer.transaction():
                sent = [
                    await self._producer.send(r.topic, r.value, key=r.key, headers=list(r.headers) or None)
                    for r in records
                ]
                await asyncio.gather(*sent)
                if offsets:
                    await self._producer.send_offsets_to_transaction(
                        {tp: OffsetAndMetadata(p.offset, p.metadata) for tp, p in offsets.items()}, self.group_id
                    )
        except ProducerFenced as error:
            raise Fenced(
                f"agent transactions under {self.transactional_id!r} were fenced off: another "
                f"process runs this agent, or a transaction timed out ({error})"
            ) from error
        except BaseException:
            # A fresh producer with the same transactional id aborts whatever this one left
            # open, whatever state it is in; simpler than telling abortable from fatal errors.
            producer, self._producer = self._producer, None
            await stop_quietly(producer)
            raise

    async def close(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            await stop_quietly(producer)

    def _new_producer(self):
        return kafka.producer(self.settings, transactional_id=self.transactional_id)


async def stop_quietly(client) -> None:
    """Stop a client, bounded in time, whatever state the connection is in."""
    try:
        await asyncio.wait_for(client.stop(), STOP_TIMEOUT_S)
    except asyncio.CancelledError:
        # aiokafka's consumer can raise CancelledError from its own fetch tasks while stopping.
        if asyncio.current_task().cancelling():
            raise
    except Exception:
        pass


async def committed_position(settings: Settings, group_id: str, tp: TopicPartition) -> Position | None:
    admin = kafka.admin_client(settings)
    await kafka.start(admin, settings, "the Kafka admin API")
    try:
        # A coordinator may be briefly unavailable (fresh cluster, broker just restarted).
        for attempt in range(1, COORDINATOR_RETRIES + 1):
            try:
                committed = (await admin.list_consumer_group_offsets(group_id, partitions=[tp])).get(tp)
                break
            except KafkaError as error:
                if not error.retriable or attempt == COORDINATOR_RETRIES:
                    raise
                await asyncio.sleep(backoff(attempt))
    finally:
        await admin.close()
    if committed is None or committed.offset < 0:
        return None
    return Position(committed.offset, committed.metadata or "")


async def partition_consumer(settings: Settings, tp: TopicPartition) -> AIOKafkaConsumer:
    # read_committed: an assignment from an aborted balancer transaction was never made.
    consumer = kafka.consumer(settings, isolation_level="read_committed")
    await kafka.start(consumer, settings)
    consumer.assign([tp])
    return consumer


async def end_offset(consumer: AIOKafkaConsumer, tp: TopicPartition) -> int:
    return (await consumer.end_offsets([tp]))[tp]
