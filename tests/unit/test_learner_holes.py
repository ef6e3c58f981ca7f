"""The learner reports its accuracy, follows an agent's memory profile, and owes nothing after a restart."""

import asyncio
from collections import defaultdict

import pytest
from aiokafka import TopicPartition
from aiokafka.structs import ConsumerRecord

from events.agents import AgentMemoryProfileUpdated
from events.codec import encode, type_header
from events.envelope import make_event
from events.learning import ModelPublished, SkillEstimated, SkillShiftDetected
from events.tasks import TaskAssigned, TaskCompleted
from events.topics import topic_for_event, topic_name
from events.values import MemoryProfile
from services.kafka import partition_of
from services.learner.follower import FOLLOWED, LearnerFollower
from services.learner.state import HANDLED, LearnerFold
from services.metrics import ProcessorMetrics
from services.settings import Settings
from tests import factories as f
from tests.unit.test_learner_shell import AGENTS, attempt, fleet, given

SETTINGS = Settings.from_env({}, learner_publish_interval_ms="0")
EVERY_PARTITION = frozenset(range(6))


# --- a learner copy following a log on a fake broker -------------------------------------------------


class FakeLog:
    """The broker edge: the followed topics as lists of records, read through one consumer per run."""

    def __init__(self) -> None:
        self.records: dict[TopicPartition, list[ConsumerRecord]] = defaultdict(list)
        self.clock = 0

    def append(self, *bodies) -> list:
        envelopes = [make_event(body, producer="test") for body in bodies]
        for envelope in envelopes:
            tp = TopicPartition(
                topic_name(topic_for_event(envelope.event_type), SETTINGS.topic_prefix),
                partition_of(envelope.key.encode()),
            )
            self.clock += 1
            value = encode(envelope)
            self.records[tp].append(
                ConsumerRecord(
                    tp.topic,
                    tp.partition,
                    len(self.records[tp]),
                    self.clock,
                    0,
                    envelope.key.encode(),
                    value,
                    None,
                    0,
                    len(value),
                    [type_header(envelope)],
                )
            )
        return envelopes

    async def open(self, settings, logical_topics, event_types, fetched, **options):
        followed = [
            TopicPartition(topic_name(name, settings.topic_prefix), p) for name in logical_topics for p in range(6)
        ]
        return FakeConsumer(self, followed), {tp: len(self.records[tp]) for tp in followed}


class FakeConsumer:
    def __init__(self, log: FakeLog, partitions: list[TopicPartition]) -> None:
        self.log = log
        self.positions = {tp: 0 for tp in partitions}

    async def getmany(self, *partitions, timeout_ms: int = 0) -> dict:
        fetched = {}
        for tp in partitions or self.positions:
            if records := self.log.records[tp][self.positions[tp] :]:
                fetched[tp] = records
                self.positions[tp] += len(records)
        if not fetched:
            await asyncio.sleep(0.001)
        return fetched

    async def position(self, tp) -> int:
        return self.positions[tp]

    async def stop(self) -> None:
        pass


class InMemoryMarks:
    def __init__(self) -> None:
        self.marks: dict[tuple[str, int], int] = {}

    async def read(self) -> dict[tuple[str, int], int]:
        return dict(self.marks)

    async def advance(self, positions) -> None:
        for tp, offset in positions.items():
            self.marks[tuple(tp)] = max(offset, self.marks.get(tuple(tp), 0))

    async def stop(self) -> None:
        pass


class Run:
    """One learner copy following the fake log until stopped; what it published, with its causes."""

    def __init__(self, log: FakeLog, marks: InMemoryMarks, *, owned=EVERY_PARTITION, publish_every: int = 100):
        self.metrics = ProcessorMetrics("learner")
        self.follower = LearnerFollower(
            SETTINGS, LearnerFold(publish_every=publish_every), self.metrics, "learner", marks=marks, open_log=log.open
        )
        self.owned = owned
        self.published: list = []

    async def publish(self, bodies, cause) -> None:
        self.published += [(body, cause) for body in bodies]

    async def delivered(self) -> None:
        pass

    async def __aenter__(self) -> "Run":
        self.task = asyncio.create_task(
            self.follower.run(
                self.publish,
                lambda: self.owned,
                lambda agent_id, mine: partition_of(agent_id.encode()) in mine,
                self.delivered,
            )
        )
        await until(self.follower.ready.is_set)
        return self

    async def __aexit__(self, *_) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)

    def of(self, kind) -> list:
        return [(body, cause) for body, cause in self.published if isinstance(body, kind)]


async def until(condition, timeout_s: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.001)


def outcomes(first: int, last: int, agent_id: str = "agent-1", *, success: bool = True) -> list:
    return [e for i in range(first, last) for e in attempt(f"task-{i}", agent_id, success)]


# --- 1. the accuracy gauge ---------------------------------------------------------------------------


async def test_the_accuracy_gauge_holds_the_accuracy_of_the_published_model():
    log = FakeLog()
    log.append(*(e.body for e in fleet()), *outcomes(0, 30), *outcomes(30, 60, "agent-3", success=False))

    async with Run(log, InMemoryMarks(), publish_every=20) as run:
        [(model, _)] = run.of(ModelPublished)
        gauge = run.metrics.registry.get_sample_value("orchestrator_learner_accuracy", {"service": "learner"})
        assert gauge == model.metrics["accuracy"] and 0.0 < gauge <= 1.0

        log.append(*outcomes(60, 80))  # a model published live moves it too
        await until(lambda: len(run.of(ModelPublished)) == 2)
        latest = run.of(ModelPublished)[-1][0]
        assert (
            run.metrics.registry.get_sample_value("orchestrator_learner_accuracy", {"service": "learner"})
            == latest.metrics["accuracy"]
        )


# --- 2. memory profile updates ----------------------------------------------------------------------


def sharing(agent_id: str, share: bool) -> AgentMemoryProfileUpdated:
    return AgentMemoryProfileUpdated(
        agent_id=agent_id, memory_profile=MemoryProfile(store_kind="vector", share_experience=share)
    )


def proficiency(out: list, agent_id: str) -> float:
    """The latest published estimate of the agent on python."""
    return [e for e in out if isinstance(e, SkillEstimated) and (e.agent_id, e.capability) == (agent_id, "python")][
        -1
    ].proficiency


def when(view: LearnerFold, *events) -> list:
    return [out for event in events for out in view.apply(event)]


def test_memory_profile_updates_are_read_from_a_topic_the_learner_follows():
    assert "AgentMemoryProfileUpdated" in HANDLED
    assert topic_for_event("AgentMemoryProfileUpdated").name in FOLLOWED


def test_an_agent_that_stops_sharing_no_longer_moves_the_others_priors():
    # Given agent-2, sharing, with a strong record that lifts agent-1's prior
    view = given(*fleet(), *outcomes(0, 20, "agent-2"), publish_every=1)
    assert proficiency(when(view, *attempt("task-x", "agent-3", True)), "agent-1") > 0.9

    # When agent-2 stops sharing
    out = when(view, sharing("agent-2", False))

    # Then agent-1's estimate falls back to what its declaration and agent-3's record say (0.5 worth
    # two outcomes, and one success), and agent-2's further outcomes leave it there
    without = proficiency(out, "agent-1")
    assert without == pytest.approx((0.5 * 2 + 1) / 3)
    assert proficiency(when(view, *outcomes(20, 30, "agent-2")), "agent-1") == without


def test_an_agent_that_starts_sharing_moves_the_others_priors():
    # Given agent-2 registered without sharing, with a strong record
    events = [f.registered(a, capabilities=(("python", 0.5),), share_experience=a != "agent-2") for a in AGENTS]
    view = given(*events, *outcomes(0, 20, "agent-2"), publish_every=1)
    before = proficiency(when(view, *attempt("task-x", "agent-3", True)), "agent-1")
    assert before == pytest.approx((0.5 * 2 + 1) / 3)

    # When it starts sharing, its record joins agent-1's prior
    assert proficiency(when(view, sharing("agent-2", True)), "agent-1") > 0.9


def test_an_update_that_leaves_sharing_as_it_was_publishes_nothing():
    view = given(*fleet())
    assert view.apply(sharing("agent-1", True)) == []
    assert view.apply(sharing("agent-9", False)) == []  # never registered


# --- 3. what a restarted learner owes ---------------------------------------------------------------


def published_all(log: FakeLog, marks: InMemoryMarks) -> bool:
    return all(marks.marks.get(tuple(tp)) == len(records) for tp, records in log.records.items())


def degrading(first: int, last: int) -> list:
    return outcomes(first, last, success=False)


async def test_a_restarted_learner_publishes_the_shifts_of_outcomes_read_while_it_was_down():
    log, marks = FakeLog(), InMemoryMarks()
    log.append(*(e.body for e in fleet()))
    async with Run(log, marks) as first:
        log.append(*outcomes(0, 80))
        await until(lambda: published_all(log, marks))
    assert not first.of(SkillShiftDetected)

    missed = log.append(*degrading(80, 160))  # while no learner runs

    async with Run(log, marks) as second:
        shifts = second.of(SkillShiftDetected)
    assert shifts and all((s.agent_id, s.direction) == ("agent-1", "degraded") for s, _ in shifts)
    outcome_ids = {e.event_id for e in missed if isinstance(e.body, (TaskCompleted, TaskAssigned))}
    assert all(cause is not None and cause.event_id in outcome_ids for _, cause in shifts)

    async with Run(log, marks) as third:  # what was owed has been paid
        assert not third.of(SkillShiftDetected)


async def test_a_learner_that_never_published_publishes_no_shift_from_its_backlog():
    log = FakeLog()
    log.append(*(e.body for e in fleet()), *outcomes(0, 80), *degrading(80, 160))
    async with Run(log, InMemoryMarks()) as run:
        assert not run.of(SkillShiftDetected) and run.of(SkillEstimated)


async def test_a_restarted_copy_publishes_only_what_its_own_partitions_led_to():
    log, marks = FakeLog(), InMemoryMarks()
    log.append(*(e.body for e in fleet()))
    async with Run(log, marks):
        log.append(*outcomes(0, 80))
        await until(lambda: published_all(log, marks))
    log.append(*degrading(80, 160))

    async with Run(log, marks, owned=frozenset({0, 1, 2})) as one, Run(log, marks, owned=frozenset({3, 4, 5})) as two:
        shifts = [(body, cause) for run in (one, two) for body, cause in run.of(SkillShiftDetected)]
        assert shifts
        for run in (one, two):
            assert all(partition_of(cause.key.encode()) in run.owned for _, cause in run.of(SkillShiftDetected))
