"""The health monitor as it runs in production: `orchestrator serve health` against the real broker."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
from datetime import datetime, timezone

import pytest

from events.agents import AgentHealthChanged, AgentHeartbeat, AgentLoadSummarized
from events.codec import decode
from events.envelope import make_event
from events.topics import DEAD_LETTER, topic_name
from services import kafka
from services.deadletter.park import parked_from
from services.settings import Settings, as_environ
from tests.conftest import ROOT
from tests.e2e.helpers import publish_all, publish_raw, wait_for
from tests.factories import assigned, completed, deregistered, registered

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


def environment(settings: Settings, data_dir) -> dict[str, str]:
    configured = as_environ(settings)
    return {**os.environ, **configured, **FAST, "HEALTH_DATA_DIR": str(data_dir)}


@contextlib.contextmanager
def health_monitor(settings: Settings, tmp_path, name: str = "health"):
    log_path = tmp_path / f"{name}.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "services.cli", "serve", "health"],
            cwd=ROOT,
            env=environment(settings, tmp_path / "faust"),
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
            await kafka.publish(producer, settings, heartbeat(agent_id))
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
            await kafka.publish(producer, settings, event)
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
