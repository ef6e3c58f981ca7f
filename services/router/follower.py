"""Every router copy reads the whole of the topics its view is folded from, outside any group.

The router needs every agent's state whichever task partition it routes, so each copy
holds the complete view, as a global table would. A Faust GlobalTable was the other way:
but what the router folds joins streams keyed differently (an outcome, keyed by task, needs
the capability from its assignment, keyed by agent; a job's members join submissions with
assignments), so each fold would first need a repartition topic and a table per join, and
a global table's copies read all of its changelog anyway. Reading the source topics
directly costs the same reading, needs no extra topics, and has one writer: the log.
"""
from __future__ import annotations

import asyncio
import logging
from collections import deque

from events.codec import decode
from events.errors import EventDecodeError
from events.topics import EVENT_TOPICS
from services import kafka
from services.metrics import ProcessorMetrics
from services.router.state import RouterView
from services.settings import Settings

FOLLOWED = ("agents", "skills", "models", "assignments", "task-outcomes", "tasks")
log = logging.getLogger("orchestrator.router")


class LogFollower:
    def __init__(self, settings: Settings, view: RouterView, metrics: ProcessorMetrics, service: str) -> None:
        self.settings = settings
        self.view = view
        self.metrics = metrics
        self.service = service
        self.ready = asyncio.Event()  # set once the view has caught up with the log as it was at start

    async def run(self) -> None:
        # Agents report outcomes in transactions; an aborted report must not teach the router.
        consumer = kafka.consumer(self.settings, max_partition_fetch_bytes=4 * 1024 * 1024,
                                  isolation_level="read_committed")
        await kafka.start(consumer, self.settings)
        try:
            partitions = kafka.partitions(self.settings, [s for s in EVENT_TOPICS if s.name in FOLLOWED])
            consumer.assign(partitions)
            await consumer.seek_to_beginning(*partitions)
            ends = await consumer.end_offsets(partitions)
            await self._catch_up(consumer, ends)
            log.info("router view caught up: %d agents, %d attempts in flight",
                     len(self.view.state.agents), len(self.view.holdings))
            self.ready.set()
            while True:
                for records in (await consumer.getmany(timeout_ms=100)).values():
                    for record in records:
                        self._apply(record)
        finally:
            await consumer.stop()

    async def _catch_up(self, consumer, ends) -> None:
        """Apply the backlog in timestamp order across partitions, as the events happened.

        Read topic by topic instead, every outcome could come before its assignment.
        """
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
            earliest = min(filled, key=lambda tp: queues[tp][0].timestamp)
            self._apply(queues[earliest].popleft())

    def _apply(self, record) -> None:
        self.metrics.events_in.labels(self.service, record.topic).inc()
        try:
            body = decode(record.value).body
        except EventDecodeError:
            return  # the projector parks what cannot be read; the router only needs what it can
        try:
            self.view.apply(body)
        except Exception:  # noqa: BLE001 - one odd event must not stop routing
            log.exception("could not apply %s[%d]@%d to the router's view", record.topic, record.partition,
                          record.offset)
