"""Deciding from one ordered inbox, so that replaying it gives back the same state and events.

Every balancer input — submissions and routings, outcomes, agent changes, and the clock's
ticks — is copied into a single-partition inbox topic. Whatever is decided at inbox offset
n depends only on the records up to n: `now` is the latest inbox record's timestamp so far
and event ids derive from the offset. Two consequences carry the capacity guarantee across restarts and
rebalances:

- state is rebuilt by replaying the inbox (from the latest snapshot) without emitting,
  and equals the state of the copy that decided first;
- a record decided twice (after a crash between emitting and committing, or by a stalled
  copy that lost the partition) yields byte-identical events with the same event ids: a
  redelivery of the one decision, never a second, different assignment. On taking over, a
  copy looks up which of those ids are already on the broker and does not send them again.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Protocol
from uuid import NAMESPACE_URL, uuid5

import orjson

from events.agents import AgentCapabilitiesChanged, AgentDeregistered, AgentHealthChanged, AgentRegistered
from events.codec import decode, header_type
from events.envelope import Envelope, make_event
from events.tasks import TaskCompleted, TaskFailed, TaskHandedOff, TaskRejected, TaskRouted, TaskStarted, TaskSubmitted
from services.balancer.logic import BalancerState, Limits, decide, tick
from services.balancer.state import decode_state, encode_state

PRODUCER = "balancer"
# Decisions are published after the inbox record that caused them was written, but perhaps
# by a copy on another machine, whose clock may be somewhat behind.
CLOCK_SKEW_MS = 30_000
log = logging.getLogger("orchestrator.balancer")
TICK_HEADER = "balancer.tick"
ORIGIN_HEADER = "balancer.origin"  # topic:partition:offset of the record copied into the inbox

# The events `decide` acts on; nothing else is copied into the inbox.
INPUTS = (
    TaskSubmitted,
    TaskRouted,
    TaskStarted,
    TaskCompleted,
    TaskFailed,
    TaskRejected,
    TaskHandedOff,
    AgentRegistered,
    AgentCapabilitiesChanged,
    AgentDeregistered,
    AgentHealthChanged,
)
INPUT_TYPES = frozenset(cls.event_type for cls in INPUTS)


@dataclass(frozen=True)
class InboxRecord:
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()

    @classmethod
    def of(cls, message) -> "InboxRecord":
        """From a Faust message (timestamp in seconds) or an aiokafka record (in milliseconds)."""
        headers = message.headers or ()
        pairs = headers.items() if isinstance(headers, Mapping) else headers
        stamp = message.timestamp
        timestamp_ms = round(stamp * 1000) if isinstance(stamp, float) else stamp
        return cls(message.offset, timestamp_ms, message.key, message.value, tuple(pairs))

    @property
    def original_headers(self) -> tuple[tuple[str, bytes], ...]:
        return tuple((name, value) for name, value in self.headers if name not in (TICK_HEADER, ORIGIN_HEADER))

    @property
    def is_tick(self) -> bool:
        # The clock's records carry no origin: on a copied record, a tick header was its producer's.
        names = {name for name, _ in self.headers}
        return TICK_HEADER in names and ORIGIN_HEADER not in names

    def origin(self) -> tuple[str, int, int] | None:
        # The last is the balancer's own: records copied before `inbox_headers` kept their producer's first.
        for name, value in reversed(self.headers):
            if name == ORIGIN_HEADER:
                topic, partition, offset = value.decode().rsplit(":", 2)
                return topic, int(partition), int(offset)
        return None


def inbox_headers(headers, topic: str, partition: int, offset: int) -> list[tuple[str, bytes]]:
    """The headers a record is copied into the inbox with: its own, less those only the balancer may
    set, and where it came from. Any producer may send a `balancer.origin` header, which the decider
    would take for the record's origin, or a `balancer.tick`, which would make the record a tick."""
    own = [(name, value) for name, value in headers if name not in (TICK_HEADER, ORIGIN_HEADER)]
    return [*own, (ORIGIN_HEADER, f"{topic}:{partition}:{offset}".encode())]


@dataclass(frozen=True)
class Decided:
    events: list[Envelope]
    error: Exception | None = None


class InboxDecider:
    """The balancer's state and the inbox offset it reflects; applies one record at a time."""

    def __init__(self, limits: Limits, namespace: str) -> None:
        self.limits = limits
        self.namespace = namespace  # makes event ids unique to this inbox
        self.state = BalancerState()
        self.applied = -1  # offset of the last record applied
        # "topic:partition" -> the highest offset copied from it and applied. Copying is
        # at-least-once: after a restart the forwarder copies again what it had not committed,
        # and a submission copied again after its task ended would start the task anew.
        self.forwarded: dict[str, int] = {}
        # The latest record timestamp so far. Copies of the balancer forward different input
        # partitions, and a record one of them stamped earlier can reach the inbox after one the
        # other stamped later; time taken from each record would then go backwards, and a decision
        # made after an agent's completion was read would be stamped as if before it.
        self.clock_ms = 0

    def apply(self, record: InboxRecord) -> Decided:
        self.clock_ms = max(self.clock_ms, record.timestamp_ms)
        now, cause = datetime.fromtimestamp(self.clock_ms / 1000, timezone.utc), None
        self.applied = record.offset
        if origin := record.origin():
            topic, partition, offset = origin
            if offset <= self.forwarded.get(f"{topic}:{partition}", -1):
                return Decided([])
            self.forwarded[f"{topic}:{partition}"] = offset
        try:
            if record.is_tick:
                bodies = tick(self.state, now, self.limits)
            else:
                cause = decode(record.value, header_type(record.original_headers))
                bodies = decide(self.state, cause.body, now, self.limits)
        except Exception as error:  # noqa: BLE001 - the same record fails the same way on replay
            return Decided([], error)
        return Decided(
            [
                make_event(
                    body,
                    producer=PRODUCER,
                    cause=cause,
                    occurred_at=now,
                    event_id=str(uuid5(NAMESPACE_URL, f"{self.namespace}/{record.offset}/{n}")),
                )
                for n, body in enumerate(bodies)
            ]
        )

    def snapshot(self) -> bytes:
        return orjson.dumps(
            {
                "offset": self.applied,
                "forwarded": self.forwarded,
                "clock_ms": self.clock_ms,
                "state": encode_state(self.state),
            }
        )

    def restore(self, snapshot: bytes) -> None:
        data = orjson.loads(snapshot)
        self.state, self.applied, self.forwarded = decode_state(data["state"]), data["offset"], data["forwarded"]
        self.clock_ms = data.get("clock_ms", 0)  # snapshots from before the clock start it at the next record


class InboxHistory(Protocol):
    async def latest_snapshot(self) -> bytes | None: ...

    async def save_snapshot(self, snapshot: bytes) -> None: ...

    def records(self, start: int, stop: int) -> AsyncIterator[InboxRecord]: ...

    async def emitted_since(self, timestamp_ms: int) -> set[str]:
        """Ids of the events the balancer published from about that time on."""


class OrderedDecisions:
    """Takes inbox records as the consumer delivers them and keeps the decider exactly in step.

    A snapshot is written only once every event decided before it is on the broker, so a
    record at or below a snapshot's offset has had its decisions emitted and is skipped.
    """

    def __init__(
        self,
        decider: InboxDecider,
        history: InboxHistory,
        *,
        emit: Callable[[list[Envelope]], Awaitable[None]],
        park: Callable[[InboxRecord, Exception], Awaitable[None]],
        flush: Callable[[], Awaitable[None]],
        snapshot_every: int,
    ) -> None:
        self.decider = decider
        self.history = history
        self.emit = emit
        self.park = park
        self.flush = flush
        self.snapshot_every = snapshot_every
        self.restored = False
        self.snapshot_at = -1
        self.next_delivery: int | None = None  # the offset the consumer delivers next, unless it moved
        self.already_emitted: set[str] = set()  # by a copy that decided the coming records before

    async def take(self, record: InboxRecord) -> bool:
        """Decide one record; False when it was decided before and is skipped."""
        if not self.restored:
            if snapshot := await self.history.latest_snapshot():
                self.decider.restore(snapshot)
                self.snapshot_at = self.decider.applied
            self.restored = True
            log.info(
                "taking the inbox at offset %d; %s",
                record.offset,
                f"snapshot at offset {self.snapshot_at}" if snapshot else "no snapshot",
            )
        if record.offset != self.next_delivery:
            # Delivery starts from a committed offset (a start, or the inbox given back after a
            # rebalance): what follows may have been decided, and published, by the last owner.
            self.already_emitted = await self.history.emitted_since(record.timestamp_ms - CLOCK_SKEW_MS)
            log.info(
                "%d of the balancer's events since offset %d was written are already published",
                len(self.already_emitted),
                record.offset,
            )
        self.next_delivery = record.offset + 1
        if record.offset <= self.decider.applied:
            return False
        if record.offset > self.decider.applied + 1:
            start = self.decider.applied + 1
            async for earlier in self.history.records(start, record.offset):
                self.decider.apply(earlier)
            log.info("replayed inbox offsets %d to %d without publishing", start, record.offset - 1)
        decided = self.decider.apply(record)
        if decided.error is not None:
            await self.park(record, decided.error)
        await self.emit([e for e in decided.events if e.event_id not in self.already_emitted])
        if self.decider.applied - self.snapshot_at >= self.snapshot_every:
            snapshot = self.decider.snapshot()
            await self.flush()
            await self.history.save_snapshot(snapshot)
            self.snapshot_at = self.decider.applied
        return True
