"""`orchestrator simulate`: each policy drives the real router, balancer and broker.

For every policy: a fresh topic prefix, the router (with that policy) and the balancer as
processes of their own, a simulated fleet answering its assignments, and a steady task
stream. The run is scored from the events it left on Kafka.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

from bench.evaluation.simulator.fleet import CAPABILITIES, SimulatedAgent, make_fleet, task_stream
from bench.evaluation.simulator.scoring import PolicyScore, score
from events.agents import AgentDeregistered, AgentRegistered
from events.codec import decode, encode, header_type, type_header, wanted
from events.envelope import Envelope, make_event
from events.tasks import TaskAssigned, TaskCompleted, TaskStarted, TaskSubmitted
from events.topics import EVENT_TOPICS, topic_for_event, topic_name
from events.values import Capability, CapabilityRequirement
from services import kafka
from services.identity.keyring import Keyring
from services.settings import Settings

POLICY_NAMES = ("random", "round_robin", "least_loaded", "orchestrator")
ANSWERED = frozenset({TaskAssigned.event_type})


async def simulate(
    settings: Settings,
    *,
    policies=POLICY_NAMES,
    agents: int = 12,
    tasks: int = 400,
    rate: float = 40.0,
    seed: int = 7,
    timeout_s: float = 300.0,
    log=print,
) -> dict[str, PolicyScore]:
    results = {}
    for name in policies:
        run = settings.__class__.from_env(
            {**os.environ, **_env_of(settings)},
            topic_prefix=f"{settings.topic_prefix}.sim-{uuid.uuid4().hex[:6]}-{name}",
        )
        log(f"simulate: {name}: {tasks} tasks at {rate:g}/s for {agents} agents on {run.topic_prefix}.*")
        started = time.monotonic()
        results[name] = await _run_policy(run, name, agents, tasks, rate, seed, timeout_s)
        log(f"simulate: {name}: done in {time.monotonic() - started:.0f}s: {results[name].as_dict()}")
    return results


def _env_of(settings: Settings) -> dict[str, str]:
    return {"KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers, "DATABASE_URL": settings.database_url}


async def _run_policy(
    settings: Settings, policy: str, agents: int, tasks: int, rate: float, seed: int, timeout_s: float
) -> PolicyScore:
    await kafka.ensure_topics(settings)
    fleet = make_fleet(agents, seed)
    keys = Keyring(settings)  # with identities verified, the fleet's and the decisions' keys
    await keys.enroll(*(a.agent_id for a in fleet))
    with processors(settings, policy, **await keys.orchestrator_env(Path(".local/keys"))):
        producer = kafka.producer(settings)
        await kafka.start(producer, settings)
        try:
            await register_fleet(settings, producer, fleet, keys)
            answering = asyncio.create_task(answer_assignments(settings, producer, fleet, random.Random(seed), keys))
            await until_ready(settings, producer)
            stream = task_stream(tasks, seed)
            await submit_stream(settings, producer, stream, rate)
            await _until_all_finished(settings, {t[0] for t in stream}, timeout_s)
            answering.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await answering
        finally:
            await producer.stop()
    ids = {t[0] for t in stream}
    events = [
        e
        for e in await read_events(settings)
        if getattr(e.body, "task_id", None) in ids or e.event_type.startswith("Agent")
    ]
    return score(events, {a.agent_id: a.capacity for a in fleet})


@contextlib.contextmanager
def processors(settings: Settings, policy: str, names=("router", "balancer"), **extra_env):
    env = {
        **os.environ,
        **_env_of(settings),
        "ORCHESTRATOR_TOPIC_PREFIX": settings.topic_prefix,
        "IDENTITY_MODE": settings.identity_mode,
        "ROUTER_POLICY": policy,
        "LOG_LEVEL": "WARNING",
        **extra_env,
    }
    logs = Path(".local/logs")
    logs.mkdir(parents=True, exist_ok=True)
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "services.cli", "serve", name],
            env=env,
            stdout=(logs / f"{name}.log").open("ab"),
            stderr=subprocess.STDOUT,
        )
        for name in names
    ]
    try:
        yield processes
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


async def register_fleet(
    settings: Settings, producer, fleet: list[SimulatedAgent], keys: Keyring | None = None
) -> None:
    for agent in fleet:
        await _send(
            producer,
            settings,
            make_event(
                AgentRegistered(
                    agent_id=agent.agent_id,
                    display_name=agent.agent_id,
                    capacity=agent.capacity,
                    capabilities=tuple(Capability(name=c, proficiency=p) for c, p in agent.declared.items()),
                ),
                producer=agent.agent_id,
            ),
            keys,
        )


async def until_ready(settings: Settings, producer, timeout_s: float = 120.0) -> None:
    """Submit a warm-up task and wait for it to be done: the processors are then up and caught up."""
    task_id = f"warm-up-{uuid.uuid4().hex[:8]}"
    await _send(
        producer,
        settings,
        make_event(
            TaskSubmitted(
                task_id=task_id, requirements=(CapabilityRequirement(name=CAPABILITIES[0]),), submitter="simulator"
            ),
            producer="simulator",
        ),
    )
    await producer.flush()
    await _until_all_finished(settings, {task_id}, timeout_s)


async def deregister_fleet(
    settings: Settings, producer, fleet: list[SimulatedAgent], keys: Keyring | None = None
) -> None:
    for agent in fleet:
        await _send(
            producer,
            settings,
            make_event(
                AgentDeregistered(agent_id=agent.agent_id, reason="simulation over", drain=False),
                producer=agent.agent_id,
            ),
            keys,
        )
    await producer.flush()


async def _send(producer, settings: Settings, event: Envelope, keys: Keyring | None = None) -> None:
    """`keys`: the simulated agents' enrolled keys, which sign what speaks for them when identities are verified."""
    value = encode(event)
    await producer.send(
        topic_name(topic_for_event(event.event_type), settings.topic_prefix),
        value,
        key=event.key.encode(),
        headers=keys.headers(event, value) if keys else [type_header(event)],
    )


async def submit_stream(settings, producer, stream, rate: float) -> None:
    started = time.monotonic()
    for n, (task_id, capability, priority, submitter) in enumerate(stream):
        await _send(
            producer,
            settings,
            make_event(
                TaskSubmitted(
                    task_id=task_id,
                    requirements=(CapabilityRequirement(name=capability),),
                    priority=priority,
                    submitter=submitter,
                ),
                producer=submitter,
            ),
        )
        ahead = started + (n + 1) / rate - time.monotonic()
        if ahead > 0:
            await asyncio.sleep(ahead)  # a steady stream, not a burst
    await producer.flush()


async def answer_assignments(
    settings: Settings, producer, fleet: list[SimulatedAgent], rng, keys: Keyring | None = None
) -> None:
    """Every simulated agent at once: one consumer over all assignment partitions."""
    agents = {a.agent_id: a for a in fleet}
    consumer = kafka.consumer(settings)
    await kafka.start(consumer, settings)
    consumer.subscribe([topic_name("assignments", settings.topic_prefix)])
    running: set[asyncio.Task] = set()
    try:
        while True:
            for records in (await consumer.getmany(timeout_ms=200)).values():
                for record in records:
                    if not wanted(record.headers, ANSWERED):
                        continue
                    assignment = decode(record.value, header_type(record.headers))
                    if isinstance(assignment.body, TaskAssigned) and assignment.body.agent_id in agents:
                        job = asyncio.create_task(
                            _work(settings, producer, agents[assignment.body.agent_id], assignment, rng, keys)
                        )
                        running.add(job)
                        job.add_done_callback(running.discard)
    finally:
        for job in running:
            job.cancel()
        await consumer.stop()


async def _work(settings, producer, agent: SimulatedAgent, assignment: Envelope, rng, keys=None) -> None:
    body = assignment.body
    started = TaskStarted(task_id=body.task_id, agent_id=agent.agent_id, attempt=body.attempt)
    await _send(producer, settings, make_event(started, producer=agent.agent_id, cause=assignment), keys)
    success, duration_ms = agent.attempt(body.capability, rng) if body.capability in agent.skill else (False, 50.0)
    await asyncio.sleep(duration_ms / 1000.0)
    await _send(
        producer,
        settings,
        make_event(
            TaskCompleted(
                task_id=body.task_id,
                agent_id=agent.agent_id,
                attempt=body.attempt,
                success=success,
                duration_ms=round(duration_ms, 3),
                result_summary="ok" if success else "wrong answer",
            ),
            producer=agent.agent_id,
            cause=assignment,
        ),
        keys,
    )


async def _until_all_finished(settings: Settings, task_ids: set[str], timeout_s: float) -> None:
    outcomes = topic_name("task-outcomes", settings.topic_prefix)
    consumer = kafka.consumer(settings)
    await kafka.start(consumer, settings)
    consumer.subscribe([outcomes])
    pending = set(task_ids)
    deadline = time.monotonic() + timeout_s
    try:
        while pending and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for record in records:
                    event = decode(record.value)
                    if event.event_type == "TaskCompleted":
                        pending.discard(event.body.task_id)
    finally:
        await consumer.stop()
    if pending:
        raise TimeoutError(f"{len(pending)} of {len(task_ids)} tasks unfinished after {timeout_s:.0f}s")


async def read_events(settings: Settings) -> list[Envelope]:
    ends = await kafka.end_offsets(settings, EVENT_TOPICS)
    consumer = kafka.consumer(settings)
    await kafka.start(consumer, settings)
    pending = {tp: end for tp, end in ends.items() if end}
    consumer.assign(list(pending))
    events: list[Envelope] = []
    try:
        while pending:
            for tp, records in (await consumer.getmany(*pending, timeout_ms=1000)).items():
                events += [decode(r.value) for r in records if r.offset < pending[tp]]
                if records and records[-1].offset + 1 >= pending[tp]:
                    del pending[tp]
    finally:
        await consumer.stop()
    return events


def table(results: dict[str, PolicyScore]) -> str:
    head = f"{'policy':14} {'success':>8} {'utilization':>12} {'p95 wait ms':>12} {'violations':>11} {'fairness':>9}"
    lines = [head, "-" * len(head)]
    for name, r in results.items():
        lines.append(
            f"{name:14} {r.success_rate:8.3f} {r.utilization:12.3f} {r.p95_wait_ms:12.0f} "
            f"{r.capacity_violations:11d} {r.jain_fairness:9.3f}"
        )
    return "\n".join(lines)
