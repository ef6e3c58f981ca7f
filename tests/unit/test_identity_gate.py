"""The gate's shell with a log of its own in memory: what it reads, when it reads again, what it lets through."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from aiokafka import TopicPartition
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from events.agents import AgentRegistered
from events.codec import encode, type_header
from events.envelope import make_event
from events.examples import example_body
from events.security import AgentKeyEnrolled
from events.tasks import TaskAssigned, TaskCompleted, TaskRouted
from events.values import Capability
from services.identity.gate import CLOCK_MARGIN_MS, IdentityGate
from services.identity.signing import Signer, b64
from services.identity.verify import ORCHESTRATOR
from services.log_follower import ScreenedConsumer
from services.settings import Settings

SECURITY, ASSIGNMENTS = TopicPartition("p.security", 0), TopicPartition("p.assignments", 0)
NOW = 1_800_000_000_000
ALICE = Signer.of(Ed25519PrivateKey.generate())


class MemoryLog:
    """The security and assignments topics as lists; counts how often the gate read to their end."""

    def __init__(self) -> None:
        self.records = {SECURITY: [], ASSIGNMENTS: []}
        self.positions = {SECURITY: 0, ASSIGNMENTS: 0}
        self.readings = 0

    def append(self, tp: TopicPartition, body, headers=None) -> None:
        event = make_event(body, producer="test")
        # As every producer writes it: the event type in a header (None: a record written without one).
        headers = [type_header(event)] if headers is None else headers
        self.records[tp].append(SimpleNamespace(value=encode(event), headers=headers))

    async def open(self, settings):
        return self, [SECURITY, ASSIGNMENTS]

    async def end_offsets(self, partitions):
        self.readings += 1
        return {tp: len(self.records[tp]) for tp in partitions}

    async def position(self, tp):
        return self.positions[tp]

    async def getmany(self, *partitions, timeout_ms=0):
        await asyncio.sleep(0.001)  # a fetch takes a while, and lets others run meanwhile
        partitions = partitions or tuple(self.records)
        out = {tp: self.records[tp][self.positions[tp] :] for tp in partitions}
        for tp in partitions:
            self.positions[tp] = len(self.records[tp])
        return out

    async def stop(self):
        pass


def gate(log: MemoryLog, mode: str, clock=lambda: NOW) -> IdentityGate:
    return IdentityGate(Settings.from_env({}, topic_prefix="p", identity_mode=mode), clock=clock, open_log=log.open)


def message(topic: str, event, signer: Signer | None = None, at_ms: int = NOW):
    value = encode(event)
    return SimpleNamespace(
        topic=topic,
        partition=0,
        offset=5,
        key=event.key.encode(),
        value=value,
        headers=signer.headers(value) if signer else [],
        timestamp=at_ms,
    )


def registration():
    return make_event(
        AgentRegistered(
            agent_id="alice",
            display_name="alice",
            capacity=1,
            capabilities=(Capability(name="python", proficiency=0.5),),
        ),
        producer="alice",
    )


def completed(agent_id: str):
    return make_event(TaskCompleted(task_id="task-1", agent_id=agent_id, attempt=1), producer=agent_id)


def enrolment():
    return AgentKeyEnrolled(agent_id="alice", key_id=ALICE.key_id, public_key=b64(ALICE.public_key), enrolled_by="op")


def test_with_identity_off_only_outcomes_are_read_and_the_log_is_not_opened_for_anything_else():
    log = MemoryLog()
    unsigned = message("p.agents", registration())
    assert asyncio.run(gate(log, "off").check(unsigned)) is None
    assert log.readings == 0


def test_a_key_enrolled_after_the_first_reading_is_found_by_reading_again():
    log, now = MemoryLog(), [NOW - 5000]
    checker = gate(log, "verify", clock=lambda: now[0])

    async def scenario():
        first = await checker.check(message("p.task-outcomes", completed("bob"), at_ms=NOW - 6000))
        log.append(SECURITY, enrolment())  # enrolled after that first reading
        now[0] = NOW
        second = await checker.check(message("p.agents", registration(), ALICE, at_ms=NOW - 100))
        await checker.stop()
        return first, second

    first, second = asyncio.run(scenario())
    assert first.kind == "unsigned"
    assert second is None and log.readings >= 2


def test_a_miss_after_a_reading_that_began_later_than_the_record_is_final():
    log = MemoryLog()
    checker = gate(log, "off")

    async def scenario():
        await checker.check(message("p.task-outcomes", completed("bob"), at_ms=NOW - 10 * CLOCK_MARGIN_MS))
        readings = log.readings
        violation = await checker.check(message("p.task-outcomes", completed("bob"), at_ms=NOW - 10 * CLOCK_MARGIN_MS))
        await checker.stop()
        return violation, readings

    violation, readings_before = asyncio.run(scenario())
    assert violation.kind == "not_assignee" and log.readings == readings_before  # nothing read again


def test_the_followers_consumer_hands_out_no_refused_record():
    log = MemoryLog()
    log.append(ASSIGNMENTS, TaskAssigned(agent_id="alice", task_id="task-1", attempt=1, capability="x"))
    outcomes = TopicPartition("p.task-outcomes", 0)
    honest, spoofed = (message("p.task-outcomes", completed(a), at_ms=NOW - 60_000) for a in ("alice", "bob"))

    class Inner:
        async def getmany(self, *partitions, **options):
            return {outcomes: [honest, spoofed]}

        async def stop(self):
            pass

    async def scenario():
        screened = ScreenedConsumer(Inner(), gate(log, "off"))
        try:
            return await screened.getmany(timeout_ms=100)
        finally:
            await screened.stop()

    assert asyncio.run(scenario()) == {outcomes: [honest]}


def test_an_assignment_made_after_the_start_is_known_without_asking_the_broker_for_its_end_again():
    log = MemoryLog()
    checker = gate(log, "off")

    async def scenario():
        await checker.check(message("p.task-outcomes", completed("bob"), at_ms=NOW - 60_000))
        readings = log.readings
        log.append(ASSIGNMENTS, TaskAssigned(agent_id="alice", task_id="task-1", attempt=1, capability="x"))
        await asyncio.wait_for(folded(checker, ("task-1", 1)), 5)
        verdict = await checker.check(message("p.task-outcomes", completed("alice"), at_ms=NOW))
        await checker.stop()
        return verdict, readings

    verdict, readings_before = asyncio.run(scenario())
    assert verdict is None and log.readings == readings_before


def test_the_gate_folds_assignments_with_or_without_a_type_header_and_passes_over_what_it_does_not_keep():
    log = MemoryLog()
    checker = gate(log, "off")
    violation = example_body("SecurityViolationDetected")
    log.append(SECURITY, violation)
    log.append(ASSIGNMENTS, TaskAssigned(agent_id="alice", task_id="task-1", attempt=1, capability="x"))
    log.append(ASSIGNMENTS, TaskAssigned(agent_id="bob", task_id="task-2", attempt=1, capability="x"), headers=[])
    # A header naming another type is believed: the record is passed over unread, as every reader does.
    misnamed = TaskAssigned(agent_id="eve", task_id="task-3", attempt=1, capability="x")
    log.append(ASSIGNMENTS, misnamed, headers=[("event_type", b"SecurityViolationDetected")])

    async def scenario():
        await checker.check(message("p.task-outcomes", completed("alice"), at_ms=NOW))
        await asyncio.wait_for(folded(checker, ("task-2", 1)), 5)
        await checker.stop()
        return dict(checker.assignments.agents)

    assert asyncio.run(scenario()) == {("task-1", 1): "alice", ("task-2", 1): "bob"}


async def folded(checker: IdentityGate, attempt) -> None:
    # The gate signals its progress condition after each batch it folds.
    async with checker._progress:
        await checker._progress.wait_for(lambda: attempt in checker.assignments.agents)


ORCHESTRATOR_KEY = Signer.of(Ed25519PrivateKey.generate())


def routed():
    return make_event(
        TaskRouted(task_id="task-1", candidates=(), chosen_agent_id=None, policy="test", reason="forged"),
        producer="router",
    )


def test_in_verify_mode_a_decision_on_tasks_counts_only_signed_with_the_orchestrators_key():
    log = MemoryLog()
    log.append(SECURITY, enrolment())
    log.append(
        SECURITY,
        AgentKeyEnrolled(
            agent_id=ORCHESTRATOR,
            key_id=ORCHESTRATOR_KEY.key_id,
            public_key=b64(ORCHESTRATOR_KEY.public_key),
            enrolled_by="op",
        ),
    )
    checker = gate(log, "verify")

    async def scenario():
        verdicts = [
            await checker.check(message("p.tasks", routed(), signer)) for signer in (None, ALICE, ORCHESTRATOR_KEY)
        ]
        await checker.stop()
        return verdicts

    unsigned, by_an_agent, by_the_orchestrator = asyncio.run(scenario())
    assert unsigned.kind == "unsigned" and unsigned.claim.agent_id == ORCHESTRATOR
    assert by_an_agent.kind == "other_agents_key"
    assert by_the_orchestrator is None


def test_with_identity_off_a_decision_is_not_checked():
    log = MemoryLog()
    assert asyncio.run(gate(log, "off").check(message("p.tasks", routed()))) is None
    assert log.readings == 0


def test_a_gate_without_outcomes_neither_checks_them_nor_reads_the_assignments():
    opened = []

    async def open_log(settings):
        log = MemoryLog()
        opened.append(log)
        return log, [SECURITY]

    settings = Settings.from_env({}, topic_prefix="p", identity_mode="verify")
    checker = IdentityGate(settings, clock=lambda: NOW, outcomes=False, open_log=open_log)
    assert asyncio.run(checker.check(message("p.task-outcomes", completed("bob")))) is None
    assert opened == []
    assert IdentityGate(settings, outcomes=False).open_log.keywords == {"folded": ("security",)}
