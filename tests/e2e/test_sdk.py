"""The agent SDK against the real broker: registration, its own partition, capacity, outcomes,
restarts without duplicates, and draining on SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from events.codec import decode
from events.envelope import Envelope, make_event
from events.tasks import TaskAssigned
from events.topics import TOPICS
from services import kafka
from services.sdk import Agent, Capability, Completed, Failed, Rejected, Task
from services.sdk.partitions import partition_for
from tests.e2e.helpers import publish_all, publish_raw, wait_for

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
ENDINGS = {"TaskCompleted", "TaskFailed", "TaskRejected", "TaskHandedOff"}
TIMEOUT = 20.0


@pytest.fixture(autouse=True)
async def topics(settings):
    await kafka.ensure_topics(settings)


# --- plumbing -------------------------------------------------------------------------


class TopicLog:
    """Every event on one topic, read as consumers of agent reports should: read_committed."""

    def __init__(self, settings, logical_name: str) -> None:
        self.settings = settings
        self.spec = next(t for t in TOPICS if t.name == logical_name)
        self.events: list[Envelope] = []
        self.consumer = None

    async def __aenter__(self) -> "TopicLog":
        self.consumer = kafka.consumer(self.settings, isolation_level="read_committed")
        await kafka.start(self.consumer, self.settings)
        self.consumer.assign(kafka.partitions(self.settings, [self.spec]))
        await self.consumer.seek_to_beginning()
        return self

    async def __aexit__(self, *_) -> None:
        await self.consumer.stop()

    async def until(self, condition, what: str, timeout: float = TIMEOUT) -> list[Envelope]:
        deadline = time.monotonic() + timeout
        while not condition(self.events):
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"timed out after {timeout}s waiting for {what}; saw {[(e.event_type, e.key) for e in self.events]}"
                )
            for records in (await self.consumer.getmany(timeout_ms=100)).values():
                self.events += [decode(r.value) for r in records]
        return self.events


def of_type(events, event_type: str, **fields) -> list[Envelope]:
    return [e for e in events if e.event_type == event_type and all(getattr(e.body, k) == v for k, v in fields.items())]


def endings(events, task_id: str | None = None) -> list[Envelope]:
    return [e for e in events if e.event_type in ENDINGS and (task_id is None or e.body.task_id == task_id)]


def ended(*task_ids: str):
    return lambda events: {e.body.task_id for e in endings(events)} >= set(task_ids)


def assignment(task_id: str, agent_id: str = "agent-1", capability: str = "echo", **payload) -> Envelope:
    return make_event(
        TaskAssigned(task_id=task_id, agent_id=agent_id, attempt=1, capability=capability, payload=payload),
        producer="balancer",
    )


def an_agent(settings, handler, agent_id: str = "agent-1", capacity: int = 4, **options) -> Agent:
    options = {"heartbeat_interval": 0.3, "drain_timeout": 10.0, **options}
    return Agent(agent_id, [Capability(name="echo", proficiency=0.9)], capacity, handler, settings=settings, **options)


def same_partition_as(agent_id: str, *, same: bool = True) -> str:
    wanted = partition_for(agent_id, 6)
    return next(f"other-{i}" for i in range(1000) if (partition_for(f"other-{i}", 6) == wanted) == same)


@contextlib.asynccontextmanager
async def running(agent: Agent, *, drain: bool = True):
    runner = asyncio.create_task(agent.run())
    ready = asyncio.create_task(agent.ready.wait())
    await asyncio.wait({runner, ready}, timeout=TIMEOUT, return_when=asyncio.FIRST_COMPLETED)
    if runner.done():
        runner.result()
    assert ready.done(), "the agent did not get ready"
    try:
        yield runner
    finally:
        if drain:
            await asyncio.wait_for(agent.stop(), TIMEOUT)
            runner.result()
        else:  # as abrupt as it gets inside one process: no drain, no deregistration
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)


async def until(condition, what: str, timeout: float = TIMEOUT) -> None:
    await wait_for(condition, timeout, what, every=0.02)


async def echo(task: Task) -> Completed:
    return Completed(result_summary=f"echo {task.task_id}")


# --- the tests ------------------------------------------------------------------------


async def test_an_agent_registers_heartbeats_and_deregisters(settings):
    agent = an_agent(
        settings,
        echo,
        capacity=3,
        labels={"zone": "eu"},
        version="1.2.3",
        capacity_per_capability={"echo": 2},
        cost_per_task=0.5,
    )
    async with TopicLog(settings, "agents") as agents, TopicLog(settings, "heartbeats") as heartbeats:
        async with running(agent):
            registered = of_type(
                await agents.until(lambda es: of_type(es, "AgentRegistered"), "registration"), "AgentRegistered"
            )
            beats = of_type(await heartbeats.until(lambda es: len(es) >= 2, "two heartbeats"), "AgentHeartbeat")
        await agents.until(lambda es: of_type(es, "AgentDeregistered"), "deregistration")

    body = registered[0].body
    assert (body.agent_id, body.capacity, body.capacity_per_capability, body.cost_per_task, body.labels) == (
        "agent-1",
        3,
        {"echo": 2},
        0.5,
        {"zone": "eu"},
    )
    assert body.capabilities == (Capability(name="echo", proficiency=0.9),) and body.sdk_version
    assert registered[0].producer == "agent-1" and registered[0].key == "agent-1"
    beat = beats[-1].body
    assert (beat.in_flight, beat.queue_depth, beat.agent_version) == (0, 0, "1.2.3")
    assert beat.memory_mb > 1 and beat.cpu_percent is not None
    assert of_type(agents.events, "AgentDeregistered")[0].body.drain is True


async def test_an_agent_runs_only_its_own_assignments(settings):
    ran = []

    async def record(task: Task) -> Completed:
        ran.append(task.task_id)
        return Completed()

    neighbour, stranger = same_partition_as("agent-1"), same_partition_as("agent-1", same=False)
    agent = an_agent(settings, record)
    async with TopicLog(settings, "task-outcomes") as outcomes, running(agent):
        assert agent.partition.partition == partition_for("agent-1", 6)
        await publish_all(
            settings,
            [
                assignment("mine-1"),
                assignment("neighbours", neighbour),
                assignment("strangers", stranger),
                assignment("mine-2"),
            ],
        )
        # mine-2 comes after the neighbour's assignment on the same partition: by the time it
        # has ended, the neighbour's has been read, and skipped.
        await outcomes.until(ended("mine-1", "mine-2"), "both own tasks to end")

    assert sorted(ran) == ["mine-1", "mine-2"]
    assert {e.body.task_id for e in outcomes.events} == {"mine-1", "mine-2"}


async def test_no_more_than_capacity_tasks_run_at_once(settings):
    gate = asyncio.Event()
    running_now: Counter[str] = Counter()
    most: Counter[str] = Counter()

    async def gated(task: Task) -> Completed:
        running_now[task.capability] += 1
        running_now["all"] += 1
        for key in (task.capability, "all"):
            most[key] = max(most[key], running_now[key])
        await gate.wait()
        running_now[task.capability] -= 1
        running_now["all"] -= 1
        return Completed()

    agent = Agent(
        "agent-1",
        [Capability(name="gpu", proficiency=0.9), Capability(name="cpu", proficiency=0.9)],
        3,
        gated,
        capacity_per_capability={"gpu": 1},
        heartbeat_interval=0.2,
        settings=settings,
    )
    tasks = [assignment(f"gpu-{i}", capability="gpu") for i in range(3)] + [
        assignment(f"cpu-{i}", capability="cpu") for i in range(3)
    ]
    async with (
        TopicLog(settings, "heartbeats") as heartbeats,
        TopicLog(settings, "task-outcomes") as outcomes,
        running(agent),
    ):
        await publish_all(settings, tasks)
        # All six read, three running (one gpu, two cpu), three waiting for a slot.
        await heartbeats.until(
            lambda es: any(e.body.in_flight == 3 and e.body.queue_depth == 3 for e in es),
            "a heartbeat with 3 running and 3 queued",
        )
        assert (running_now["gpu"], running_now["cpu"]) == (1, 2)
        gate.set()
        await outcomes.until(ended(*(t.body.task_id for t in tasks)), "every task to end")

    assert most == Counter({"all": 3, "cpu": 2, "gpu": 1})
    assert len(of_type(outcomes.events, "TaskCompleted")) == 6


async def test_each_way_a_handler_can_end_is_reported(settings):
    async def varied(task: Task) -> Completed:
        match task.payload["do"]:
            case "complete":
                return Completed(result_summary="fine", metrics={"tokens": 3.0})
            case "fail":
                raise Failed("quota exceeded", retryable=False)
            case "reject":
                raise Rejected("not my kind of task")
            case "crash":
                raise ZeroDivisionError("division by zero")
            case "hand off":
                await task.hand_off(requirements=["sql"], reason="needs a database")

    agent = an_agent(settings, varied)
    names = ("complete", "fail", "reject", "crash", "hand off")
    sent = {name: assignment(f"task-{name.replace(' ', '-')}", do=name) for name in names}
    async with TopicLog(settings, "task-outcomes") as outcomes, running(agent):
        await publish_all(settings, list(sent.values()))
        await outcomes.until(ended(*(a.body.task_id for a in sent.values())), "every task to end")

    def outcome(name: str) -> Envelope:
        [only] = endings(outcomes.events, sent[name].body.task_id)
        assert only.producer == "agent-1" and only.causation_id == sent[name].event_id
        return only

    completed = outcome("complete").body
    assert (completed.result_summary, completed.metrics, completed.success) == ("fine", {"tokens": 3.0}, True)
    assert completed.duration_ms >= 0
    assert (outcome("fail").body.error, outcome("fail").body.retryable) == ("quota exceeded", False)
    assert outcome("reject").body.reason == "not my kind of task"
    assert outcome("crash").body.error == "ZeroDivisionError: division by zero"
    assert outcome("crash").body.retryable is True
    handed = outcome("hand off").body
    assert (handed.event_type, handed.to_agent_id, handed.reason) == ("TaskHandedOff", None, "needs a database")
    for name in names:  # each reported as started first
        first = next(e for e in outcomes.events if e.key == sent[name].body.task_id)
        assert first.event_type == "TaskStarted"


async def test_a_restarted_agent_neither_repeats_nor_loses_a_report(settings):
    ran: list[tuple[str, str]] = []
    gate = asyncio.Event()

    def handler_of(incarnation: str):
        async def handler(task: Task) -> Completed:
            ran.append((incarnation, task.task_id))
            if task.payload.get("slow"):
                await gate.wait()
            return Completed()

        return handler

    async with TopicLog(settings, "task-outcomes") as outcomes:
        first = an_agent(settings, handler_of("first"))
        async with running(first, drain=False):
            # The slow task holds the lowest offset open while those after it finish.
            await publish_all(settings, [assignment("slow", slow=True)] + [assignment(f"quick-{i}") for i in range(5)])
            await outcomes.until(ended(*(f"quick-{i}" for i in range(5))), "the quick tasks to end")
            await until(lambda: ("first", "slow") in ran, "the slow task to start")
        # The first process is gone without a word; the slow task never ended.
        gate.set()
        second = an_agent(settings, handler_of("second"))
        async with running(second):
            await publish_all(settings, [assignment("later")])
            await outcomes.until(ended("slow", "later"), "the slow and the later task to end")

    assert [task for incarnation, task in ran if incarnation == "second"] == ["slow", "later"]
    completions = Counter(e.body.task_id for e in of_type(outcomes.events, "TaskCompleted"))
    assert completions == Counter({"slow": 1, "later": 1, **{f"quick-{i}": 1 for i in range(5)}})


async def test_stopping_rejects_queued_tasks_and_fails_those_that_outlast_the_drain(settings):
    async def forever(task: Task) -> Completed:
        await asyncio.Event().wait()

    agent = an_agent(settings, forever, capacity=1, drain_timeout=0.5)
    async with TopicLog(settings, "task-outcomes") as outcomes, TopicLog(settings, "agents") as agents:
        async with running(agent):
            await publish_all(settings, [assignment("stuck"), assignment("queued")])
            await until(lambda: agent.queue_depth == 1 and agent.in_flight == 1, "one running, one queued")
        await outcomes.until(ended("stuck", "queued"), "both tasks to end")
        await agents.until(lambda es: of_type(es, "AgentDeregistered"), "deregistration")

    [stuck] = endings(outcomes.events, "stuck")
    assert (stuck.event_type, stuck.body.retryable) == ("TaskFailed", True)
    assert "stopped before the task finished" in stuck.body.error
    [queued] = endings(outcomes.events, "queued")
    assert queued.event_type == "TaskRejected" and "shutting down" in queued.body.reason


async def test_an_unreadable_assignment_is_dead_lettered_and_the_next_one_still_runs(settings):
    agent = an_agent(settings, echo)
    async with TopicLog(settings, "task-outcomes") as outcomes, running(agent):
        await publish_raw(settings, "assignments", b"agent-1", b"{not json")
        await publish_all(settings, [assignment("after-the-bad-one")])
        await outcomes.until(ended("after-the-bad-one"), "the next task to end")
    # Parked in a transaction before the next task's outcome, so it is there by now.
    records = await _raw_records(settings, "dead-letter")
    assert [r.value for r in records] == [b"{not json"]
    headers = dict(records[0].headers)
    assert headers["dlq.original.topic"] == settings.topic("assignments").encode()
    assert headers["dlq.processor"] == b"agent:agent-1"


async def test_sigterm_drains_the_example_agent_which_deregisters_and_exits_0(settings):
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "ORCHESTRATOR_TOPIC_PREFIX": settings.topic_prefix,
    }
    process = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "examples" / "echo_agent.py"),
            "--agent-id",
            "echo-1",
            "--heartbeat-interval",
            "0.5",
        ],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        async with TopicLog(settings, "agents") as agents, TopicLog(settings, "task-outcomes") as outcomes:
            await agents.until(lambda es: of_type(es, "AgentRegistered", agent_id="echo-1"), "registration")
            await publish_all(settings, [assignment("slow", "echo-1", text="hi", sleep_s=1.5)])
            await outcomes.until(lambda es: of_type(es, "TaskStarted"), "the task to start")
            process.send_signal(signal.SIGTERM)
            exit_code = await asyncio.to_thread(process.wait, TIMEOUT)
            await outcomes.until(ended("slow"), "the task to end")
            await agents.until(lambda es: of_type(es, "AgentDeregistered"), "deregistration")
    finally:
        if process.poll() is None:
            process.kill()
        output = process.communicate()[0].decode(errors="replace")

    assert exit_code == 0, output
    [completed] = endings(outcomes.events, "slow")
    assert completed.event_type == "TaskCompleted" and completed.body.result_summary == "echo: hi"
    [deregistered] = of_type(agents.events, "AgentDeregistered")
    assert deregistered.body.drain is True
    assert deregistered.occurred_at >= completed.occurred_at


async def _raw_records(settings, logical_name: str):
    spec = next(t for t in TOPICS if t.name == logical_name)
    consumer = kafka.consumer(settings, isolation_level="read_committed")
    await kafka.start(consumer, settings)
    try:
        partitions = kafka.partitions(settings, [spec])
        consumer.assign(partitions)
        await consumer.seek_to_beginning()
        ends = await consumer.end_offsets(partitions)
        records = []
        for tp in partitions:
            while await consumer.position(tp) < ends[tp]:
                records += (await consumer.getmany(tp, timeout_ms=100)).get(tp, [])
        return records
    finally:
        await consumer.stop()
