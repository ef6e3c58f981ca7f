"""The dead-letter topic: what failed, where it came from, and how often it was tried.

A parked record keeps the original key, value and headers byte for byte, plus headers
naming its origin and error, so `orchestrator dlq replay` can re-inject it unchanged.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone

from aiokafka import AIOKafkaProducer

H_TOPIC = "dlq.original.topic"
H_PARTITION = "dlq.original.partition"
H_OFFSET = "dlq.original.offset"
H_ERROR_CLASS = "dlq.error.class"
H_ERROR_MESSAGE = "dlq.error.message"
H_ATTEMPT = "dlq.attempt"
H_PROCESSOR = "dlq.processor"
H_FAILED_AT = "dlq.failed.at"
DLQ_HEADERS = (H_TOPIC, H_PARTITION, H_OFFSET, H_ERROR_CLASS, H_ERROR_MESSAGE, H_ATTEMPT, H_PROCESSOR, H_FAILED_AT)
MAX_MESSAGE = 2000
log = logging.getLogger("orchestrator.deadletter")


@dataclass(frozen=True)
class Parked:
    """A dead-lettered record as read back from the topic."""

    offset: int
    partition: int
    key: bytes | None
    value: bytes | None
    origin_topic: str
    origin_partition: int
    origin_offset: int
    error_class: str
    error_message: str
    attempt: int
    processor: str
    failed_at: str
    original_headers: tuple[tuple[str, bytes], ...]


def attempt_of(headers) -> int:
    """How many times this record has failed before (0 for a first delivery).

    The header comes with the record, so it may be anything: one that is no count counts as none,
    or parking the record would fail on it and stop the processor that meant to set it aside."""
    for name, value in headers or ():
        if name == H_ATTEMPT:
            return _count(value)
    return 0


def _count(value: bytes | str | None) -> int:
    try:
        return max(0, int(value))
    except (TypeError, ValueError):
        return 0


def dead_letter_headers(record, error: BaseException, processor: str, now: datetime | None = None):
    now = now or datetime.now(timezone.utc)
    kept = [(k, v) for k, v in (record.headers or ()) if k not in DLQ_HEADERS]
    return kept + [
        (H_TOPIC, record.topic.encode()),
        (H_PARTITION, str(record.partition).encode()),
        (H_OFFSET, str(record.offset).encode()),
        (H_ERROR_CLASS, type(error).__name__.encode()),
        (H_ERROR_MESSAGE, str(error)[:MAX_MESSAGE].encode()),
        (H_ATTEMPT, str(attempt_of(record.headers) + 1).encode()),
        (H_PROCESSOR, processor.encode()),
        (H_FAILED_AT, now.isoformat().encode()),
    ]


def parked_from(record) -> Parked:
    headers = dict(record.headers or ())
    text = lambda name: headers.get(name, b"").decode(errors="replace")  # noqa: E731
    return Parked(
        offset=record.offset,
        partition=record.partition,
        key=record.key,
        value=record.value,
        origin_topic=text(H_TOPIC),
        origin_partition=int(text(H_PARTITION) or -1),
        origin_offset=int(text(H_OFFSET) or -1),
        error_class=text(H_ERROR_CLASS),
        error_message=text(H_ERROR_MESSAGE),
        attempt=int(text(H_ATTEMPT) or 0),
        processor=text(H_PROCESSOR),
        failed_at=text(H_FAILED_AT),
        original_headers=tuple((k, v) for k, v in (record.headers or ()) if k not in DLQ_HEADERS or k == H_ATTEMPT),
    )


@dataclass(frozen=True)
class ConsumedRecord:
    """What the dead-letter headers need to know about a message Faust consumed."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]

    @classmethod
    def of(cls, message) -> "ConsumedRecord":
        headers = message.headers or ()
        pairs = headers.items() if isinstance(headers, Mapping) else headers
        return cls(
            message.topic,
            message.partition,
            message.offset,
            message.key,
            message.value,
            tuple((name, value) for name, value in pairs),
        )


class DeadLetters:
    def __init__(self, kafka_producer: AIOKafkaProducer, topic: str, processor: str) -> None:
        self.producer = kafka_producer
        self.topic = topic
        self.processor = processor

    async def park(self, record, error: BaseException) -> None:
        await self.producer.send_and_wait(
            self.topic, record.value, key=record.key, headers=dead_letter_headers(record, error, self.processor)
        )


async def park_on(dead_letters, record: ConsumedRecord, error: BaseException, processor: str, metrics) -> None:
    """Park one record a Faust processor could not use: sent to `dead_letters` (a Faust topic),
    logged and counted; the caller's stream moves on."""
    log.warning(
        "dead-lettering %s[%d]@%d: %s: %s", record.topic, record.partition, record.offset, type(error).__name__, error
    )
    await dead_letters.send(key=record.key, value=record.value, headers=dead_letter_headers(record, error, processor))
    metrics.dead_letters.labels(processor, record.topic, type(error).__name__).inc()
