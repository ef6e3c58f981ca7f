import asyncio

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import KafkaConnectionError, RequestTimedOutError

from services.sdk.ledger import Ledger, Position
from services.sdk.outbox import Outbox, Outgoing, backoff
from services.sdk.transport import Fenced

TP = TopicPartition("acme.assignments", 3)


class FakeKafka:
    """Commits records and offsets together, after failing the first `failures` attempts."""

    def __init__(self, failures: int = 0, error: Exception | None = None) -> None:
        self.failures = failures
        self.error = error or KafkaConnectionError("broker restarting")
        self.records: list[Outgoing] = []
        self.commits: list[tuple[list[Outgoing], dict]] = []
        self.attempts = 0

    async def commit(self, records, offsets) -> None:
        self.attempts += 1
        if self.failures:
            self.failures -= 1
            raise self.error
        self.records += records
        self.commits.append((list(records), dict(offsets)))

    @property
    def committed(self) -> Position | None:
        positions = [offsets[TP] for _, offsets in self.commits if TP in offsets]
        return positions[-1] if positions else None


def record(name: str) -> Outgoing:
    return Outgoing("acme.task-outcomes", name.encode(), b"task-1")


class Sleeps:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


def outbox_over(kafka: FakeKafka, ledger: Ledger | None = None, sleep=None) -> Outbox:
    return Outbox(kafka, ledger or Ledger(0), TP, sleep=sleep or Sleeps())


async def test_an_outcome_and_the_position_it_completes_are_committed_together():
    ledger = Ledger(0)
    ledger.receive(0)
    kafka = FakeKafka()
    outbox = outbox_over(kafka, ledger)
    outbox.submit([record("completed")], finishes=0)
    await outbox.flush()
    assert kafka.commits == [([record("completed")], {TP: Position(1, "")})]


async def test_a_position_never_covers_an_outcome_still_waiting_in_the_queue():
    ledger = Ledger(0)
    for offset in (0, 1):
        ledger.receive(offset)
    kafka = FakeKafka()
    outbox = outbox_over(kafka, ledger)
    outbox.submit([record("first")], finishes=0)
    await outbox.flush()
    outbox.submit([record("second")], finishes=1)
    assert kafka.committed.offset == 1  # offset 1 is queued, not yet in Kafka
    await outbox.flush()
    assert kafka.committed.offset == 2


async def test_a_transient_failure_is_retried_until_every_event_is_in_kafka_once():
    sleeps = Sleeps()
    kafka = FakeKafka(failures=3)
    outbox = outbox_over(kafka, sleep=sleeps)
    done = outbox.submit([record("a"), record("b")])
    await outbox.flush()
    assert done.done() and done.exception() is None
    assert kafka.records == [record("a"), record("b")]
    assert kafka.attempts == 4
    assert sleeps.delays == [backoff(1), backoff(2), backoff(3)]
    assert outbox.failures == 0


async def test_timeouts_are_transient_too():
    kafka = FakeKafka(failures=1, error=RequestTimedOutError())
    outbox = outbox_over(kafka)
    outbox.submit([record("a")])
    await outbox.flush()
    assert kafka.records == [record("a")]


def test_backoff_grows_and_is_capped():
    assert [backoff(n) for n in (1, 2, 3)] == [0.1, 0.2, 0.4]
    assert backoff(50) == 5.0


async def test_an_unchanged_position_is_not_committed_again():
    kafka = FakeKafka()
    outbox = outbox_over(kafka)
    outbox.submit([record("heartbeat 1")])
    await outbox.flush()
    outbox.submit([record("heartbeat 2")])
    await outbox.flush()
    assert [offsets for _, offsets in kafka.commits] == [{TP: Position(0, "")}, {}]


async def test_skipped_records_move_the_position_with_whatever_goes_out_next():
    ledger = Ledger(0)
    kafka = FakeKafka()
    outbox = outbox_over(kafka, ledger)
    loop = asyncio.create_task(outbox.run())
    try:
        await asyncio.wait_for(outbox.publish([record("registered")]), 5)
        ledger.receive(0)
        ledger.finish(0)  # another agent's assignment: nothing to report, no transaction of its own
        await asyncio.wait_for(outbox.publish([record("heartbeat")]), 5)
    finally:
        loop.cancel()
    assert kafka.commits[-1] == ([record("heartbeat")], {TP: Position(1, "")})
    assert len(kafka.commits) == 2


async def test_an_explicit_flush_commits_a_moved_position_even_with_nothing_queued():
    ledger = Ledger(0)
    kafka = FakeKafka()
    outbox = outbox_over(kafka, ledger)
    ledger.receive(0)
    ledger.finish(0)
    await outbox.flush()
    assert kafka.commits == [([], {TP: Position(1, "")})]


async def test_being_fenced_off_fails_every_waiting_publisher():
    kafka = FakeKafka(failures=1, error=Fenced("another process runs this agent"))
    outbox = outbox_over(kafka)
    waiting = outbox.submit([record("a")])
    with pytest.raises(Fenced):
        await outbox.flush()
    with pytest.raises(Fenced):
        await waiting


async def test_the_run_loop_publishes_what_is_submitted():
    kafka = FakeKafka(failures=2)
    outbox = outbox_over(kafka)
    loop = asyncio.create_task(outbox.run())
    try:
        await asyncio.wait_for(outbox.publish([record("a")]), 5)
        await asyncio.wait_for(outbox.publish([record("b")]), 5)
    finally:
        loop.cancel()
    assert kafka.records == [record("a"), record("b")]


async def test_a_crash_before_the_commit_loses_nothing_and_repeats_nothing():
    # Assignments at offsets 0..3; 1 and 3 are reported, then the process dies while
    # reporting 0 (the transaction never commits). A new process resumes from Kafka.
    before = Ledger(0)
    for offset in range(4):
        before.receive(offset)
    kafka = FakeKafka()
    outbox = outbox_over(kafka, before)
    outbox.submit([record("done 1")], finishes=1)
    outbox.submit([record("done 3")], finishes=3)
    await outbox.flush()
    kafka.failures, kafka.error = 1, asyncio.CancelledError()
    outbox.submit([record("done 0")], finishes=0)
    with pytest.raises(asyncio.CancelledError):
        await outbox.flush()

    after = Ledger.resume(kafka.committed.offset, kafka.committed.metadata)
    assert [o for o in range(5) if after.receive(o)] == [0, 2, 4]
    assert kafka.records == [record("done 1"), record("done 3")]
