"""Router and balancer as they run in production: `orchestrator serve router|balancer` on the real broker.

The tests play the agents: they register, read their assignments and report outcomes.
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import subprocess
import sys
from collections import Counter
from datetime import datetime, timezone

import pytest
from aiokafka import TopicPartition

from bench.evaluation.whatif.command import whatif
from events.agents import AgentHealthChanged, AgentRegistered
from events.codec import EventDecodeError, decode
from events.envelope import make_event
from events.tasks import TaskAssigned, TaskCompleted, TaskQueued, TaskReassigned, TaskRouted, TaskSubmitted
from events.topics import DEAD_LETTER, topic_name
from events.values import Capability, CapabilityRequirement
from services import kafka
from services.balancer.app import reader_group
from services.deadletter.park import Parked, parked_from
from services.kafka import partition_of
from services.settings import Settings, as_environ
from tests.conftest import ROOT
from tests.e2e.helpers import publish_all, publish_raw, wait_for
from tests.signing import signature

pytestmark = pytest.mark.e2e

TUNING = {
    "ROUTER_TEMPERATURE": "0.01",
    "ROUTER_RETRY_INTERVAL_S": "0.2",
    "BALANCER_TICK_INTERVAL_S": "0.5",
    "BALANCER_START_TIMEOUT_S": "600",
    "BALANCER_SNAPSHOT_EVERY": "25",
    "BALANCER_SESSION_TIMEOUT_S": "6",
}


def environment(settings: Settings, tmp_path) -> dict[str, str]:
    configured = as_environ(settings)
    return {
        **os.environ,
        **configured,
        **TUNING,
        "ROUTER_DATA_DIR": str(tmp_path / "faust"),
        "BALANCER_DATA_DIR": str(tmp_path / "faust"),
    }


@contextlib.contextmanager
def serving(name: str, settings: Settings, tmp_path, run: str = ""):
    log_path = tmp_path / f"{name}{run}.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "services.cli", "serve", name],
            cwd=ROOT,
            env=environment(settings, tmp_path),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(30)
        print(f"--- {name}{run} log (tail) ---\n" + log_path.read_text(errors="replace")[-4000:])


@contextlib.contextmanager
def router_and_balancer(settings: Settings, tmp_path):
    with serving("router", settings, tmp_path) as router, serving("balancer", settings, tmp_path) as balancer:
        yield router, balancer


def agent(agent_id: str, capacity: int = 2, **skills: float):
    return make_event(
        AgentRegistered(
            agent_id=agent_id,
            display_name=agent_id,
            capacity=capacity,
            capabilities=tuple(Capability(name=n, proficiency=p) for n, p in skills.items()),
        ),
        producer=agent_id,
    )


def task(task_id: str, capability: str = "python"):
    return make_event(
        TaskSubmitted(
            task_id=task_id,
            submitter="client-1",
            payload={"n": task_id},
            requirements=(CapabilityRequirement(name=capability, min_proficiency=0.5),),
        ),
        producer="client-1",
    )


def done(assignment: TaskAssigned):
    return make_event(
        TaskCompleted(
            task_id=assignment.task_id, agent_id=assignment.agent_id, attempt=assignment.attempt, duration_ms=5.0
        ),
        producer=assignment.agent_id,
        occurred_at=datetime.now(timezone.utc),
    )


class Traffic:
    """Everything on the tasks, assignments and task-outcomes topics so far, as the agents see it."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        topics = [topic_name(name, settings.topic_prefix) for name in ("tasks", "assignments", "task-outcomes")]
        self.consumer = kafka.consumer(settings, *topics)
        self.producer = kafka.producer(settings)
        self.events = []
        self.completed: set[tuple[str, int]] = set()

    async def __aenter__(self):
        await kafka.ensure_topics(self.settings)
        await kafka.start(self.consumer, self.settings)
        await kafka.start(self.producer, self.settings)
        return self

    async def __aexit__(self, *exc) -> None:
        await self.consumer.stop()
        await self.producer.stop()

    async def read(self) -> None:
        for records in (await self.consumer.getmany(timeout_ms=100)).values():
            for record in records:
                with contextlib.suppress(EventDecodeError):  # what a test published to be parked
                    self.events.append(decode(record.value))

    def bodies(self, kind, **where) -> list:
        return [
            e.body
            for e in self.events
            if isinstance(e.body, kind) and all(getattr(e.body, k) == v for k, v in where.items())
        ]

    def envelopes(self, kind) -> list:
        return [e for e in self.events if isinstance(e.body, kind)]

    async def until(self, condition, what: str, timeout: float = 30.0):
        async def check():
            await self.read()
            return condition()

        return await wait_for(check, timeout=timeout, what=what)

    async def work(self, until, what: str, timeout: float = 45.0) -> None:
        """Play the agents: finish every new assignment at once, until the condition holds."""

        async def check():
            await self.read()
            for assignment in self.bodies(TaskAssigned):
                if (assignment.task_id, assignment.attempt) not in self.completed:
                    self.completed.add((assignment.task_id, assignment.attempt))
                    outcome = done(assignment)
                    await kafka.publish(self.producer, self.settings, outcome, await signature(self.settings, outcome))
            return until()

        await wait_for(check, timeout=timeout, what=what)
        await self.until(lambda: len(self.bodies(TaskCompleted)) >= len(self.completed), "the outcomes read back")


def most_in_flight(traffic: Traffic) -> Counter:
    """The most attempts each agent held at once, replaying assignments and outcomes in time order."""
    unique = {e.event_id: e for e in traffic.envelopes(TaskAssigned) + traffic.envelopes(TaskCompleted)}
    # An assignment a completion made room for is stamped after that completion was received.
    timeline = sorted(unique.values(), key=lambda e: (e.occurred_at, isinstance(e.body, TaskAssigned)))
    holding: dict[str, set] = {}
    most = Counter()
    for event in timeline:
        attempts = holding.setdefault(event.body.agent_id, set())
        if isinstance(event.body, TaskAssigned):
            attempts.add((event.body.task_id, event.body.attempt))
        else:
            attempts.discard((event.body.task_id, event.body.attempt))
        most[event.body.agent_id] = max(most[event.body.agent_id], len(attempts))
    return most


async def inbox_committed(settings: Settings) -> int:
    admin = kafka.admin_client(settings)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(reader_group(settings.balancer_app, "decider"))
    finally:
        await admin.close()
    return sum(meta.offset for tp, meta in offsets.items() if tp.topic == f"{settings.balancer_app}-inbox")


async def parked_by(settings: Settings, processors: set[str]) -> list[Parked]:
    consumer = kafka.consumer(settings, topic_name(DEAD_LETTER, settings.topic_prefix))
    await kafka.start(consumer, settings)
    parked: list[Parked] = []

    async def read():
        for records in (await consumer.getmany(timeout_ms=100)).values():
            parked.extend(p for p in map(parked_from, records) if p.processor in processors)
        return {p.processor for p in parked} == processors

    try:
        await wait_for(read, timeout=20, what=f"messages parked by {', '.join(sorted(processors))}")
        return parked
    finally:
        await consumer.stop()


def assert_each_attempt_decided_once(traffic: Traffic) -> None:
    decisions: dict[tuple[str, int], set[str]] = {}
    for event in traffic.envelopes(TaskAssigned):
        decisions.setdefault((event.body.task_id, event.body.attempt), set()).add(event.event_id)
    twice = {attempt: ids for attempt, ids in decisions.items() if len(ids) > 1}
    assert not twice, f"attempts assigned by more than one decision: {twice}"


async def test_a_task_is_routed_then_assigned_to_a_capable_agent(settings, tmp_path):
    async with Traffic(settings) as traffic:
        with router_and_balancer(settings, tmp_path):
            await publish_all(settings, [agent("py-1", python=0.9), agent("sql-1", sql=0.9)])
            await publish_raw(settings, "tasks", b"t-0", b"{not json")
            await publish_all(settings, [task("t-1")])
            [assignment] = await traffic.until(lambda: traffic.envelopes(TaskAssigned), "t-1 assigned")
            parked = await parked_by(settings, {"router", "balancer"})

    [routed] = [e for e in traffic.envelopes(TaskRouted)]
    assert routed.body.chosen_agent_id == "py-1" and [c.agent_id for c in routed.body.candidates] == ["py-1"]
    assert routed.producer == "router" and routed.body.propensity == 1.0
    assert (assignment.body.agent_id, assignment.body.attempt, assignment.body.payload) == ("py-1", 1, {"n": "t-1"})
    assert assignment.causation_id == routed.event_id and assignment.producer == "balancer"
    assert {(p.processor, p.origin_topic, p.error_class) for p in parked} == {
        (name, topic_name("tasks", settings.topic_prefix), "MalformedEvent") for name in ("router", "balancer")
    }


async def test_a_burst_of_tasks_never_puts_an_agent_beyond_capacity_and_the_queue_drains(settings, tmp_path):
    async with Traffic(settings) as traffic:
        with router_and_balancer(settings, tmp_path):
            await publish_all(settings, [agent(f"worker-{n}", capacity=2, python=0.6 + n / 10) for n in range(3)])
            await publish_all(settings, [task(f"t-{n}") for n in range(60)])
            await traffic.until(lambda: len(traffic.bodies(TaskQueued)) >= 40, "the burst to queue up")
            await traffic.work(lambda: len(traffic.completed) >= 60, "every task to be assigned and finished")

    assert {e.task_id for e in traffic.bodies(TaskAssigned)} == {f"t-{n}" for n in range(60)}
    most = most_in_flight(traffic)
    assert set(most) == {"worker-0", "worker-1", "worker-2"} and max(most.values()) == 2, most
    assert_each_attempt_decided_once(traffic)
    # Most tasks waited and went to whichever agent freed up: each assignment still says how likely it was,
    # so offline evaluation counts every decision, once.
    assert all(0 < a.propensity <= 1 for a in traffic.bodies(TaskAssigned) if a.attempt == 1)
    run = await whatif(settings, ["random", "greedy"], resamples=50, store=False, out=io.StringIO())
    assert len(run.decisions) == 60 and all(r.estimates.decisions == 60 for r in run.results)


async def test_a_task_no_agent_can_take_waits_until_one_registers(settings, tmp_path):
    async with Traffic(settings) as traffic:
        with router_and_balancer(settings, tmp_path):
            await publish_all(settings, [agent("py-1", python=0.9)])
            await publish_all(settings, [task("t-rust", capability="rust")])
            [queued] = await traffic.until(lambda: traffic.bodies(TaskQueued, task_id="t-rust"), "t-rust queued")
            assert "rust>=0.5" in queued.reason and not traffic.bodies(TaskAssigned)

            await publish_all(settings, [agent("rust-1", rust=0.7)])
            [assignment] = await traffic.until(
                lambda: traffic.bodies(TaskAssigned, task_id="t-rust"), "t-rust assigned once a rust agent registered"
            )
    assert assignment.agent_id == "rust-1"


async def test_a_waiting_task_outlives_the_router_that_queued_it(settings, tmp_path):
    async with Traffic(settings) as traffic:
        with serving("balancer", settings, tmp_path):
            with serving("router", settings, tmp_path, run="-first") as first:
                await publish_all(settings, [agent("py-1", python=0.9)])
                await publish_all(settings, [task("t-go", capability="go")])
                await traffic.until(lambda: traffic.bodies(TaskQueued, task_id="t-go"), "t-go queued")
                await wait_for(
                    lambda: tasks_committed_past(settings, "t-go"),
                    what="the first router to commit past the submission",
                )
                first.send_signal(signal.SIGKILL)
                first.wait()
            # The second router reads the tasks topic only from the first one's commit on:
            # it knows of t-go from the waiting topic alone.
            with serving("router", settings, tmp_path, run="-second"):
                await publish_all(settings, [agent("go-1", go=0.8)])
                [assignment] = await traffic.until(
                    lambda: traffic.bodies(TaskAssigned, task_id="t-go"),
                    "t-go assigned once a go agent registered",
                    timeout=60,
                )
    assert assignment.agent_id == "go-1"
    assert len(traffic.bodies(TaskRouted, task_id="t-go")) == 1


async def tasks_committed_past(settings: Settings, task_id: str) -> bool:
    partition = partition_of(task_id.encode())
    admin = kafka.admin_client(settings)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(f"{settings.router_app}-tasks")
    finally:
        await admin.close()
    meta = offsets.get(TopicPartition(topic_name("tasks", settings.topic_prefix), partition))
    return meta is not None and meta.offset > 0


async def t1_held_by_good_with_backup_standing_by(settings: Settings, traffic: Traffic, good_capacity: int = 2):
    """Agents `good` and `backup`, both known to the router, and task t-1 assigned to `good`, the better one."""
    await publish_all(
        settings,
        [
            agent("good", capacity=good_capacity, python=0.95, **{"probe-good": 0.9}),
            agent("backup", capacity=3, python=0.6, **{"probe-backup": 0.9}),
        ],
    )
    # The registry reaches the router on its own path: make sure it knows both agents.
    await publish_all(settings, [task("probe-1", "probe-good"), task("probe-2", "probe-backup")])
    await traffic.until(
        lambda: (
            len(traffic.bodies(TaskAssigned, task_id="probe-1")) + len(traffic.bodies(TaskAssigned, task_id="probe-2"))
            == 2
        ),
        "both agents known",
    )
    await publish_all(settings, [task("t-1")])
    [first] = await traffic.until(lambda: traffic.bodies(TaskAssigned, task_id="t-1"), "t-1 assigned")
    assert first.agent_id == "good"


async def test_the_tasks_of_an_agent_found_unhealthy_are_reassigned(settings, tmp_path):
    async with Traffic(settings) as traffic:
        with router_and_balancer(settings, tmp_path):
            await t1_held_by_good_with_backup_standing_by(settings, traffic)
            await publish_all(
                settings,
                [
                    make_event(
                        AgentHealthChanged(
                            agent_id="good",
                            previous="healthy",
                            current="unhealthy",
                            missed_heartbeats=4,
                            in_flight_task_ids=("t-1",),
                        ),
                        producer="health",
                    )
                ],
            )
            await traffic.until(lambda: traffic.bodies(TaskAssigned, task_id="t-1", attempt=2), "t-1 reassigned")
            await publish_all(settings, [task("t-2")])
            [later] = await traffic.until(lambda: traffic.bodies(TaskAssigned, task_id="t-2"), "t-2 assigned")

    [reassigned] = traffic.bodies(TaskReassigned, task_id="t-1")
    assert (reassigned.from_agent_id, reassigned.to_agent_id, reassigned.attempt) == ("good", "backup", 2)
    assert traffic.bodies(TaskAssigned, task_id="t-1", attempt=2)[0].agent_id == "backup"
    assert later.agent_id == "backup"  # the router no longer offers the unhealthy agent


async def test_a_balancer_killed_mid_stream_resumes_without_over_assigning_or_deciding_twice(settings, tmp_path):
    capacities = {"w-1": 1, "w-2": 2, "w-3": 3}
    async with Traffic(settings) as traffic:
        with serving("router", settings, tmp_path):
            with serving("balancer", settings, tmp_path, run="-first") as first:
                await publish_all(settings, [agent(a, capacity=c, python=0.8) for a, c in capacities.items()])
                await publish_all(settings, [task(f"t-{n}") for n in range(80)])
                await traffic.work(lambda: len(traffic.completed) >= 30, "30 tasks finished")
                await wait_for(lambda: inbox_committed(settings), what="the first balancer to commit a position")
                first.send_signal(signal.SIGKILL)
                first.wait()
            assigned_before_the_kill = {e.task_id for e in traffic.bodies(TaskAssigned)}
            # The agents finish what they hold while no balancer runs.
            await traffic.work(lambda: True, "the agents to finish what they hold")
            with serving("balancer", settings, tmp_path, run="-second"):
                await traffic.work(
                    lambda: len({t for t, _ in traffic.completed}) >= 80, "all 80 tasks finished", timeout=60
                )

    assert len(assigned_before_the_kill) < 80, "the balancer was killed mid-stream"
    assert {e.task_id for e in traffic.bodies(TaskAssigned)} == {f"t-{n}" for n in range(80)}
    most = most_in_flight(traffic)
    assert all(most[a] <= c for a, c in capacities.items()), most
    assert_each_attempt_decided_once(traffic)
    # Decisions the killed balancer had published are recognised by their ids and not sent again.
    assignments = traffic.envelopes(TaskAssigned)
    assert len(assignments) == len({e.event_id for e in assignments})


async def test_a_submission_delivered_again_is_decided_once_even_by_a_restarted_router(settings, tmp_path):
    again = task("t-again")
    async with Traffic(settings) as traffic:
        with serving("router", settings, tmp_path, run="-first"):
            await publish_all(settings, [agent("py-1", python=0.9)])
            await publish_all(settings, [again, again, task("t-next")])  # a client that sent it twice
            await traffic.until(lambda: traffic.bodies(TaskRouted, task_id="t-next"), "t-next routed")
        with serving("router", settings, tmp_path, run="-second"):
            await publish_all(settings, [again, task("t-last")])  # and once more, to a router that restarted
            await traffic.until(lambda: traffic.bodies(TaskRouted, task_id="t-last"), "t-last routed")

    assert len(traffic.bodies(TaskRouted, task_id="t-again")) == 1
