"""The projector: every event topic into the PostgreSQL read models, exactly once.

It keeps its Kafka position in PostgreSQL, in the same transaction as the rows, and
seeks to it whenever partitions are assigned; Kafka's committed offsets are written
too, but only so that lag can be watched with the usual tools.
"""

from __future__ import annotations

import asyncio
import logging
import time

import psycopg
from aiokafka import ConsumerRebalanceListener
from aiokafka.errors import CommitFailedError, IllegalStateError, RebalanceInProgressError

from projections.batch import position_of, prepare
from projections.ops import Op, Position

log = logging.getLogger("orchestrator.projector")

# Errors that belong to one event's data, not to the database being unreachable.
POISON_ERRORS = (psycopg.errors.DataError, psycopg.errors.IntegrityError)


class SeekToStoredPositions(ConsumerRebalanceListener):
    """Resumes each assigned partition after the position stored with its effects.

    aiokafka logs a listener's error and goes on from the group's committed offsets, which may be
    behind the stored positions (and the audit projector's filter knows only positions it read).
    So a failure is kept in `failed`, and the consumer loop raises it: the database being away
    then restarts the processor, which reads its positions again, like any lost connection.
    """

    def __init__(self, consumer, view, database: asyncio.Lock) -> None:
        self.consumer = consumer
        self.view = view
        self.database = database
        self.failed: BaseException | None = None

    async def on_partitions_revoked(self, revoked) -> None:
        pass

    async def on_partitions_assigned(self, assigned) -> None:
        try:
            await self._seek(assigned)
        except Exception as error:
            self.failed = error
            raise

    async def _seek(self, assigned) -> None:
        async with self.database:
            stored = await self.view.stored_positions((tp.topic, tp.partition) for tp in assigned)
        fresh = []
        for tp in assigned:
            offset = stored.get((tp.topic, tp.partition), -1)
            if offset >= 0:
                self.consumer.seek(tp, offset + 1)
            else:
                fresh.append(tp)
        if fresh:  # one request for all: a seek per partition costs a round of fetching each
            await self.consumer.seek_to_beginning(*fresh)
        log.info("assigned %d partitions; resuming from stored positions", len(assigned))


class Projector:
    def __init__(
        self,
        *,
        consumer,
        view,
        dead_letters,
        metrics,
        topics: list[str],
        batch_size: int,
        batch_timeout_ms: int,
        identity=None,
    ) -> None:
        self.consumer = consumer
        self.identity = identity  # a ViolationReporter: records not from the agent they speak for
        self.view = view
        self.dead_letters = dead_letters
        self.metrics = metrics
        self.topics = topics
        self.batch_size = batch_size
        self.batch_timeout_ms = batch_timeout_ms
        # One command at a time on the view's connection. A rebalance calls the listener from the
        # consumer's own task, perhaps while a batch is being written: reading positions then failed
        # with "another command is already in progress", taken for a lost database, and the restart
        # that followed caused the next rebalance (seen on a loaded machine: no progress for minutes).
        self.database = asyncio.Lock()

    async def run(self, stop: asyncio.Event) -> None:
        listener = SeekToStoredPositions(self.consumer, self.view, self.database)
        self.consumer.subscribe(self.topics, listener=listener)
        while not stop.is_set():
            fetched = await self.consumer.getmany(timeout_ms=self.batch_timeout_ms, max_records=self.batch_size)
            if listener.failed is not None:
                raise RuntimeError("could not resume the assigned partitions") from listener.failed
            records = [r for partition_records in fetched.values() for r in partition_records]
            if records:
                await self.take(records)
                await self._commit()
            self.metrics.consumed_batch(self.consumer, fetched)

    async def take(self, records) -> int:
        async with self.database:
            return await self.handle(records)

    async def _commit(self) -> None:
        try:
            await self.consumer.commit()
        except (CommitFailedError, IllegalStateError, RebalanceInProgressError) as error:
            # The positions that count are the ones committed with the rows, in PostgreSQL; the
            # partitions' new owner starts from those, whatever the group's offsets say.
            log.info("group offsets not committed after a rebalance (%s); positions are in the database", error)

    async def handle(self, records) -> int:
        started = time.perf_counter()
        for record in records:
            self.metrics.events_in.labels(self.metrics.service, record.topic).inc()
        accepted, refused = await self.identity.screen(records) if self.identity else (records, [])
        prepared = prepare(accepted)
        await self._park_all(prepared.rejected)
        by_position = {position_of(r): r for r in records}
        skipped = [r for r, _ in prepared.rejected] + refused  # only their positions advance
        batch = sorted(prepared.batch + [(position_of(r), []) for r in skipped], key=lambda item: item[0])
        try:
            applied = await self.view.apply(batch)
        except POISON_ERRORS as error:
            log.warning("batch of %d failed (%s); applying one event at a time", len(batch), error)
            applied = await self._apply_one_by_one(batch, by_position)
        for position, _ in batch:
            self.metrics.events_applied.labels(self.metrics.service, position.topic).inc()
        self.metrics.batch_seconds.labels(self.metrics.service).observe(time.perf_counter() - started)
        return applied

    async def _apply_one_by_one(self, batch: list[tuple[Position, list[Op]]], by_position) -> int:
        applied = 0
        async for position, error in self.view.apply_each(batch):
            if error is None:
                applied += 1
                continue
            await self._park_all([(by_position[position], error)])
            await self.view.advance([position])
        return applied

    async def _park_all(self, rejected) -> None:
        for record, error in rejected:
            log.warning(
                "dead-lettering %s[%d]@%d: %s: %s",
                record.topic,
                record.partition,
                record.offset,
                type(error).__name__,
                error,
            )
            await self.dead_letters.park(record, error)
            self.metrics.dead_letters.labels(self.metrics.service, record.topic, type(error).__name__).inc()
