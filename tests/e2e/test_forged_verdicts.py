"""A health verdict counts only from the health monitor's own topic.

Every agent may write the agents topic, so a verdict found there is a forgery: the agent it
condemns keeps its task and keeps being routed to, and the forgery is parked with the reason.
On the secure broker no agent may write, or even read, the health monitor's topic.
"""

from __future__ import annotations

import pytest
from aiokafka.errors import TopicAuthorizationFailedError

from events.agents import AgentHealthChanged
from events.codec import encode, type_header
from events.envelope import make_event
from events.tasks import TaskAssigned, TaskReassigned, TaskRouted
from events.topics import topic_name
from services import kafka
from services.settings import Settings
from tests.e2e.helpers import publish_all, running_projector
from tests.e2e.test_routing import (
    Traffic,
    parked_by,
    router_and_balancer,
    t1_held_by_good_with_backup_standing_by,
    task,
)
from tests.e2e.test_secure_kafka import admin, as_principal, consume_one_batch, produce, secure_broker  # noqa: F401

pytestmark = pytest.mark.e2e


async def publish_on_agents_topic(settings: Settings, event) -> None:
    """What any agent principal may do: write whatever it likes on the agents topic."""
    producer = kafka.producer(settings)
    await kafka.start(producer, settings)
    try:
        await producer.send_and_wait(
            topic_name("agents", settings.topic_prefix),
            encode(event),
            key=event.key.encode(),
            headers=[type_header(event)],
        )
    finally:
        await producer.stop()


async def test_a_verdict_forged_on_the_agents_topic_condemns_no_one(settings, tmp_path):
    async with Traffic(settings) as traffic, running_projector(settings):
        with router_and_balancer(settings, tmp_path):
            # room for its probe, t-1 and t-2: only a verdict could keep t-2 from `good`
            await t1_held_by_good_with_backup_standing_by(settings, traffic, good_capacity=3)

            # `backup` declares its rival unhealthy, naming the health monitor as the producer.
            await publish_on_agents_topic(
                settings,
                make_event(
                    AgentHealthChanged(
                        agent_id="good",
                        previous="healthy",
                        current="unhealthy",
                        missed_heartbeats=4,
                        in_flight_task_ids=("t-1",),
                    ),
                    producer="health",
                ),
            )
            parked = await parked_by(settings, {"balancer", "projector"})
            await publish_all(settings, [task("t-2")])
            [later] = await traffic.until(lambda: traffic.bodies(TaskAssigned, task_id="t-2"), "t-2 assigned")

    assert traffic.bodies(TaskRouted, task_id="t-2")[0].chosen_agent_id == "good"  # the router still offers it
    assert later.agent_id == "good"  # and the balancer still gives it work
    assert traffic.bodies(TaskReassigned, task_id="t-1") == []
    assert [a.agent_id for a in traffic.bodies(TaskAssigned, task_id="t-1")] == ["good"]
    agents_topic = topic_name("agents", settings.topic_prefix)
    health_topic = topic_name("health", settings.topic_prefix)
    reason = f"AgentHealthChanged is not accepted on {agents_topic}: only {health_topic} carries it"
    assert {(p.processor, p.origin_topic, p.error_class, p.error_message) for p in parked} == {
        (processor, agents_topic, "MisplacedEvent", reason) for processor in ("balancer", "projector")
    }


async def test_on_the_secure_broker_only_the_health_monitor_writes_verdicts(admin, secure_broker):  # noqa: F811
    for name in ("agent", "agent-2"):
        agent_principal = as_principal(admin, secure_broker, name)
        with pytest.raises(TopicAuthorizationFailedError):
            await produce(agent_principal, "health")
        with pytest.raises(TopicAuthorizationFailedError):
            await consume_one_batch(agent_principal, "health", patience_s=30)
    await produce(as_principal(admin, secure_broker, "health"), "health")
    for reader in ("projector", "router", "balancer"):
        await consume_one_batch(as_principal(admin, secure_broker, reader), "health")
