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

from services.log_follower import apply_backlog_in_time_order, followed_event, open_from_start
from services.metrics import ProcessorMetrics
from services.router.state import HANDLED, RouterFold
from services.settings import Settings

FOLLOWED = ("agents", "health", "skills", "models", "assignments", "task-outcomes", "tasks")
log = logging.getLogger("orchestrator.router")


class LogFollower:
    def __init__(self, settings: Settings, view: RouterFold, metrics: ProcessorMetrics, service: str) -> None:
        self.settings = settings
        self.view = view
        self.metrics = metrics
        self.service = service
        self.ready = asyncio.Event()  # set once the view has caught up with the log as it was at start

    async def run(self) -> None:
        # Agents report outcomes in transactions; the consumer reads committed records only, so an
        # aborted report never teaches the router.
        # Loads and outcomes a few tens of milliseconds old rank agents as well as fresh ones (the
        # balancer, which holds the capacity, has the last word), and fuller fetches cost less.
        wait = self.settings.router.view_fetch_max_wait_ms
        consumer, ends = await open_from_start(self.settings, FOLLOWED, HANDLED, self._fetched, wait)
        try:
            await apply_backlog_in_time_order(consumer, ends, self._apply)
            log.info(
                "router view caught up: %d agents, %d attempts in flight",
                len(self.view.state.agents),
                len(self.view.holdings),
            )
            self.ready.set()
            while True:
                for records in (await consumer.getmany(timeout_ms=100)).values():
                    for record in records:
                        self._apply(record)
        finally:
            await consumer.stop()

    def _fetched(self, topic: str, records: int) -> None:
        self.metrics.events_in.labels(self.service, topic).inc(records)  # those passed over unread included

    def _apply(self, record) -> None:
        event = followed_event(record)
        if event is None:
            return
        try:
            self.view.apply(event.body)
        except Exception:  # noqa: BLE001 - one odd event must not stop routing
            log.exception(
                "could not apply %s[%d]@%d to the router's view", record.topic, record.partition, record.offset
            )
