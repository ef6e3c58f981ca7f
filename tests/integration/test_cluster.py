"""A three-broker cluster (`infra/stack.sh up --brokers 3`) loses a broker to `kill -9` and
loses and repeats nothing.

The catalog is created by the project's own code at replication 3 (min ISR 2); the project's
producer (acks=all, idempotent) and a read_committed consumer group that commits what it read
go on while the broker is away; the broker, started again, rejoins the ISR of every partition.
The cluster is the test's own (its own ports and directory, Kafka only), so it runs beside the
suite's stack and disturbs nothing else. No Java, no Kafka: the test fails, as the suite does.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections import Counter

import pytest
from aiokafka import TopicPartition
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaError

from events.topics import PARTITIONS, TOPICS, topic_name
from services import kafka
from services.settings import Settings
from tests.cluster import Cluster
from tests.factories import registered

pytestmark = pytest.mark.integration
OFFSETS_TOPIC = "__consumer_offsets"


def cluster_settings(env: str) -> Settings:
    """The cluster's endpoints and replication factor, as `infra/stack.sh env --brokers 3` prints them."""
    exported = dict(
        line.removeprefix("export ").split("=", 1) for line in env.splitlines() if line.startswith("export")
    )
    return Settings.from_env(
        {
            "KAFKA_BOOTSTRAP_SERVERS": exported["KAFKA_BOOTSTRAP_SERVERS"],
            "ORCHESTRATOR_REPLICATION_FACTOR": exported["ORCHESTRATOR_REPLICATION_FACTOR"],
        },
        topic_prefix=f"cluster-{os.urandom(4).hex()}",
    )


async def ask(call, *args):
    """An admin request, again while it fails: the admin client sends it to a broker of its
    choosing, which may be the one just killed."""
    deadline = time.monotonic() + 30
    while True:
        try:
            return await call(*args)
        except (KafkaError, OSError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)


async def partitions_of(admin, names: list[str]) -> dict[tuple[str, int], dict]:
    described = await ask(admin.describe_topics, names)
    return {(d["topic"], p["partition"]): p for d in described for p in d["partitions"]}


async def live_brokers(admin) -> set[int]:
    return {b["node_id"] for b in (await ask(admin.describe_cluster))["brokers"]}


async def gone(admin, node: int) -> bool:
    return node not in await live_brokers(admin)


class Traffic:
    """The project's producer publishing one event after another to `agents`, and a consumer group
    reading them read_committed and committing what it read, both until told to stop."""

    def __init__(self, settings: Settings, group: str) -> None:
        self.settings = settings
        self.producer = kafka.producer(settings)
        self.consumer = kafka.consumer(settings, topic_name("agents", settings.topic_prefix), group_id=group)
        self.acked: list[str] = []  # keys, each acknowledged by the cluster (acks=all)
        self.ack_times: list[float] = []
        self.consumed: list[str] = []
        self.producing = True
        self.tasks: list[asyncio.Task] = []
        self.started: list = []

    async def start(self) -> None:
        for client in (self.producer, self.consumer):
            await kafka.start(client, self.settings)
            self.started.append(client)
        self.tasks = [asyncio.create_task(self._produce()), asyncio.create_task(self._consume())]

    async def _produce(self) -> None:
        while self.producing:
            event = registered(f"agent-{len(self.acked)}")
            await kafka.publish(self.producer, self.settings, event)
            self.acked.append(event.key)
            self.ack_times.append(time.monotonic())

    async def _consume(self) -> None:
        while True:
            batches = await self.consumer.getmany(timeout_ms=200)
            self.consumed.extend(r.key.decode() for records in batches.values() for r in records)
            if batches:
                await self.consumer.commit()

    def acked_more(self, n: int):
        target = len(self.acked) + n

        async def enough() -> bool:
            assert not self.tasks[0].done(), self.tasks[0]  # a failed send ends the test
            return len(self.acked) >= target

        return enough

    def longest_wait_since(self, index: int) -> float:
        """The longest time between two acknowledgements from the `index`th on."""
        times = self.ack_times[max(index - 1, 0) :]
        return max(b - a for a, b in zip(times, times[1:]))

    async def finish(self) -> None:
        """Stop producing, let the group read and commit everything acknowledged, and stop it."""
        self.producing = False
        await self.tasks[0]

        async def all_read() -> bool:
            return len(self.consumed) >= len(self.acked)

        await until(all_read, "the group read every acknowledged event")
        await asyncio.sleep(0.5)  # anything read twice would arrive now
        await self.stop_tasks()
        await self.consumer.commit()

    async def stop_tasks(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)

    async def close(self) -> None:
        await self.stop_tasks()
        for client in reversed(self.started):
            await client.stop()


async def until(condition, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not await condition():
        assert time.monotonic() < deadline, f"{what} within {timeout} s"
        await asyncio.sleep(0.1)


async def test_a_broker_killed_and_restarted_loses_and_repeats_nothing(tmp_path):
    cluster = Cluster(tmp_path / "cluster")
    figures: dict[str, float] = {}
    try:
        started = time.monotonic()
        cluster.run("up")
        figures["up --brokers 3 (s)"] = time.monotonic() - started
        settings = cluster_settings(cluster.run("env"))
        assert settings.kafka_bootstrap_servers == cluster.bootstrap and settings.replication_factor == 3
        await kafka.ensure_topics(settings)
        catalog = [topic_name(spec, settings.topic_prefix) for spec in TOPICS]
        group = f"{settings.topic_prefix}.cluster-test"
        admin = kafka.admin_client(settings)
        await kafka.start(admin, settings)
        traffic = Traffic(settings, group)
        try:
            # Every catalog partition on three brokers; a write needs two of them in sync.
            assert {len(p["replicas"]) for p in (await partitions_of(admin, catalog)).values()} == {3}
            described = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, n) for n in catalog])
            min_isr = {
                name: dict((entry[0], entry[1]) for entry in entries)["min.insync.replicas"]
                for response in described
                for _code, _message, _type, name, entries in response.resources
            }
            assert min_isr == {name: "2" for name in catalog}

            await traffic.start()
            await until(traffic.acked_more(150), "150 events acknowledged")

            # The active controller goes, and with it the leadership of a third of the partitions.
            victim = (await ask(admin.describe_cluster))["controller_id"]
            pid = int(cluster.run("broker-pid", str(victim)))
            os.kill(pid, signal.SIGKILL)
            killed, acked_at_kill = time.monotonic(), len(traffic.acked)
            await until(lambda: gone(admin, victim), "the killed broker dropped from the cluster")
            figures["kill -9 -> broker fenced (s)"] = time.monotonic() - killed
            await until(traffic.acked_more(150), "150 more events acknowledged with a broker down")
            figures["longest wait for an acknowledgement (s)"] = traffic.longest_wait_since(acked_at_kill)
            assert await live_brokers(admin) == {1, 2, 3} - {victim}
            partitions = await partitions_of(admin, catalog)
            assert all(p["leader"] != victim and victim not in p["isr"] for p in partitions.values())

            # Back again, while the traffic goes on: registered, then in the ISR of each of its partitions.
            restarting = time.monotonic()
            restart = asyncio.create_task(cluster.start_broker(victim))

            async def registered_again() -> bool:
                return victim in await live_brokers(admin)

            async def in_sync() -> bool:
                everything = await partitions_of(admin, [*catalog, OFFSETS_TOPIC])
                return all(set(p["isr"]) == set(p["replicas"]) for p in everything.values())

            try:
                await until(registered_again, "the restarted broker registered", timeout=90)
                figures["restart -> registered (s)"] = time.monotonic() - restarting
                await until(in_sync, "every partition back in sync", timeout=60)
                figures["restart -> back in every ISR (s)"] = time.monotonic() - restarting
            finally:
                await restart
            await until(traffic.acked_more(100), "100 more events acknowledged after the restart")
            await traffic.finish()
            figures["events acknowledged"] = len(traffic.acked)

            # Nothing lost, nothing twice: in what the group read, in the log, in what the group committed.
            assert len(set(traffic.acked)) == len(traffic.acked)
            assert Counter(traffic.consumed) == Counter(traffic.acked)
            assert Counter(await read_log(settings, topic_name("agents", settings.topic_prefix))) == Counter(
                traffic.acked
            )
            ends = await kafka.end_offsets(settings, [spec for spec in TOPICS if spec.name == "agents"])
            committed = await ask(admin.list_consumer_group_offsets, group)
            assert {tp: meta.offset for tp, meta in committed.items()} == ends
            # The group's offsets, on the cluster's internal topic, at replication 3 as well.
            offsets_topic = await partitions_of(admin, [OFFSETS_TOPIC])
            assert {len(p["replicas"]) for p in offsets_topic.values()} == {3}
        finally:
            await traffic.close()
            await admin.close()
    finally:
        cluster.run("down", timeout=90)
        if figures:
            print("cluster figures: " + ", ".join(f"{k} {v:.1f}" for k, v in figures.items()))


async def read_log(settings: Settings, topic: str) -> list[str]:
    """Every key in the topic, read_committed from the start, outside any group."""
    reader = kafka.consumer(settings)
    await kafka.start(reader, settings)
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        reader.assign(tps)
        await reader.seek_to_beginning(*tps)
        ends = await reader.end_offsets(tps)
        keys: list[str] = []
        while [tp for tp in tps if await reader.position(tp) < ends[tp]]:
            batches = await reader.getmany(timeout_ms=500)
            keys.extend(r.key.decode() for records in batches.values() for r in records)
        return keys
    finally:
        await reader.stop()
