"""Everything an agent publishes goes out through one queue, in Kafka transactions.

Each transaction carries the queued events and the assignment position they complete
(ledger.py), so an outcome and "this assignment is done" become visible together or not at
all. A transaction that fails for a transient reason (broker restarting, leader moving,
timeout) is retried whole, with backoff, until it succeeds; consumers reading with
isolation_level=read_committed see every event once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from aiokafka import TopicPartition
from aiokafka.errors import KafkaError

from services.sdk.ledger import Ledger, Position

log = logging.getLogger("orchestrator.sdk")

TRANSIENT = (KafkaError, OSError, asyncio.TimeoutError)


@dataclass(frozen=True)
class Outgoing:
    topic: str
    value: bytes | None
    key: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()


class Transactions(Protocol):
    async def commit(self, records: Sequence[Outgoing], offsets: dict[TopicPartition, Position]) -> None: ...


def backoff(failures: int) -> float:
    return min(5.0, 0.1 * 2 ** (failures - 1))


@dataclass
class _Entry:
    records: tuple[Outgoing, ...]
    finishes: int | None
    done: asyncio.Future = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class Outbox:
    def __init__(
        self,
        transactions: Transactions,
        ledger: Ledger,
        partition: TopicPartition,
        *,
        delay=backoff,
        sleep=asyncio.sleep,
    ) -> None:
        self._transactions = transactions
        self._ledger = ledger
        self._partition = partition
        self._delay = delay
        self._sleep = sleep
        self._queue: list[_Entry] = []
        self._wake = asyncio.Event()
        self._flushing = asyncio.Lock()
        self._committed: Position | None = None
        self.failures = 0

    def submit(self, records: Sequence[Outgoing] = (), finishes: int | None = None) -> asyncio.Future:
        """Queue records (and the assignment offset they finish); the future resolves once they are in Kafka."""
        entry = _Entry(tuple(records), finishes)
        self._queue.append(entry)
        self._wake.set()
        return entry.done

    async def publish(self, records: Sequence[Outgoing] = (), finishes: int | None = None) -> None:
        await self.submit(records, finishes)

    async def run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            await self.flush()

    async def flush(self) -> None:
        async with self._flushing:
            entries, self._queue = self._queue, []
            # Finished only now, as they join a transaction: a position never covers an
            # outcome that is still waiting in the queue.
            for entry in entries:
                if entry.finishes is not None:
                    self._ledger.finish(entry.finishes)
            position = self._ledger.position()
            offsets = {} if position == self._committed else {self._partition: position}
            if not entries and not offsets:
                return
            try:
                await self._commit([r for e in entries for r in e.records], offsets)
            except BaseException as error:
                self._fail(entries + self._queue, error)
                raise
            self._committed = position
            for entry in entries:
                if not entry.done.done():  # a caller that stopped waiting leaves a cancelled future
                    entry.done.set_result(None)

    @staticmethod
    def _fail(entries: list[_Entry], error: BaseException) -> None:
        for entry in entries:
            if entry.done.done():
                continue
            if isinstance(error, asyncio.CancelledError):
                entry.done.cancel()
            else:
                entry.done.set_exception(error)
                entry.done.exception()  # marks it seen: whoever runs the outbox gets the error itself

    async def _commit(self, records: list[Outgoing], offsets: dict[TopicPartition, Position]) -> None:
        while True:
            try:
                await self._transactions.commit(records, offsets)
                self.failures = 0
                return
            except TRANSIENT as error:
                self.failures += 1
                delay = self._delay(self.failures)
                log.warning(
                    "publishing %d events failed (%s: %s); retry %d in %.1fs",
                    len(records),
                    type(error).__name__,
                    error,
                    self.failures,
                    delay,
                )
                await self._sleep(delay)
