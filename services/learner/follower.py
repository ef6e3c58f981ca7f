"""Every learner copy folds the whole of its input topics, outside any group, and publishes
what follows from the records of the partitions it owns in the group.

The learner's state is a fold over every outcome in order, across all partitions, so each
copy holds all of it, as the router does. Publishing is shared out by partition number:
all the topics read have the same number of partitions, and a copy publishes what a record
leads to only when it owns that partition of the agents topic in `<prefix>.learner`, and then
advances that partition's marks (`marks.py`): how far a restart has nothing to make up for.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Protocol

from events.envelope import Envelope, EventBody
from events.learning import ModelPublished
from services.learner.outbox import Outbox
from services.learner.owed import Owed
from services.learner.state import HANDLED, LearnerFold
from services.log_follower import apply_backlog_in_time_order, followed_event, open_from_start
from services.metrics import ProcessorMetrics
from services.settings import Settings

FOLLOWED = ("agents", "tasks", "assignments", "task-outcomes")
log = logging.getLogger("orchestrator.learner")

Publish = Callable[[list[EventBody], Envelope | None], Awaitable[None]]
Delivered = Callable[[], Awaitable[None]]  # returns once everything published so far is on the broker


class PublishedMarks(Protocol):
    async def read(self) -> dict[tuple[str, int], int]: ...
    async def advance(self, positions: Mapping[tuple[str, int], int]) -> None: ...
    async def stop(self) -> None: ...


class LearnerFollower:
    def __init__(
        self,
        settings: Settings,
        view: LearnerFold,
        metrics: ProcessorMetrics,
        service: str,
        *,
        marks: PublishedMarks,
        open_log=open_from_start,
    ) -> None:
        self.settings = settings
        self.view = view
        self.metrics = metrics
        self.service = service
        self.marks = marks
        self.open_log = open_log
        self.ready = asyncio.Event()  # set once the state has caught up with the log as it was at start

    async def run(
        self,
        publish: Publish,
        owned: Callable[[], frozenset[int]],
        owns_agent: Callable[[str, frozenset[int]], bool],
        delivered: Delivered,
    ) -> None:
        owed = Owed(await self.marks.read())
        # Estimates go out every LEARNER_PUBLISH_INTERVAL_MS: what it reads may wait as long for company.
        wait = self.settings.learner.publish_interval_ms
        consumer, ends = await self.open_log(self.settings, FOLLOWED, HANDLED, self._fetched, fetch_max_wait_ms=wait)
        try:
            # Publishing nothing while the backlog is applied: estimates and the model follow from the
            # state once caught up, and what else the last run left unpublished is owed.
            await apply_backlog_in_time_order(consumer, ends, lambda record: owed.add(record, *self._apply(record)))
            log.info(
                "learner caught up: %d agents, %d outcomes", len(self.view.state.cohorts.profiles), self.view.outcomes
            )
            mine = await self._until_owning(owned)
            for body, cause in owed.due(await self.marks.read(), mine):
                await self._publish(publish, body, cause)
            for body in self.view.snapshot():
                agent_id = getattr(body, "agent_id", None)
                if agent_id is not None and owns_agent(agent_id, mine) or agent_id is None and 0 in mine:
                    await self._publish(publish, body, None)
            await self._published_up_to(delivered, {tp: end for tp, end in ends.items() if tp.partition in mine})
            self.ready.set()
            outbox, interval_s = Outbox(), self.settings.learner.publish_interval_ms / 1000
            clock = asyncio.get_running_loop().time
            published_at = clock()
            while True:
                for records in (await consumer.getmany(timeout_ms=100)).values():
                    for record in records:
                        envelope, emitted = self._apply(record)
                        if emitted and record.partition in owned():
                            outbox.add(emitted, envelope)
                if outbox and clock() - published_at >= interval_s:
                    published_at = clock()
                    for body, cause in outbox.drain():
                        await self._publish(publish, body, cause)
                    mine = owned()
                    await self._published_up_to(
                        delivered, {tp: await consumer.position(tp) for tp in ends if tp.partition in mine}
                    )
        finally:
            try:
                await consumer.stop()
            finally:
                await self.marks.stop()

    async def _publish(self, publish: Publish, body: EventBody, cause: Envelope | None) -> None:
        await publish([body], cause)
        if isinstance(body, ModelPublished) and "accuracy" in body.metrics:
            self.metrics.learner_accuracy.labels(self.service).set(body.metrics["accuracy"])

    async def _published_up_to(self, delivered: Delivered, positions: Mapping[tuple[str, int], int]) -> None:
        # A mark may pass a record only once what the record led to is on the broker.
        await delivered()
        await self.marks.advance(positions)

    async def _until_owning(self, owned: Callable[[], frozenset[int]], timeout_s: float = 60.0) -> frozenset[int]:
        # Until the group has given this copy its partitions, it cannot tell what is its to publish.
        deadline = asyncio.get_running_loop().time() + timeout_s
        while not (mine := owned()) and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.1)
        return mine

    def _fetched(self, topic: str, records: int) -> None:
        self.metrics.events_in.labels(self.service, topic).inc(records)  # those passed over unread included

    def _apply(self, record) -> tuple[Envelope | None, list[EventBody]]:
        envelope = followed_event(record)
        if envelope is None:
            return None, []
        try:
            emitted = self.view.apply(envelope.body)
        except Exception:  # noqa: BLE001 - one odd event must not stop learning
            log.exception("could not learn from %s[%d]@%d", record.topic, record.partition, record.offset)
            return envelope, []
        self.metrics.events_applied.labels(self.service, record.topic).inc()
        return envelope, emitted
