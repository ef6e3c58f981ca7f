"""Agent-side figures: the SDK's overhead per task, and how soon silence becomes a verdict.

    python -m bench.pipeline.agents --tasks 2000

SDK: an agent with a handler that does nothing takes `--tasks` assignments; the time from
publishing an assignment to reading its TaskCompleted is the SDK's (and broker's) cost.
Health: an agent heartbeats, then stops; the time from its degraded deadline (last
heartbeat + degraded-after x interval) to the AgentHealthChanged event is measured.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime, timezone

from bench.machine import describe
from events.agents import AgentHeartbeat, AgentRegistered
from events.codec import decode, encode, type_header
from events.envelope import make_event
from events.tasks import TaskAssigned
from events.topics import topic_for_event, topic_name
from events.values import Capability
from services import kafka
from services.identity.keyring import Keyring
from services.sdk import Agent, Completed
from services.settings import Settings, as_environ


def _pct(values, q):
    values = sorted(values)
    return round(values[min(len(values) - 1, int(q * len(values)))], 3)


async def sdk_overhead(settings: Settings, tasks: int, capacity: int) -> dict:
    async def nothing(task):
        return Completed()

    agent = Agent(
        "bench-agent",
        [Capability(name="echo", proficiency=1.0)],
        capacity,
        nothing,
        settings=settings,
        heartbeat_interval=5,
    )
    runner = asyncio.create_task(agent.run())
    await asyncio.wait_for(agent.ready.wait(), 60)
    producer = kafka.producer(settings)
    await kafka.start(producer, settings)
    reader = kafka.consumer(settings)
    await kafka.start(reader, settings)
    reader.assign(kafka.partitions(settings, [topic_for_event("TaskCompleted")]))
    sent: dict[str, float] = {}
    latencies = []
    started = time.perf_counter()
    for n in range(tasks):
        event = make_event(
            TaskAssigned(agent_id="bench-agent", task_id=f"b{n}", attempt=1, capability="echo"), producer="bench"
        )
        sent[event.body.task_id] = time.perf_counter()
        await producer.send(
            topic_name(topic_for_event("TaskAssigned"), settings.topic_prefix),
            encode(event),
            key=b"bench-agent",
            headers=[type_header(event)],
        )
    await producer.flush()
    while len(latencies) < tasks:
        for records in (await reader.getmany(timeout_ms=500)).values():
            for record in records:
                event = decode(record.value)
                if event.event_type == "TaskCompleted":
                    latencies.append((time.perf_counter() - sent[event.body.task_id]) * 1000)
    elapsed = time.perf_counter() - started
    await agent.stop()
    await runner
    await reader.stop()
    await producer.stop()
    return {
        "tasks": tasks,
        "capacity": capacity,
        "tasks_per_second": round(tasks / elapsed),
        "cpu_ms_per_task_upper_bound": round(elapsed / tasks * 1000, 3),
        "assignment_to_completed_ms": {"p50": _pct(latencies, 0.5), "p99": _pct(latencies, 0.99)},
    }


async def health_delay(settings: Settings, interval: float = 1.0, degraded_after: int = 2) -> dict:
    env = {
        **os.environ,
        **as_environ(settings),
        "HEALTH_HEARTBEAT_INTERVAL_S": str(interval),
        "HEALTH_DEGRADED_AFTER_MISSED": str(degraded_after),
        "HEALTH_UNHEALTHY_AFTER_MISSED": str(degraded_after + 2),
        "HEALTH_TICK_INTERVAL_S": "0.1",
        "HEALTH_DATA_DIR": tempfile.mkdtemp(),
        "LOG_LEVEL": "WARNING",
    }
    keys = Keyring(settings)  # with identities verified, the silent agent's records signed with its key
    await keys.enroll("silent-1")
    process = subprocess.Popen([sys.executable, "-m", "services.cli", "serve", "health"], env=env)
    producer = kafka.producer(settings)
    await kafka.start(producer, settings)
    reader = kafka.consumer(settings)
    await kafka.start(reader, settings)
    reader.assign(kafka.partitions(settings, [topic_for_event("AgentHealthChanged")]))
    try:

        async def send(body):
            event = make_event(body, producer="bench-health")
            value = encode(event)
            await producer.send_and_wait(
                topic_name(topic_for_event(event.event_type), settings.topic_prefix),
                value,
                key=event.key.encode(),
                headers=keys.headers(event, value),
            )
            return event

        await send(
            AgentRegistered(
                agent_id="silent-1",
                display_name="silent",
                capacity=1,
                capabilities=(Capability(name="x", proficiency=0.5),),
            )
        )
        last = None
        healthy = False
        while not healthy:  # heartbeat until the monitor has seen the agent alive
            last = await send(AgentHeartbeat(agent_id="silent-1", in_flight=0))
            for records in (await reader.getmany(timeout_ms=int(interval * 1000))).values():
                healthy |= any(decode(r.value).event_type == "AgentHealthChanged" for r in records)
        deadline = last.occurred_at.timestamp() + degraded_after * interval
        while True:
            for records in (await reader.getmany(timeout_ms=200)).values():
                for record in records:
                    event = decode(record.value)
                    if event.event_type == "AgentHealthChanged" and event.body.current == "degraded":
                        seen = datetime.now(timezone.utc).timestamp()
                        return {
                            "heartbeat_interval_s": interval,
                            "degraded_after_missed": degraded_after,
                            "deadline_to_event_ms": round((event.occurred_at.timestamp() - deadline) * 1000, 1),
                            "deadline_to_event_read_ms": round((seen - deadline) * 1000, 1),
                        }
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
        await reader.stop()
        await producer.stop()


async def run(tasks: int, capacity: int) -> dict:
    settings = Settings.from_env(topic_prefix=f"bench-agents-{uuid.uuid4().hex[:6]}")
    await kafka.ensure_topics(settings)
    return {
        "sdk": await sdk_overhead(settings, tasks, capacity),
        "health": await health_delay(settings),
        "machine": describe(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--capacity", type=int, default=16)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args.tasks, args.capacity)), indent=2))


if __name__ == "__main__":
    main()
