"""A rebalance reading the stored positions waits for the batch being written on the same connection."""

from __future__ import annotations

import asyncio

from aiokafka import TopicPartition

from services.metrics import ProcessorMetrics
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
        await asyncio.sleep(0.01)
        assert not assigning.done()  # it waits for the connection
        view.finish.set()
        await asyncio.gather(writing, assigning)
        return consumer.seeks

    # Then the positions were read once the batch was written, and the partition resumes after them
    assert asyncio.run(main()) == [(TopicPartition("tasks", 0), 42)]
