"""A processor's own topics (Faust's changelogs and repartition topics, the balancer's inbox) are
created before it starts, with Faust's settings, and every partition answers when they are."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import TopicPartition

from services import kafka
from services.faust_worker import internal_topics
from services.health.bootstrap import bootstrap as health_app
from services.router.bootstrap import bootstrap as router_app
from services.router.waiting import ensure_router_topics, waiting_topic
from services.settings import Settings

pytestmark = pytest.mark.e2e


async def described(settings: Settings, names: list[str]) -> tuple[dict[str, int], dict[str, dict[str, str]]]:
    admin = kafka.admin_client(settings)
    await kafka.start(admin, settings, "the Kafka admin API")
    try:
        partitions = {d["topic"]: len(d["partitions"]) for d in await admin.describe_topics(names)}
        return partitions, await kafka._topic_configs(admin, names)
    finally:
        await admin.close()


async def end_offsets(settings: Settings, partitions: dict[str, int]) -> dict:
    probe = kafka.consumer(settings)
    await kafka.start(probe, settings)
    try:
        return await probe.end_offsets([TopicPartition(n, p) for n, count in partitions.items() for p in range(count)])
    finally:
        await probe.stop()


def test_faust_s_internal_topics_are_created_ready_with_faust_s_settings_and_only_once(settings, tmp_path):
    # Given the health monitor's and the router's Faust apps, not started
    settings = settings.replace(health_data_dir=str(tmp_path), router_data_dir=str(tmp_path))
    wanted = internal_topics(health_app(settings)) + internal_topics(router_app(settings))
    names = sorted(topic.name for topic in wanted)
    # (the router reads the tasks topic in batches and keeps its waiting tasks on a topic of its own)
    assert names == [f"{settings.health_app}-agent-health-changelog"]

    # When they are ensured, twice
    created = asyncio.run(kafka.ensure_own_topics(settings, wanted))
    again = asyncio.run(kafka.ensure_own_topics(settings, wanted))

    # Then the first call created it and the second nothing
    assert sorted(created) == names and again == []
    # with Faust's partitions and cleanup: changelogs compacted
    partitions, configs = asyncio.run(described(settings, names))
    assert partitions == {name: 6 for name in names}
    assert configs[f"{settings.health_app}-agent-health-changelog"]["cleanup.policy"] == "compact"
    # and every partition already answers for its offsets (empty topics end at 0)
    offsets = asyncio.run(end_offsets(settings, partitions))
    assert len(offsets) == 6 and set(offsets.values()) == {0}


def test_the_router_s_waiting_topic_is_compacted_like_the_tasks_topic_and_ready(settings):
    asyncio.run(ensure_router_topics(settings))
    asyncio.run(ensure_router_topics(settings))  # a second start finds it there

    name = waiting_topic(settings)
    partitions, configs = asyncio.run(described(settings, [name]))
    assert partitions == {name: 6}  # numbered like the tasks topic: a task waits in its own partition
    assert configs[name]["cleanup.policy"] == "compact"
    assert set(asyncio.run(end_offsets(settings, partitions)).values()) == {0}
