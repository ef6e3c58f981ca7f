"""Turn consumed records into (position, row operations), setting aside what cannot be used."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from events.codec import decode, header_type
from events.envelope import Envelope
from events.topics import misplaced
from projections.handlers import ops_for
from projections.ops import Op, Position


@dataclass
class Prepared:
    batch: list[tuple[Position, list[Op]]] = field(default_factory=list)
    rejected: list[tuple[Any, Exception]] = field(default_factory=list)  # (record, why)


def position_of(record) -> Position:
    return Position(record.topic, record.partition, record.offset)


def in_log_order(batch: list[tuple[Position, list[Op]]]) -> list[tuple[Position, list[Op]]]:
    # By a plain tuple: comparing the dataclasses themselves took four times as long.
    return sorted(batch, key=lambda item: (item[0].topic, item[0].partition, item[0].offset))


def prepare(records, until: datetime | None = None) -> Prepared:
    """Decode and project each record; a record that fails goes to `rejected`.

    With `until`, events that occurred later only advance the position: that is how a
    point-in-time copy of the read models is built.
    """
    prepared = Prepared()
    for record in records:
        try:
            event = decode_record(record)
            ops = [] if until is not None and event.occurred_at > until else ops_for(event)
        except Exception as error:  # noqa: BLE001 - any failure parks the record, never stops us
            prepared.rejected.append((record, error))
            continue
        prepared.batch.append((position_of(record), ops))
    return prepared


def decode_record(record):
    """The record's event, parsed straight from its bytes as the type its header names.

    A record its header misdescribes is refused, as every deciding processor refuses it: they pass
    a record over unread by its header, so a submission named as something else is never routed,
    and projected it would show a task waiting forever for nothing.
    """
    return on_its_topic(decode(record.value, header_type(record.headers)), record)


def on_its_topic(event: Envelope, record) -> Envelope:
    """The event, if the record's topic is the one the catalog gives it: on any other, whoever
    wrote it may not speak it (a health verdict on the agents topic), so it is refused."""
    if error := misplaced(event.event_type, record.topic):
        raise error
    return event
