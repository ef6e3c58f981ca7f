"""A rebalance resumes from the stored positions: after the batch being written, and never from anywhere else."""

from __future__ import annotations

import asyncio
import contextlib

import psycopg
import pytest
from aiokafka import TopicPartition

from services.metrics import ProcessorMetrics
from services.outages import lost_connection
from services.projector.app import Projector, SeekToStoredPositions


class OneCommandAtATime:
    """A view over one connection, which refuses a second command while one is in progress."""

    def __init__(self) -> None:
        self.in_progress = False
        self.writing = asyncio.Event()
        self.finish = asyncio.Event()

    async def apply(self, batch) -> int:
        self.in_progress = True
        self.writing.set()
        await self.finish.wait()
        self.in_progress = False
        return len(batch)

    async def stored_positions(self, partitions) -> dict:
        if self.in_progress:
            raise RuntimeError("another command is already in progress")
        return {(topic, partition): 41 for topic, partition in partitions}


class Consumer:
    def __init__(self) -> None:
        self.seeks: list[tuple[TopicPartition, int]] = []

    def seek(self, tp, offset) -> None:
        self.seeks.append((tp, offset))


def test_positions_are_read_after_the_batch_in_progress_is_written():
    async def main():
        view, consumer = OneCommandAtATime(), Consumer()
        projector = Projector(
            consumer=consumer,
            view=view,
            dead_letters=None,
            metrics=ProcessorMetrics("projector"),
            topics=[],
            batch_size=10,
            batch_timeout_ms=10,
        )
        listener = SeekToStoredPositions(consumer, view, projector.database)

        # Given a batch being written
        writing = asyncio.create_task(projector.take([]))
        await view.writing.wait()
        # When a rebalance assigns partitions meanwhile
        assigning = asyncio.create_task(listener.on_partitions_assigned([TopicPartition("tasks", 0)]))
        for _ in range(20):  # every step the assignment can take without the connection
            await asyncio.sleep(0)
        assert not assigning.done()  # it waits for the connection
        view.finish.set()
        await asyncio.gather(writing, assigning)
        return consumer.seeks

    # Then the positions were read once the batch was written, and the partition resumes after them
    assert asyncio.run(main()) == [(TopicPartition("tasks", 0), 42)]


class DatabaseAway:
    async def stored_positions(self, partitions) -> dict:
        raise psycopg.OperationalError("the connection is closed")


class RebalancingConsumer(Consumer):
    """Assigns a partition during the first fetch, as aiokafka calls the listener from within it."""

    def subscribe(self, topics, listener) -> None:
        self.listener = listener

    async def getmany(self, timeout_ms, max_records) -> dict:
        with contextlib.suppress(Exception):  # aiokafka logs a listener's error and fetches on
            await self.listener.on_partitions_assigned([TopicPartition("tasks", 0)])
        return {TopicPartition("tasks", 0): ["a record from the group's committed offset"]}


def test_positions_that_could_not_be_read_stop_the_loop_as_a_lost_database_before_any_record_is_used():
    handled = []

    async def main():
        projector = Projector(
            consumer=RebalancingConsumer(),
            view=DatabaseAway(),
            dead_letters=None,
            metrics=ProcessorMetrics("projector"),
            topics=["tasks"],
            batch_size=10,
            batch_timeout_ms=10,
        )
        projector.handle = lambda records: handled.append(records)
        await projector.run(asyncio.Event())

    # Given a rebalance whose stored positions cannot be read (PostgreSQL restarting)
    # When the consumer loop fetches
    with pytest.raises(RuntimeError) as raised:
        asyncio.run(main())

    # Then it stops as the database being lost (so the processor starts again), and used no record
    assert lost_connection(raised.value)
    assert handled == []
