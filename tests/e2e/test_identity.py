"""Agent identity on the real broker and database: a record that does not come from the agent it
speaks for is parked with its reason, reported once, counted, and changes nothing else."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest
from aiokafka import TopicPartition
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from events.agents import AgentRegistered
from events.codec import decode, encode
from events.envelope import make_event
from events.security import AgentKeyEnrolled
from events.tasks import TaskAssigned, TaskCompleted, TaskStarted
from events.topics import DEAD_LETTER, topic_for_event, topic_name
from events.values import Capability
from services import kafka
from services.balancer.app import reader_group
from services.deadletter.park import parked_from
from services.identity.signing import Signer, b64, load_signer
from services.metrics import ProcessorMetrics
from services.projector.bootstrap import projector_running
from services.replay import replay
from services.sdk import Agent, Completed, Task
from tests.conftest import ROOT
from tests.e2e.helpers import drop_schema, fetch, publish_all, running_projector, wait_for, wait_until_projected
from tests.e2e.test_health_e2e import health_monitor, heartbeat
from tests.e2e.test_projection_pipeline import _dump
from tests.e2e.test_routing import Traffic, environment, inbox_committed, router_and_balancer, task
from tests.signing import with_orchestrator_key

pytestmark = pytest.mark.e2e


def new_key() -> Signer:
    return Signer.of(Ed25519PrivateKey.generate())


def enrolment(agent_id: str, key: Signer):
    return make_event(
        AgentKeyEnrolled(agent_id=agent_id, key_id=key.key_id, public_key=b64(key.public_key), enrolled_by="operator"),
        producer="operator",
    )


def registration(agent_id: str, capacity: int = 1, name: str | None = None):
    return make_event(
        AgentRegistered(
            agent_id=agent_id,
            display_name=name or agent_id,
            capacity=capacity,
            capabilities=(Capability(name="python", proficiency=0.8),),
        ),
        producer=agent_id,
    )


async def publish_signed(settings, records) -> list:
    """(event, signer or None) pairs, in order, each with the headers its signer gives it; their positions."""
    producer = kafka.producer(settings)
    await kafka.start(producer, settings)
    try:
        sent = []
        for event, signer in records:
            value = encode(event)
            sent.append(
                await producer.send_and_wait(
                    topic_name(topic_for_event(event.event_type), settings.topic_prefix),
                    value,
                    key=event.key.encode(),
                    headers=signer.headers(value) if signer else None,
                )
            )
        return sent
    finally:
        await producer.stop()


async def parked(settings) -> list:
    consumer = kafka.consumer(settings)
    await kafka.start(consumer, settings)
    try:
        partitions = kafka.partitions(settings, [DEAD_LETTER])
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        found = []
        while [tp for tp in partitions if await consumer.position(tp) < ends[tp]]:
            for records in (await consumer.getmany(timeout_ms=200)).values():
                found += [parked_from(r) for r in records]
        return found
    finally:
        await consumer.stop()


async def test_forged_registrations_and_a_spoofed_outcome_are_parked_reported_and_change_nothing(settings):
    settings = settings.replace(identity_mode="verify")
    alice, bob = new_key(), new_key()
    assigned = make_event(
        TaskAssigned(agent_id="alice", task_id="task-1", attempt=1, capability="python"), producer="balancer"
    )
    metrics = ProcessorMetrics("projector")
    stop = asyncio.Event()
    async with projector_running(settings, metrics) as projector:
        running = asyncio.create_task(projector.run(stop))
        try:
            await publish_signed(
                settings,
                [
                    (enrolment("alice", alice), None),
                    (enrolment("bob", bob), None),
                    (registration("alice"), alice),
                    (registration("bob"), bob),
                    (assigned, None),
                    # forged: claims alice, signed by bob; claims alice, unsigned
                    (registration("alice", capacity=50, name="bob was here"), bob),
                    (registration("alice", capacity=99, name="nobody"), None),
                    # spoofed: bob reports on alice's task, signed by bob as himself
                    (
                        make_event(
                            TaskCompleted(task_id="task-1", agent_id="bob", attempt=1, result_summary="stolen"),
                            producer="bob",
                        ),
                        bob,
                    ),
                    (make_event(TaskStarted(task_id="task-1", agent_id="alice", attempt=1), producer="alice"), alice),
                ],
            )

            async def reported():
                rows = await fetch(
                    settings,
                    # leaving out the orchestrator's key, enrolled for this test's decisions in the secure profile
                    "SELECT kind, agent_id, key_id, detail, origin_topic, origin_offset "
                    "FROM security_events WHERE agent_id <> 'orchestrator' ORDER BY kind",
                )
                return rows if len(rows) == 5 else None

            rows = await wait_for(reported, what="two enrolments and three violations in security_events")

            async def started():
                rows = await fetch(settings, "SELECT status, assigned_agent_id FROM tasks WHERE task_id = 'task-1'")
                return rows if rows and rows[0]["status"] == "started" else None

            await wait_for(started, what="alice's genuine TaskStarted projected")
        finally:
            stop.set()
            await asyncio.wait_for(running, 30)

    kinds = {row["kind"]: row for row in rows}
    assert sorted(kinds) == ["key_enrolled", "not_assignee", "other_agents_key", "unsigned"]
    assert kinds["other_agents_key"]["agent_id"] == "alice" and kinds["other_agents_key"]["key_id"] == bob.key_id
    assert kinds["not_assignee"]["agent_id"] == "bob"
    assert kinds["not_assignee"]["origin_topic"] == settings.topic("task-outcomes")
    assert kinds["unsigned"]["detail"]["processor"] == "projector"
    # nothing of the rejected records reached the read models
    rows = await fetch(settings, "SELECT agent_id, capacity, display_name FROM agents")
    agents = {row["agent_id"]: row for row in rows}
    assert (agents["alice"]["capacity"], agents["alice"]["display_name"]) == (1, "alice")
    task = (await fetch(settings, "SELECT status, assigned_agent_id, result_summary FROM tasks"))[0]
    assert (task["status"], task["assigned_agent_id"], task["result_summary"]) == ("started", "alice", None)
    attempts = await fetch(settings, "SELECT agent_id, outcome FROM task_assignments WHERE task_id = 'task-1'")
    assert attempts == [{"agent_id": "alice", "outcome": None}]
    # each parked once, unchanged, with the reason in its headers
    dead = await parked(settings)
    assert sorted(p.error_message.split(":")[0] for p in dead) == ["not_assignee", "other_agents_key", "unsigned"]
    assert {p.error_class for p in dead} == {"IdentityViolation"}
    assert (
        decode(next(p for p in dead if p.error_message.startswith("not_assignee")).value).body.result_summary
        == "stolen"
    )
    counted = {labels["kind"]: value for labels, value in _samples(metrics, "orchestrator_security_violations_total")}
    assert counted == {"unsigned": 1.0, "other_agents_key": 1.0, "not_assignee": 1.0}
    # a rebuild refuses what the live projector refused: it equals the live read models
    copy = await replay(settings, into=f"{settings.db_schema}_copy")
    try:
        assert copy.rejected >= 3
        assert await _dump(settings, copy.schema) == await _dump(settings, settings.db_schema)
    finally:
        await drop_schema(settings, copy.schema)


def _samples(metrics: ProcessorMetrics, name: str):
    for family in metrics.registry.collect():
        for sample in family.samples:
            if sample.name == name:
                yield sample.labels, sample.value


# --- the whole loop in verify mode -------------------------------------------------


def enroll_with_the_cli(settings, tmp_path, agent_id: str) -> Path:
    key_file = tmp_path / f"{agent_id}.pem"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "services.cli",
            "agent",
            "enroll",
            agent_id,
            "--out",
            str(key_file),
            "--by",
            "operator:test",
        ],
        cwd=ROOT,
        env=environment(settings, tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return key_file


async def read_past(settings, group: str, positions) -> bool:
    """Whether the consumer group has committed past each of these records."""
    admin = kafka.admin_client(settings)
    await admin.start()
    try:
        committed = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    return all(
        (meta := committed.get(TopicPartition(p.topic, p.partition))) and meta.offset > p.offset for p in positions
    )


async def balancer_decided_all_it_took(settings) -> None:
    """Wait until the balancer has decided every record its inbox holds now."""
    inbox = TopicPartition(f"{settings.balancer_app}-inbox", 0)
    consumer = kafka.consumer(settings)
    await kafka.start(consumer, settings)
    try:
        end = (await consumer.end_offsets([inbox]))[inbox]
    finally:
        await consumer.stop()

    async def decided():
        return await inbox_committed(settings) >= end

    await wait_for(decided, what="the balancer's inbox decided")


async def read_to_end(traffic: Traffic) -> None:
    partitions = list(traffic.consumer.assignment())
    ends = await traffic.consumer.end_offsets(partitions)

    async def caught_up():
        await traffic.read()
        return all([await traffic.consumer.position(tp) >= ends[tp] for tp in partitions])

    await wait_for(caught_up, what="every event published so far read")


async def test_a_signed_agent_works_end_to_end_and_a_spoof_does_not_free_its_slot(settings, tmp_path):
    settings = await with_orchestrator_key(settings.replace(identity_mode="verify"), tmp_path)
    alice_key, bob_key = (enroll_with_the_cli(settings, tmp_path, name) for name in ("alice", "bob"))
    bob = load_signer(bob_key)
    assert oct(alice_key.stat().st_mode & 0o777) == "0o600"
    release, holding = asyncio.Event(), asyncio.Event()

    async def work(task: Task) -> Completed:
        if task.task_id == "task-1":
            holding.set()
            await release.wait()
        return Completed(result_summary=f"did {task.task_id}")

    alice = Agent(
        "alice",
        [Capability(name="python", proficiency=0.9)],
        1,
        work,
        settings=settings,
        heartbeat_interval=0.5,
        drain_timeout=10.0,
        signing_key=alice_key,
    )
    async with Traffic(settings) as traffic, running_projector(settings):
        with router_and_balancer(settings, tmp_path):
            runner = asyncio.create_task(alice.run())
            try:
                await wait_for(lambda: _ready(alice, runner), what="alice registered and reading")
                await publish_all(settings, [task("task-1")])
                await wait_for(lambda: _set(holding), what="alice working on task-1")
                await publish_all(settings, [task("task-2")])
                spoofs = await publish_signed(
                    settings,
                    [
                        # bob signs, as himself, an outcome for alice's task; then claims to be alice
                        (make_event(TaskCompleted(task_id="task-1", agent_id="bob", attempt=1), producer="bob"), bob),
                        (make_event(TaskCompleted(task_id="task-1", agent_id="alice", attempt=1), producer="bob"), bob),
                        (registration("alice", capacity=5), bob),
                    ],
                )
                await wait_for(
                    lambda: read_past(settings, reader_group(settings.balancer_app, "forwarder"), spoofs),
                    what="the balancer past the spoofs",
                )
                await balancer_decided_all_it_took(settings)
                await read_to_end(traffic)
                assert not traffic.bodies(TaskAssigned, task_id="task-2"), "a spoof freed alice's only slot"
                release.set()
                await traffic.until(
                    lambda: traffic.bodies(TaskCompleted, agent_id="alice", task_id="task-2"),
                    "alice completes task-2 once task-1 is done",
                    timeout=45,
                )
                await wait_until_projected(settings)
            finally:
                await asyncio.wait_for(alice.stop(), 30)
                await asyncio.gather(runner, return_exceptions=True)

    [second] = traffic.bodies(TaskAssigned, task_id="task-2")
    assert second.agent_id == "alice"
    tasks = await fetch(settings, "SELECT task_id, status, assigned_agent_id FROM tasks ORDER BY task_id")
    assert [(t["task_id"], t["status"], t["assigned_agent_id"]) for t in tasks] == [
        ("task-1", "completed", "alice"),
        ("task-2", "completed", "alice"),
    ]
    [agent_row] = await fetch(settings, "SELECT capacity FROM agents WHERE agent_id = 'alice'")
    assert agent_row["capacity"] == 1
    violations = await fetch(
        settings,
        "SELECT kind, agent_id, origin_offset FROM security_events "
        "WHERE kind NOT IN ('key_enrolled', 'key_revoked') ORDER BY kind",
    )
    assert [(v["kind"], v["agent_id"]) for v in violations] == [
        ("not_assignee", "bob"),
        ("other_agents_key", "alice"),
        ("other_agents_key", "alice"),
    ]
    assert sorted(v["origin_offset"] for v in violations) == sorted(p.offset for p in spoofs)


async def _ready(agent: Agent, runner: asyncio.Task) -> bool:
    if runner.done():
        runner.result()
    return agent.ready.is_set()


async def _set(event: asyncio.Event) -> bool:
    return event.is_set()


async def test_heartbeats_not_signed_by_the_agent_never_make_it_healthy(settings, tmp_path):
    settings = settings.replace(identity_mode="verify")
    alice, mallory = new_key(), new_key()
    await kafka.ensure_topics(settings)
    await publish_signed(
        settings,
        [(enrolment("alice", alice), None), (enrolment("mallory", mallory), None), (registration("alice"), alice)],
    )
    verdicts = []

    async def alice_verdicts():
        consumer = kafka.consumer(settings, settings.topic("health"))
        await kafka.start(consumer, settings)
        try:
            while True:
                for records in (await consumer.getmany(timeout_ms=100)).values():
                    verdicts.extend(
                        e.body
                        for e in map(decode, (r.value for r in records))
                        if e.event_type == "AgentHealthChanged" and e.body.agent_id == "alice"
                    )
        finally:
            await consumer.stop()

    with health_monitor(settings, tmp_path):
        watching = asyncio.create_task(alice_verdicts())
        try:
            forged = await publish_signed(settings, [(heartbeat("alice"), mallory), (heartbeat("alice"), None)])
            await wait_for(lambda: read_past(settings, settings.health_app, forged), what="the monitor past them")
            assert not verdicts, "a heartbeat alice did not sign counted as hers"
            await publish_signed(settings, [(heartbeat("alice"), alice)])

            async def healthy():
                return [v for v in verdicts if v.current == "healthy"]

            await wait_for(healthy, what="alice healthy after her own heartbeat")
        finally:
            watching.cancel()
            await asyncio.gather(watching, return_exceptions=True)
