"""A group of simulated agents as one process, so a chaos run can kill it, or make it hang.

    python -m bench.chaos.fleet --name agents-a --agents 4 --capacity 4 --seed 1

Registers its agents, heartbeats for them, and answers their assignments (started, then
completed after a few tens of milliseconds). SIGUSR1 makes it hang: it still heartbeats and
says it started what it is given, but finishes nothing until SIGUSR2. After a `kill -9` and a
restart it registers again and reads only assignments made from then on: what it held when
it died is the orchestrator's to time out and give to someone else.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import signal

from bench.evaluation.simulator.fleet import CAPABILITIES
from events.agents import AgentHeartbeat, AgentRegistered
from events.codec import decode, header_type, wanted
from events.envelope import make_event
from events.tasks import TaskAssigned, TaskCompleted, TaskStarted
from events.topics import topic_name
from events.values import Capability
from services import kafka
from services.settings import Settings

ANSWERED = frozenset({TaskAssigned.event_type})


def agent_ids(name: str, agents: int) -> list[str]:
    return [f"{name}-{n + 1}" for n in range(agents)]


class Fleet:
    def __init__(self, settings: Settings, name: str, agents: int, capacity: int, seed: int) -> None:
        self.settings = settings
        self.agents = agent_ids(name, agents)
        self.capacity = capacity
        self.rng = random.Random(seed)
        self.hanging = False
        self.running: set[asyncio.Task] = set()

    async def run(self) -> None:
        s = self.settings
        producer = kafka.producer(s)
        await kafka.start(producer, s)
        try:
            for agent in self.agents:
                registered = AgentRegistered(
                    agent_id=agent,
                    display_name=agent,
                    capacity=self.capacity,
                    capabilities=tuple(Capability(name=c, proficiency=0.8) for c in CAPABILITIES),
                )
                await kafka.publish(producer, s, make_event(registered, producer=agent))
            await producer.flush()
            print(f"fleet: {len(self.agents)} agents registered", flush=True)
            await asyncio.gather(self._heartbeat(producer), self._answer(producer))
        finally:
            for job in self.running:
                job.cancel()
            await producer.stop()

    async def _heartbeat(self, producer) -> None:
        while True:
            for agent in self.agents:
                beat = AgentHeartbeat(agent_id=agent, in_flight=0)
                await kafka.publish(producer, self.settings, make_event(beat, producer=agent))
            await asyncio.sleep(self.settings.health.heartbeat_interval_s / 2)

    async def _answer(self, producer) -> None:
        s = self.settings
        consumer = kafka.consumer(s, topic_name("assignments", s.topic_prefix), auto_offset_reset="latest")
        await kafka.start(consumer, s)
        mine = set(self.agents)
        try:
            while True:
                for records in (await consumer.getmany(timeout_ms=200)).values():
                    for record in records:
                        if not wanted(record.headers, ANSWERED):
                            continue
                        assignment = decode(record.value, header_type(record.headers))
                        if isinstance(assignment.body, TaskAssigned) and assignment.body.agent_id in mine:
                            job = asyncio.create_task(self._work(producer, assignment))
                            self.running.add(job)
                            job.add_done_callback(self.running.discard)
        finally:
            await consumer.stop()

    async def _work(self, producer, assignment) -> None:
        body = assignment.body
        started = TaskStarted(task_id=body.task_id, agent_id=body.agent_id, attempt=body.attempt)
        await kafka.publish(producer, self.settings, make_event(started, producer=body.agent_id, cause=assignment))
        await asyncio.sleep(self.rng.uniform(0.02, 0.2))
        while self.hanging:  # heartbeats go on; the work does not
            await asyncio.sleep(0.1)
        completed = TaskCompleted(
            task_id=body.task_id,
            agent_id=body.agent_id,
            attempt=body.attempt,
            success=self.rng.random() < 0.8,
            duration_ms=50.0,
            result_summary="done",
        )
        await kafka.publish(producer, self.settings, make_event(completed, producer=body.agent_id, cause=assignment))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.chaos.fleet", description=__doc__.splitlines()[0])
    parser.add_argument("--name", required=True, help="agent ids are <name>-1, <name>-2, ...")
    parser.add_argument("--agents", type=int, default=4)
    parser.add_argument("--capacity", type=int, default=4)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    fleet = Fleet(Settings.from_env(), args.name, args.agents, args.capacity, args.seed)

    def hang(on: bool):
        fleet.hanging = on
        print(f"fleet: {'hanging' if on else 'working again'}", flush=True)

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGUSR1, hang, True)
        loop.add_signal_handler(signal.SIGUSR2, hang, False)
        await fleet.run()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
