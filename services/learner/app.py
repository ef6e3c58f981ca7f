"""The learner's Faust app: the shell around `services.learner.state` and `services.learner.logic`.

    <prefix>.agents, .tasks, .assignments, .task-outcomes ── every partition ──▶ follower ─▶ LearnerFold
    <prefix>.agents ── in the group `<prefix>.learner` ──▶ which partitions this copy publishes for
    LearnerFold's output ──▶ <prefix>.skills  (SkillEstimated, SkillShiftDetected, RelationshipScored)
                         ──▶ <prefix>.models  (ModelPublished, every LEARNER_PUBLISH_EVERY outcomes)
    how far that is on the broker, per partition read ──▶ <prefix>.learner-published (compacted, `marks.py`)

What the learner learns is published every LEARNER_PUBLISH_INTERVAL_MS (200 ms), the latest
estimate per agent and capability only (`outbox.py`): the router learns each outcome itself,
so it waits for no estimate, and one estimate per task would reach every reader of the skills
topic. What moves with everyone's outcomes (other agents' cohort priors, the model) is
published every LEARNER_PUBLISH_EVERY outcomes.
"""

from __future__ import annotations

import asyncio
import logging

import faust

from events.codec import encode, type_header
from events.envelope import Envelope, EventBody, make_event
from events.topics import topic_for_event, topic_name
from services.faust_worker import ProcessorSite, processor_app
from services.kafka import partition_of
from services.learner.follower import LearnerFollower
from services.metrics import ProcessorMetrics

SERVICE = "learner"
log = logging.getLogger("orchestrator.learner")


def create_app(
    *,
    site: ProcessorSite,
    follower: LearnerFollower,
    metrics: ProcessorMetrics,
) -> faust.App:
    app = processor_app(site, table_standby_replicas=0)
    raw = {"key_serializer": "raw", "value_serializer": "raw"}
    # Membership only: the partitions of this low-volume topic a copy is given say which
    # partitions of every followed topic it publishes for (all have the same number).
    membership_topic = topic_name("agents", site.topic_prefix)
    membership = app.topic(membership_topic, **raw)
    published = {name: app.topic(topic_name(name, site.topic_prefix), **raw) for name in ("skills", "models")}

    def owned() -> frozenset[int]:
        if app.rebalancing:
            return frozenset()
        return frozenset(tp.partition for tp in app.consumer.assignment() if tp.topic == membership_topic)

    def owns_agent(agent_id: str, partitions: frozenset[int]) -> bool:
        return partition_of(agent_id.encode()) in partitions

    async def publish(bodies: list[EventBody], cause: Envelope | None) -> None:
        for body in bodies:
            event = make_event(body, producer=SERVICE, cause=cause)
            topic = topic_for_event(event.event_type).name
            await published[topic].send(key=event.key.encode(), value=encode(event), headers=[type_header(event)])
            metrics.events_out.labels(SERVICE, topic).inc()

    @app.task
    async def follow_the_log():
        try:
            await follower.run(publish, owned, owns_agent, app.producer.flush)
        except asyncio.CancelledError:
            raise
        except Exception as error:  # noqa: BLE001 - a learner that stopped learning must say so
            log.exception("the learner stopped following the log")
            await app.crash(error)

    @app.agent(membership)
    async def share_of_the_partitions(stream):
        # The learning itself happens in the follower, which sees every partition.
        async for _ in stream.events():
            pass

    return app
