"""`audit verify --against-kafka`: the audit log against the records still on the broker.

The chain and its checkpoints cannot see rows rewritten, with fresh hashes, after the newest
checkpoint. Kafka still holds those records (source-of-truth topics keep them forever), so
each row is compared with the record at its position, and every record up to the audit's
progress must have a row.
"""

from __future__ import annotations

import bisect
import hashlib
from collections import defaultdict
from dataclasses import dataclass, field

from events.topics import TOPICS
from services import kafka
from services.audit.chain import Entry, Problem, Row, encode_headers
from services.settings import Settings

Position = tuple[str, int, int]


def content_digest(key: bytes | None, value: bytes | None, headers) -> bytes:
    parts = [
        b"\x00" if key is None else b"\x01" + len(key).to_bytes(8, "big") + key,
        b"\x00" if value is None else b"\x01" + len(value).to_bytes(8, "big") + value,
        encode_headers(tuple(headers)),
    ]
    return hashlib.sha256(b"".join(parts)).digest()


def entry_digest(entry: Entry) -> bytes:
    return content_digest(entry.key, entry.value, entry.headers)


@dataclass
class Broker:
    """What was read from Kafka: each record's digest, and the range read per partition."""

    digests: dict[Position, bytes] = field(default_factory=dict)
    begin: dict[tuple[str, int], int] = field(default_factory=dict)  # earliest offset still on the broker
    end: dict[tuple[str, int], int] = field(default_factory=dict)  # read up to (excluded)


@dataclass
class CrossCheck:
    broker: Broker
    problems: list[Problem] = field(default_factory=list)
    _seen: dict[tuple[str, int], list[tuple[int, int]]] = field(default_factory=lambda: defaultdict(list))

    def feed(self, row: Row) -> None:
        e = row.entry
        tp = (e.topic, e.partition)
        self._seen[tp].append((e.offset, row.seq))
        if tp not in self.broker.end or e.offset >= self.broker.end[tp] or e.offset < self.broker.begin[tp]:
            return  # expired from the broker, or appended after the broker was read: the chain vouches
        digest = self.broker.digests.get((e.topic, e.partition, e.offset))
        if digest is None:
            self.problems.append(
                Problem(
                    row.seq,
                    "not_on_kafka",
                    "no such record on the broker (a transaction marker, or a row made up)",
                    e.position,
                )
            )
        elif digest != entry_digest(e):
            self.problems.append(
                Problem(
                    row.seq,
                    "differs_from_kafka",
                    "key, value or headers differ from the record on the broker",
                    e.position,
                )
            )

    def finish(self) -> list[Problem]:
        """Add the records on the broker, up to the audit's progress, that have no row."""
        for topic, partition, offset in sorted(self.broker.digests):
            seen = self._seen.get((topic, partition))
            if not seen or offset > max(o for o, _ in seen):
                continue  # not audited yet: lag, not tampering
            offsets = sorted(seen)
            at = bisect.bisect_left(offsets, (offset, -1))
            if at < len(offsets) and offsets[at][0] == offset:
                continue
            before = offsets[at][1]  # the row of the next offset: where this record's row should precede
            self.problems.append(
                Problem(
                    before,
                    "unaudited",
                    f"the record at {topic}[{partition}]@{offset} has no row; the partition's next row is seq {before}",
                    f"{topic}[{partition}]@{offset}",
                )
            )
        return sorted(self.problems, key=lambda p: p.seq)


async def read_broker(settings: Settings) -> Broker:
    """Every record of the catalog's topics now on the broker, as digests."""
    partitions = kafka.partitions(settings, TOPICS)
    consumer = kafka.consumer(settings, max_partition_fetch_bytes=8 * 1024 * 1024)
    await kafka.start(consumer, settings)
    broker = Broker()
    try:
        begins = await consumer.beginning_offsets(partitions)
        ends = await consumer.end_offsets(partitions)
        broker.begin = {(tp.topic, tp.partition): o for tp, o in begins.items()}
        broker.end = {(tp.topic, tp.partition): o for tp, o in ends.items()}
        pending = {tp for tp in partitions if ends[tp] > begins[tp]}
        consumer.assign(list(pending))
        for tp in pending:
            consumer.seek(tp, begins[tp])
        while pending:
            fetched = await consumer.getmany(*pending, timeout_ms=500, max_records=10000)
            for tp, records in fetched.items():
                for r in records:
                    if r.offset < ends[tp]:
                        broker.digests[(r.topic, r.partition, r.offset)] = content_digest(
                            r.key, r.value, r.headers or ()
                        )
            for tp in list(pending):
                if await consumer.position(tp) >= ends[tp]:
                    pending.discard(tp)
                    consumer.pause(tp)
    finally:
        await consumer.stop()
    return broker
