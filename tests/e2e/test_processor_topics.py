"""A processor's own topics (Faust's changelogs and repartition topics, the balancer's inbox) are
created before it starts, with Faust's settings, and every partition answers when they are."""
from __future__ import annotations

import asyncio
import dataclasses

import pytest
from aiokafka import TopicPartition

from services import kafka
from services.faust_worker import internal_topics
from services.health.bootstrap import bootstrap as health_app
from services.router.bootstrap import bootstrap as router_app
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
    settings = dataclasses.replace(settings, health_data_dir=str(tmp_path), router_data_dir=str(tmp_path))
    wanted = internal_topics(health_app(settings)) + internal_topics(router_app(settings))
    names = sorted(topic.name for topic in wanted)
    assert names == [f"{settings.health_app}-agent-health-changelog",
                     f"{settings.health_app}-task-endings-repartition",
                     f"{settings.router_app}-waiting-tasks-changelog"]

    # When they are ensured, twice
    created = asyncio.run(kafka.ensure_own_topics(settings, wanted))
    again = asyncio.run(kafka.ensure_own_topics(settings, wanted))

    # Then the first call created all three and the second none
    assert sorted(created) == names and again == []
    # with Faust's partitions and cleanup: changelogs compacted, the repartition topic deleting
    partitions, configs = asyncio.run(described(settings, names))
    assert partitions == {name: 6 for name in names}
    assert configs[f"{settings.health_app}-agent-health-changelog"]["cleanup.policy"] == "compact"
    assert configs[f"{settings.router_app}-waiting-tasks-changelog"]["cleanup.policy"] == "compact"
    assert configs[f"{settings.health_app}-task-endings-repartition"]["cleanup.policy"] == "delete"
    # and every partition already answers for its offsets (empty topics end at 0)
    offsets = asyncio.run(end_offsets(settings, partitions))
    assert len(offsets) == 18 and set(offsets.values()) == {0}
