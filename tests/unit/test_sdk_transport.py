"""KafkaTransactions over a fake producer: a failed transaction is retried on a fresh producer."""

import asyncio
import contextlib

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import KafkaConnectionError, ProducerFenced

from services.sdk.ledger import Ledger, Position
from services.sdk.outbox import Outbox, Outgoing
from services.sdk.transport import Fenced, KafkaTransactions
from services.settings import Settings

TP = TopicPartition("acme.assignments", 0)


class FakeBroker:
    def __init__(self, failing_sends: int = 0, error: Exception | None = None) -> None:
        self.failing_sends = failing_sends
        self.error = error or KafkaConnectionError("connection reset")
        self.committed_records: list[bytes] = []
        self.committed_offsets: dict = {}
        self.producers: list["FakeProducer"] = []

    def producer(self) -> "FakeProducer":
        self.producers.append(FakeProducer(self))
        return self.producers[-1]


class FakeProducer:
    def __init__(self, broker: FakeBroker) -> None:
        self.broker = broker
        self.started = self.stopped = False
        self.records: list[bytes] = []
        self.offsets: dict = {}

    async def start(self) -> None:
        self.started = True

    async def stop(self) -> None:
        self.stopped = True

    @contextlib.asynccontextmanager
    async def transaction(self):
        self.records, self.offsets = [], {}
        yield  # an exception aborts: nothing reaches the broker
        self.broker.committed_records += self.records
        self.broker.committed_offsets.update(self.offsets)

    async def send(self, topic, value, key=None, headers=None):
        if self.broker.failing_sends:
            self.broker.failing_sends -= 1
            raise self.broker.error
        self.records.append(value)
        sent = asyncio.get_running_loop().create_future()
        sent.set_result(None)
        return sent

    async def send_offsets_to_transaction(self, offsets, group_id) -> None:
        self.offsets.update(offsets)


def transactions_on(broker: FakeBroker) -> KafkaTransactions:
    transactions = KafkaTransactions(Settings.from_env({}), "acme.agent.a-1", "acme.agent.a-1")
    transactions._new_producer = broker.producer
    return transactions


async def test_each_failed_transaction_is_retried_on_a_fresh_producer_and_lands_once():
    broker = FakeBroker(failing_sends=3)
    transactions = transactions_on(broker)
    ledger = Ledger(0)
    ledger.receive(0)
    outbox = Outbox(transactions, ledger, TP, delay=lambda failures: 0)
    outbox.submit([Outgoing("acme.task-outcomes", b"completed", b"task-1")], finishes=0)
    await outbox.flush()

    assert broker.committed_records == [b"completed"]
    assert broker.committed_offsets[TP].offset == 1
    assert len(broker.producers) == 4
    assert all(p.stopped for p in broker.producers[:-1]) and not broker.producers[-1].stopped


async def test_being_fenced_off_is_not_retried():
    broker = FakeBroker(failing_sends=1, error=ProducerFenced())
    transactions = transactions_on(broker)
    with pytest.raises(Fenced, match="another process runs this agent"):
        await transactions.commit([Outgoing("acme.heartbeats", b"beat", b"a-1")], {TP: Position(0, "")})
    assert broker.committed_records == []
