"""Consuming in batches inside a Faust app: one fetch, one pass over the batch, one round of
sends, one commit.

Measured on this machine, a Faust stream spends about 70 µs of CPU delivering each record, and
its `take()` no less; a plain aiokafka consumer hands over a batch at about 4 µs a record. The
processors on the routing path therefore read their busy topics with a group consumer of their
own, run as a task of their Faust app, and commit a batch's offsets only once everything the
batch led to is on the broker: a crash between the two repeats the batch, it never loses one.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from operator import attrgetter

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener
from aiokafka.errors import CommitFailedError, IllegalStateError, RebalanceInProgressError

from services import kafka
from services.metrics import ProcessorMetrics
from services.settings import Settings

log = logging.getLogger("orchestrator")
OpenConsumer = Callable[..., Awaitable[AIOKafkaConsumer]]  # (group_id, topics, listener, *, prompt=False)
MAX_BATCH = 2000


def group_consumer(settings: Settings, group_id: str, *, prompt: bool = False, **options) -> AIOKafkaConsumer:
    """A consumer in `group_id` that reads committed records only and commits by hand.

    Its fetches wait for BATCH_FETCH_MIN_BYTES or BATCH_FETCH_MAX_WAIT_MS (`kafka.batch_fetches`);
    a `prompt` one's are answered at the first record (`kafka.prompt_fetches`)."""
    options.setdefault("session_timeout_ms", round(settings.group_session_timeout_s * 1000))
    fetches = kafka.prompt_fetches(settings) if prompt else kafka.batch_fetches(settings)
    return kafka.consumer(settings, group_id=group_id, **fetches, **options)


class Sends:
    """Sends with a plain producer, remembering each until `settle` has seen it on the broker.

    `topic(name)` has the signature of a Faust topic's `send`, so `park_on` and the other
    helpers written for Faust topics send through it unchanged."""

    def __init__(self, producer: AIOKafkaProducer | None = None) -> None:
        self.producer = producer  # set once started, inside the event loop
        self.pending: list[asyncio.Future] = []

    async def send(
        self,
        topic: str,
        *,
        key: bytes | None,
        value: bytes | None,
        headers: Sequence[tuple[str, bytes]] | None = None,
        partition: int | None = None,
    ) -> None:
        self.pending.append(
            await self.producer.send(topic, value, key=key, headers=list(headers or ()) or None, partition=partition)
        )

    def topic(self, name: str) -> "SendsTo":
        return SendsTo(self, name)

    async def settle(self) -> None:
        """Wait until every send so far is acknowledged; raise if any failed."""
        pending, self.pending = self.pending, []
        if pending:
            await asyncio.gather(*pending)


class SendsTo:
    def __init__(self, sends: Sends, name: str) -> None:
        self.sends = sends
        self.name = name

    async def send(
        self,
        *,
        key: bytes | None,
        value: bytes | None,
        headers: Sequence[tuple[str, bytes]] | None = None,
        partition: int | None = None,
    ) -> None:
        await self.sends.send(self.name, key=key, value=value, headers=headers, partition=partition)


class Assignment(ConsumerRebalanceListener):
    """The partitions a group consumer holds now, and a callback when they change."""

    def __init__(self, on_change: Callable[[frozenset], None] | None = None) -> None:
        self.partitions: frozenset = frozenset()
        self.on_change = on_change

    async def on_partitions_revoked(self, revoked) -> None:
        self.partitions = self.partitions - set(revoked)
        if self.on_change:
            self.on_change(self.partitions)

    async def on_partitions_assigned(self, assigned) -> None:
        self.partitions = self.partitions | set(assigned)
        if self.on_change:
            self.on_change(self.partitions)


async def run_in_batches(
    consumer: AIOKafkaConsumer,
    handle: Callable[[list], Awaitable[None]],
    sends: Sends,
    metrics: ProcessorMetrics,
    *,
    stop: asyncio.Event | None = None,
    max_records: int = MAX_BATCH,
    in_time_order: bool = False,
    commit_interval_s: float = 0.0,
) -> None:
    """Fetch, hand the whole batch to `handle`, wait for its sends, commit; until `stop` is set.

    `in_time_order` interleaves the partitions of a batch by record timestamp (each partition's
    own order kept) instead of handing them over one partition after another.

    Offsets are committed at most every `commit_interval_s`, always after the sends of the batches
    they cover: a commit is a round trip and a write to the broker's offsets log, and at hundreds
    of batches a second it was paid by every hop. A crash repeats at most that much, which every
    reader here tolerates as it tolerates a batch repeated after a rebalance.
    """
    due: dict = {}  # partition -> offset after the last batch whose sends are on the broker
    committed_at = time.monotonic()
    try:
        while stop is None or not stop.is_set():
            fetched = await consumer.getmany(timeout_ms=200, max_records=max_records)
            if fetched:
                if in_time_order:
                    records = list(heapq.merge(*fetched.values(), key=attrgetter("timestamp")))
                else:
                    records = [record for batch in fetched.values() for record in batch]
                await handle(records)
                await sends.settle()
                metrics.consumed_batch(consumer, fetched)
                due.update({tp: batch[-1].offset + 1 for tp, batch in fetched.items()})
            if due and time.monotonic() - committed_at >= commit_interval_s:
                await _commit(consumer, due)
                due, committed_at = {}, time.monotonic()
    finally:
        if due:  # on the way out, what is settled is kept; a failure here only repeats it
            with contextlib.suppress(Exception):
                await consumer.commit(due)


async def _commit(consumer: AIOKafkaConsumer, offsets: dict) -> None:
    try:
        await consumer.commit(offsets)
    except (CommitFailedError, IllegalStateError, RebalanceInProgressError) as error:
        # The partitions moved on while the batches were handled: their new owner starts from
        # the last commit and repeats what came after it, which every reader here tolerates.
        log.warning("%s: could not commit offsets (%s); what came after the last commit will be read again",
                    consumer._group_id, error)  # fmt: skip


def consumer_opener(settings: Settings, **options) -> Callable[..., Awaitable[AIOKafkaConsumer]]:
    """`open(group_id, topics, listener)`: a started group consumer, subscribed."""

    async def open_consumer(
        group_id: str, topics: list[str], listener: ConsumerRebalanceListener | None = None, *, prompt: bool = False
    ):
        consumer = group_consumer(settings, group_id, prompt=prompt, **options)
        await kafka.start(consumer, settings)
        consumer.subscribe(topics, listener=listener or Assignment())
        return consumer

    return open_consumer


def producer_opener(settings: Settings) -> Callable[[], Awaitable[AIOKafkaProducer]]:
    """`open()`: a started producer (made inside the event loop, as aiokafka wants)."""

    async def open_producer() -> AIOKafkaProducer:
        producer = kafka.producer(settings)
        await kafka.start(producer, settings)
        return producer

    return open_producer


async def read_group(
    open_consumer,
    group_id: str,
    topics: list[str],
    handle: Callable[[list], Awaitable[None]],
    sends: Sends,
    metrics: ProcessorMetrics,
    listener: ConsumerRebalanceListener | None = None,
    *,
    in_time_order: bool = False,
    commit_interval_s: float = 0.0,
    prompt: bool = False,
) -> None:
    """Open a group consumer on `topics` and run `handle` over its batches until cancelled;
    `prompt`: its fetches are answered at the first record (`kafka.prompt_fetches`)."""
    consumer = await open_consumer(group_id, topics, listener, prompt=prompt)
    try:
        await run_in_batches(
            consumer, handle, sends, metrics, in_time_order=in_time_order, commit_interval_s=commit_interval_s
        )
    finally:
        await consumer.stop()


async def run_readers(
    app,
    open_producer: Callable[[], Awaitable[AIOKafkaProducer]],
    sends: Sequence[Sends],
    readers: Callable[[], Awaitable],
    stopped: str,
) -> None:
    """Run `readers()` with one started producer behind all of `sends`; crash the app if they fail.

    A processor whose batch readers stopped must stop too, and say why, rather than sit idle."""
    try:
        producer = await open_producer()
        for each in sends:
            each.producer = producer
        try:
            await readers()
        finally:
            await producer.stop()
    except asyncio.CancelledError:
        raise
    except Exception as error:  # noqa: BLE001 - whatever it was, the app is crashed with it
        log.exception(stopped)
        await app.crash(error)
