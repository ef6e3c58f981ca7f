"""A batch reader commits what its sends have settled, at most every commit interval, and on its way out."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from aiokafka import TopicPartition

from services.batches import Sends, run_in_batches

TP = TopicPartition("tasks", 0)


@dataclass
class Record:
    offset: int
    timestamp: int = 0


class Consumer:
    """Hands over one batch per fetch, then nothing; records each commit."""

    _group_id = "readers"

    def __init__(self, batches: int, stop: asyncio.Event) -> None:
        self.batches = [[Record(n)] for n in range(batches)]
        self.commits: list[dict] = []
        self.stop = stop

    async def getmany(self, timeout_ms: int, max_records: int):
        if self.batches:
            return {TP: self.batches.pop(0)}
        self.stop.set()
        return {}

    async def commit(self, offsets: dict) -> None:
        self.commits.append(dict(offsets))


class Metrics:
    def consumed_batch(self, consumer, fetched) -> None:
        pass


def run(batches: int, interval_s: float) -> tuple[Consumer, list[int]]:
    handled: list[int] = []

    async def main() -> Consumer:
        stop = asyncio.Event()
        consumer = Consumer(batches, stop)

        async def handle(records) -> None:
            handled.extend(r.offset for r in records)

        await run_in_batches(consumer, handle, Sends(), Metrics(), stop=stop, commit_interval_s=interval_s)
        return consumer

    return asyncio.run(main()), handled


def test_with_no_interval_every_batch_is_committed_after_it_is_handled():
    consumer, handled = run(3, 0.0)
    assert handled == [0, 1, 2]
    assert consumer.commits == [{TP: 1}, {TP: 2}, {TP: 3}]


def test_within_an_interval_batches_are_committed_together_and_the_last_on_the_way_out():
    consumer, handled = run(50, 3600.0)
    assert handled == list(range(50))
    # the first commit waits for the interval (an hour here), so the only one is made on the way out
    assert consumer.commits == [{TP: 50}]
