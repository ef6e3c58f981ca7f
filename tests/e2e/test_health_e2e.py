"""The health monitor as it runs in production: `orchestrator serve health` against the real broker."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import signal
import subprocess
import sys
from datetime import datetime, timezone

import pytest
from aiokafka import TopicPartition
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from events.agents import AgentHealthChanged, AgentHeartbeat, AgentLoadSummarized
from events.codec import decode, encode
from events.envelope import make_event
from events.topics import DEAD_LETTER, topic_name
from services import kafka
from services.deadletter.park import parked_from
from services.settings import Settings, as_environ
from tests.conftest import ROOT
from tests.e2e.helpers import publish_all, publish_raw, wait_for
from tests.factories import assigned, completed, deregistered, registered
from tests.signing import keyring, signature

pytestmark = pytest.mark.e2e

# Heartbeats every 0.5 s: degraded after 1 s of silence, unhealthy after 2 s, load per 1 s.
FAST = {
    "HEALTH_HEARTBEAT_INTERVAL_S": "0.5",
    "HEALTH_DEGRADED_AFTER_MISSED": "2",
    "HEALTH_UNHEALTHY_AFTER_MISSED": "4",
    "HEALTH_LOAD_WINDOW_S": "1",
    "HEALTH_TICK_INTERVAL_S": "0.1",
}
INTERVAL_S = 0.5


def environment(settings: Settings, data_dir, policy: dict[str, str] | None = None) -> dict[str, str]:
    configured = as_environ(settings)
    return {**os.environ, **configured, **FAST, **(policy or {}), "HEALTH_DATA_DIR": str(data_dir)}


@contextlib.contextmanager
def health_monitor(settings: Settings, tmp_path, name: str = "health", policy: dict[str, str] | None = None):
    log_path = tmp_path / f"{name}.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "services.cli", "serve", "health"],
            cwd=ROOT,
            env=environment(settings, tmp_path / "faust", policy),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(30)
        print(f"--- {name} log (tail) ---\n" + log_path.read_text(errors="replace")[-6000:])


def stop(process: subprocess.Popen) -> int:
    process.terminate()
    return process.wait(30)


def heartbeat(agent_id: str, in_flight: int = 1):
    return make_event(
        AgentHeartbeat(
            agent_id=agent_id,
            in_flight=in_flight,
            queue_depth=2,
            cpu_percent=12.5,
            memory_mb=256.0,
            agent_version="1.0",
        ),
        producer=agent_id,
        occurred_at=datetime.now(timezone.utc),
    )


@contextlib.asynccontextmanager
async def beating(settings: Settings, agent_id: str):
    """An agent sending heartbeats on schedule until the block ends."""
    producer = kafka.producer(settings)
    await kafka.start(producer, settings)

    async def beat():
        while True:
            beat = heartbeat(agent_id)
            await kafka.publish(producer, settings, beat, await signature(settings, beat))
            await asyncio.sleep(INTERVAL_S / 2)  # as agents do, so one slow send is no missed beat

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await producer.stop()


class MonitorOutput:
    """Everything the health monitor has published on its own topic so far."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.consumer = kafka.consumer(settings, topic_name("health", settings.topic_prefix))
        self.events = []

    async def __aenter__(self):
        await kafka.start(self.consumer, self.settings)
        return self

    async def __aexit__(self, *exc) -> None:
        await self.consumer.stop()

    async def _read(self) -> None:
        fetched = await self.consumer.getmany(timeout_ms=100)
        for records in fetched.values():
            self.events += [e for e in map(decode, (r.value for r in records)) if e.producer == "health"]

    def changes(self, agent_id: str) -> list[AgentHealthChanged]:
        return [e.body for e in self.events if isinstance(e.body, AgentHealthChanged) and e.key == agent_id]

    def summaries(self, agent_id: str) -> list[AgentLoadSummarized]:
        return [e.body for e in self.events if isinstance(e.body, AgentLoadSummarized) and e.key == agent_id]

    async def read_all(self) -> None:
        """Read everything published so far."""
        ends = await self.consumer.end_offsets(list(self.consumer.assignment()))

        async def read() -> bool:
            await self._read()
            return all([await self.consumer.position(tp) >= end for tp, end in ends.items()])

        await wait_for(read, timeout=20, what="everything the monitor published so far")

    async def until(self, condition, what: str, timeout: float = 20.0):
        async def check():
            await self._read()
            return condition()

        return await wait_for(check, timeout=timeout, what=what)


def path_of(changes: list[AgentHealthChanged]) -> list[str]:
    return [changes[0].previous] + [c.current for c in changes] if changes else []


async def parked_by_health(settings: Settings):
    consumer = kafka.consumer(settings, topic_name(DEAD_LETTER, settings.topic_prefix))
    await kafka.start(consumer, settings)
    parked = []

    async def read():
        fetched = await consumer.getmany(timeout_ms=100)
        parked.extend(
            p for p in map(parked_from, (r for rs in fetched.values() for r in rs)) if p.processor == "health"
        )
        return parked

    try:
        return await wait_for(read, timeout=10, what="a message parked by the health monitor")
    finally:
        await consumer.stop()


async def test_silence_degrades_then_condemns_an_agent_and_leaves_its_tasks_to_the_balancer(settings, tmp_path):
    await kafka.ensure_topics(settings)
    with health_monitor(settings, tmp_path) as monitor:
        async with MonitorOutput(settings) as output:
            await publish_all(
                settings,
                [
                    registered("agent-1"),
                    registered("agent-2"),
                    assigned("task-1", "agent-1"),
                    assigned("task-2", "agent-1"),
                    completed("task-2", "agent-1"),
                ],
            )
            await publish_raw(settings, "heartbeats", b"agent-1", b"{not json")
            async with beating(settings, "agent-1"):
                await publish_all(settings, [heartbeat("agent-2")])
                await publish_all(settings, [deregistered("agent-2")])
                await output.until(lambda: output.changes("agent-1"), "agent-1 healthy")
                await output.until(lambda: output.summaries("agent-1"), "a load summary of agent-1")

            await output.until(lambda: len(output.changes("agent-1")) >= 3, "agent-1 degraded, then unhealthy")

            assert path_of(output.changes("agent-1")) == ["unknown", "healthy", "degraded", "unhealthy"]
            unhealthy = output.changes("agent-1")[-1]
            # The balancer holds what is in flight and reassigns it on this verdict.
            assert unhealthy.in_flight_task_ids == ()
            assert unhealthy.missed_heartbeats >= 4
            # agent-2 went quiet before agent-1 did, but it had left: no bad verdict for it.
            assert all(c.current == "healthy" for c in output.changes("agent-2"))
            summary = output.summaries("agent-1")[0]
            assert summary.heartbeats >= 1 and summary.max_in_flight == 1 and summary.avg_cpu_percent == 12.5
            [parked] = await parked_by_health(settings)
            assert (parked.origin_topic, parked.error_class) == (
                topic_name("heartbeats", settings.topic_prefix),
                "MalformedEvent",
            )
        assert stop(monitor) == 0


async def test_a_restarted_monitor_remembers_agents_from_its_changelog(settings, tmp_path):
    await kafka.ensure_topics(settings)
    async with MonitorOutput(settings) as output:
        with health_monitor(settings, tmp_path, "first") as first:
            await publish_all(settings, [registered("agent-1")])
            async with beating(settings, "agent-1"):
                await output.until(lambda: output.changes("agent-1"), "agent-1 healthy")
                assert stop(first) == 0

        # The registration was consumed and committed by the first run: the second knows
        # of it only through the table restored from the changelog.
        with health_monitor(settings, tmp_path, "second") as second:
            await output.until(lambda: len(output.changes("agent-1")) >= 3, "agent-1 unhealthy after the restart")

            assert path_of(output.changes("agent-1")) == ["unknown", "healthy", "degraded", "unhealthy"]
            assert stop(second) == 0


async def publish_aborted(settings: Settings, events) -> None:
    """Written in a transaction that is then aborted: no reader of committed records may see them."""
    producer = kafka.producer(settings, transactional_id=f"{settings.topic_prefix}.aborting-agent")
    await kafka.start(producer, settings)
    try:
        await producer.begin_transaction()
        for event in events:
            # signed where identities are verified: only the abort may keep them from being judged
            await kafka.publish(producer, settings, event, await signature(settings, event))
        await producer.abort_transaction()
    finally:
        await producer.stop()


async def test_an_aborted_registration_and_heartbeat_are_never_judged(settings, tmp_path):
    await kafka.ensure_topics(settings)
    with health_monitor(settings, tmp_path):
        async with MonitorOutput(settings) as output:
            await publish_aborted(settings, [registered("ghost"), heartbeat("ghost")])
            await publish_all(settings, [registered("agent-1"), heartbeat("agent-1")])
            await output.until(lambda: output.changes("agent-1"), "agent-1 healthy")
            for _ in range(8):  # beats after its registration, had that been read: long enough to be judged
                await publish_aborted(settings, [heartbeat("ghost")])
                await publish_all(settings, [heartbeat("agent-1")])
                await asyncio.sleep(INTERVAL_S / 2)

            assert output.changes("ghost") == []


class Fleet:
    """Agents sending heartbeats on schedule, each until it is stopped."""

    def __init__(self, settings: Settings, agent_ids) -> None:
        self.settings = settings
        self.agent_ids = list(agent_ids)
        self.producer = kafka.producer(settings)
        self.beats: dict[str, asyncio.Task] = {}

    async def __aenter__(self):
        await kafka.start(self.producer, self.settings)
        for agent_id in self.agent_ids:
            self.beats[agent_id] = asyncio.create_task(self._beat(agent_id))
        return self

    async def _beat(self, agent_id: str) -> None:
        while True:
            beat = heartbeat(agent_id)
            await kafka.publish(self.producer, self.settings, beat, await signature(self.settings, beat))
            await asyncio.sleep(INTERVAL_S / 2)

    async def stop(self, agent_id: str) -> None:
        task = self.beats.pop(agent_id)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def __aexit__(self, *exc) -> None:
        for agent_id in list(self.beats):
            await self.stop(agent_id)
        await self.producer.stop()


def on_partition_of(agent_id: str, prefix: str, count: int) -> list[str]:
    """`count` agent ids whose heartbeats share a partition with `agent_id`'s."""
    partition = kafka.partition_of(agent_id.encode())
    names = (f"{prefix}-{i}" for i in itertools.count())
    return list(itertools.islice((n for n in names if kafka.partition_of(n.encode()) == partition), count))


def on_partitions_apart(prefix: str, count: int, taken: set[int]) -> list[str]:
    """`count` agent ids, each on a partition of its own, none of them in `taken`."""
    chosen: dict[int, str] = {}
    for name in (f"{prefix}-{i}" for i in itertools.count()):
        partition = kafka.partition_of(name.encode())
        if partition not in taken and partition not in chosen:
            chosen[partition] = name
            if len(chosen) == count:
                return list(chosen.values())
    raise AssertionError("unreachable")


async def backlog(settings: Settings, agent_ids: list[str], per_agent: int) -> list:
    """A burst of heartbeats, all written at once: where each record is on the broker."""
    ring = keyring(settings)  # where identities are verified, each agent's beats signed with its key
    await ring.enroll(*agent_ids)
    producer = kafka.producer(settings, linger_ms=20)
    await kafka.start(producer, settings)
    topic = topic_name("heartbeats", settings.topic_prefix)
    try:
        sent = []
        for _ in range(per_agent):
            for agent_id in agent_ids:
                beat = heartbeat(agent_id)
                headers = ring.headers(beat, encode(beat))
                sent.append(await producer.send(topic, encode(beat), key=beat.key.encode(), headers=headers))
        return await asyncio.gather(*sent)
    finally:
        await producer.stop()


async def changelog_refuses_writes(settings: Settings, refuses: bool) -> None:
    """The monitor's changelog taking no record (each is larger than it allows), or taking them again."""
    changelog = f"{settings.health_app}-agent-health-changelog"
    configs = {"cleanup.policy": "compact", **({"max.message.bytes": "16"} if refuses else {})}
    admin = kafka.admin_client(settings)
    await kafka.start(admin, settings)
    try:
        await admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, changelog, configs)])
    finally:
        await admin.close()


async def monitor_read_past(settings: Settings, records) -> bool:
    """Whether the health monitor has committed its reading past each of these records."""
    admin = kafka.admin_client(settings)
    await kafka.start(admin, settings)
    try:
        committed = await admin.list_consumer_group_offsets(settings.health_app)
    finally:
        await admin.close()
    return all(
        (meta := committed.get(TopicPartition(r.topic, r.partition))) and meta.offset > r.offset for r in records
    )


def verdicts(output: MonitorOutput, agent_id: str) -> list:
    """The agent's AgentHealthChanged events in the order published, each once (a verdict
    announced again after a restart is the same event)."""
    seen, events = set(), []
    for event in output.events:
        if isinstance(event.body, AgentHealthChanged) and event.key == agent_id and event.event_id not in seen:
            seen.add(event.event_id)
            events.append(event)
    return events


def chained(events) -> bool:
    """Whether each verdict names as previous the state the one before it announced."""
    states = ["unknown"] + [e.body.current for e in events]
    return all(e.body.previous == state for e, state in zip(events, states))


async def test_a_monitor_killed_and_restarted_judges_the_agents_by_the_log_and_remembers_what_it_announced(
    settings, tmp_path
):
    """kill -9 in the middle of a run, agents beating on, a backlog to read after the restart:
    silence is judged by when the broker wrote each heartbeat and up to where the monitor has
    read, and the first verdict after the restart names the state announced last before it."""
    # Degraded after 1 s of silence, unhealthy after 3 s; a killed monitor's partitions are
    # handed on 6 s after its last word to the group.
    settings = settings.replace(group_session_timeout_s=6.0)
    policy = {"HEALTH_UNHEALTHY_AFTER_MISSED": "6"}
    await kafka.ensure_topics(settings)
    # "quiet" stops just before the kill, "stopper" while the monitor is down; the others keep
    # beating throughout, on partitions of their own, where a backlog of heartbeats of agents
    # never registered waits for the restarted monitor.
    quiet, stopper = "quiet", "stopper"
    steady = on_partitions_apart("steady", 3, {kafka.partition_of(a.encode()) for a in (quiet, stopper)})
    everyone = [*steady, stopper, quiet]

    async with MonitorOutput(settings) as output, Fleet(settings, everyone) as fleet:
        await publish_all(settings, [registered(a) for a in everyone])
        with health_monitor(settings, tmp_path, "first", policy) as first:
            await output.until(lambda: all(output.changes(a) for a in everyone), "every agent healthy")
            # The changelog takes nothing more: what the monitor decides from now on, a kill
            # makes it forget, as it forgets writes not yet flushed to the changelog.
            await changelog_refuses_writes(settings, True)
            await asyncio.sleep(0.5)
            await fleet.stop(quiet)
            with contextlib.suppress(AssertionError):  # announced or not: either is right
                await output.until(lambda: len(output.changes(quiet)) > 1, "quiet degraded", timeout=3)
            first.send_signal(signal.SIGKILL)
            assert first.wait(10) == -signal.SIGKILL
        await changelog_refuses_writes(settings, False)
        await output.read_all()
        announced_before = {a: verdicts(output, a) for a in everyone}

        await asyncio.sleep(1)
        await fleet.stop(stopper)
        # 1,500 heartbeats ahead of each steady agent's next ones: seconds of reading for the
        # restarted monitor, more than the 1 s of silence that makes an agent degraded.
        noise = [n for agent in steady for n in on_partition_of(agent, "noise", 2)]
        waiting = await backlog(settings, noise, 750)
        restarted_at = datetime.now(timezone.utc)
        with health_monitor(settings, tmp_path, "second", policy) as second:
            await output.until(
                lambda: all(output.changes(a)[-1].current == "unhealthy" for a in (stopper, quiet)),
                "the silent agents unhealthy",
                timeout=45,
            )
            await wait_for(lambda: monitor_read_past(settings, waiting), 45, "the backlog read")
            await asyncio.sleep(4 * INTERVAL_S)  # past it: judged up to the present
            assert stop(second) == 0
        await output.read_all()

    paths = {agent_id: path_of([e.body for e in verdicts(output, agent_id)]) for agent_id in everyone}
    # Beating all along: never condemned, not by the kill nor by the backlog the second monitor read.
    for agent_id in steady:
        assert [e.body.current for e in verdicts(output, agent_id)] == ["healthy"], paths
    # Every verdict names as previous the state the one before it announced, across the kill.
    for agent_id in everyone:
        assert chained(verdicts(output, agent_id)), paths
    # Stopped while no monitor ran: degraded, then unhealthy, once the monitor was back.
    assert paths[stopper] == ["unknown", "healthy", "degraded", "unhealthy"], paths
    assert all(e.occurred_at > restarted_at for e in verdicts(output, stopper)[1:])
    # Stopped just before the kill: the restarted monitor's first verdict names as previous
    # the last one announced before it, and the agent is never taken for alive again.
    before, after = announced_before[quiet], verdicts(output, quiet)[len(announced_before[quiet]) :]
    assert after and after[0].body.previous == before[-1].body.current, paths
    assert "healthy" not in [e.body.current for e in after] and after[-1].body.current == "unhealthy", paths
