"""The SDK keeps working through a broker restart: nothing lost, nothing reported twice.

Uses a broker of its own, so stopping it disturbs no other test.
"""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from services import kafka
from services.sdk import Completed, Task
from tests.e2e.helpers import publish_all
from tests.e2e.private_kafka import PrivateKafka
from tests.e2e.test_sdk import TopicLog, an_agent, assignment, ended, endings, of_type, running

pytestmark = pytest.mark.e2e


@pytest.fixture
def broker(tmp_path):
    private = PrivateKafka(tmp_path)
    private.start()
    yield private
    private.stop()


async def test_a_broker_restart_mid_task_loses_and_repeats_no_report(settings, broker):
    settings = settings.replace(kafka_bootstrap_servers=broker.bootstrap)
    await kafka.ensure_topics(settings)
    release = asyncio.Event()

    async def slow(task: Task) -> Completed:
        if task.task_id == "during-restart":
            await release.wait()
        return Completed(result_summary=f"did {task.task_id}")

    agent = an_agent(settings, slow)
    async with running(agent):
        await publish_all(settings, [assignment("before"), assignment("during-restart")])
        async with TopicLog(settings, "task-outcomes") as outcomes:
            await outcomes.until(ended("before"), "the first task")
            await outcomes.until(lambda es: of_type(es, "TaskStarted", task_id="during-restart"), "the slow start")

        broker.stop()
        release.set()  # the task ends while the broker is away; its start takes seconds
        await asyncio.to_thread(broker.start)

        await publish_all(settings, [assignment("after")])
        async with TopicLog(settings, "task-outcomes") as outcomes:
            events = await outcomes.until(ended("before", "during-restart", "after"), "every task", timeout=90)

    per_task = Counter(e.body.task_id for e in endings(events))
    assert per_task == {"before": 1, "during-restart": 1, "after": 1}
    started = Counter(e.body.task_id for e in of_type(events, "TaskStarted"))
    assert started == {"before": 1, "during-restart": 1, "after": 1}
