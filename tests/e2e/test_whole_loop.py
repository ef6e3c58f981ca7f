"""The whole loop with real parts: SDK agents, health monitor, router and balancer.

An agent that dies mid-task stops heartbeating; the health monitor declares it unhealthy
with the task in flight; the balancer reassigns the task; another agent completes it.
"""

from __future__ import annotations

import asyncio

import pytest

from services import kafka
from services.sdk import Agent, Capability, Completed, Task
from tests.e2e.helpers import publish_all
from tests.e2e.test_routing import serving, task
from tests.e2e.test_sdk import TopicLog, ended, of_type, running
from tests.signing import agent_key

pytestmark = pytest.mark.e2e

FAST_HEALTH = {
    "HEALTH_HEARTBEAT_INTERVAL_S": "0.3",
    "HEALTH_DEGRADED_AFTER_MISSED": "2",
    "HEALTH_UNHEALTHY_AFTER_MISSED": "4",
    "HEALTH_TICK_INTERVAL_S": "0.1",
}


async def test_a_killed_agents_task_is_reassigned_and_completed_by_another(settings, tmp_path, monkeypatch):
    for name, value in FAST_HEALTH.items():
        monkeypatch.setenv(name, value)
    await kafka.ensure_topics(settings)
    picked_up = asyncio.Event()

    async def hang(task: Task) -> Completed:
        picked_up.set()
        await asyncio.Event().wait()  # the agent dies before finishing

    async def work(task: Task) -> Completed:
        return Completed(result_summary=f"finished {task.task_id}")

    doomed = Agent(
        "doomed",
        [Capability(name="python", proficiency=0.99)],
        1,
        hang,
        settings=settings,
        heartbeat_interval=0.3,
        signing_key=await agent_key(settings, "doomed"),
    )
    rescuer = Agent(
        "rescuer",
        [Capability(name="python", proficiency=0.6)],
        1,
        work,
        settings=settings,
        heartbeat_interval=0.3,
        signing_key=await agent_key(settings, "rescuer"),
    )
    with (
        serving("health", settings, tmp_path),
        serving("router", settings, tmp_path),
        serving("balancer", settings, tmp_path),
    ):
        async with running(rescuer):
            async with running(doomed, drain=False):
                async with TopicLog(settings, "health") as health:
                    await health.until(
                        lambda es: len(of_type(es, "AgentHealthChanged")) >= 2, "both healthy", timeout=60
                    )
                await publish_all(settings, [task("orphan")])
                await asyncio.wait_for(picked_up.wait(), 60)
            # `doomed` is gone without a word: no outcome, no deregistration, no heartbeats.
            async with TopicLog(settings, "task-outcomes") as outcomes:
                events = await outcomes.until(ended("orphan"), "the orphaned task to finish", timeout=60)
            unhealthy = {"agent_id": "doomed", "current": "unhealthy"}
            async with TopicLog(settings, "health") as health:
                verdicts = of_type(
                    await health.until(
                        lambda es: of_type(es, "AgentHealthChanged", **unhealthy), "the unhealthy verdict"
                    ),
                    "AgentHealthChanged",
                    **unhealthy,
                )
            async with TopicLog(settings, "tasks") as tasks:
                reassigned = of_type(
                    await tasks.until(lambda es: of_type(es, "TaskReassigned"), "reassignment"), "TaskReassigned"
                )

    [completed] = of_type(events, "TaskCompleted")
    assert (completed.body.agent_id, completed.body.attempt) == ("rescuer", 2)
    # The verdict names the agent only: the balancer, which knows what it holds, takes the task back.
    assert verdicts[0].body.in_flight_task_ids == ()
    assert (reassigned[0].body.from_agent_id, reassigned[0].body.to_agent_id) == ("doomed", "rescuer")
