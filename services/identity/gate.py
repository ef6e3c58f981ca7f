"""The one check every consumer of agent-speaking events applies before handling one.

The gate folds the `security` topic (enrolled and revoked keys) and the `assignments` topic
(who holds which attempt) with a consumer of its own, outside any group, which keeps
following them in the background, so an assignment is usually known before the agent's
answer to it arrives. When a record names a key or an attempt not known yet and was written
after the last time the gate made sure it had read up to the end, it makes sure again: an
honest record is always written after its key was enrolled and its attempt assigned, so a
miss after such a reading is final, and a replay judges every old record as the live run did.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable

from aiokafka import AIOKafkaConsumer, TopicPartition

from events.codec import decode, header_type
from events.errors import EventDecodeError
from events.topics import EVENT_TOPICS
from services import kafka
from services.identity.verify import FOLDED_TYPES, Assignments, Inbound, KeyRegistry, Violation, claim_of, verify
from services.settings import Settings

FOLDED = ("security", "assignments")
# Producers' clocks may run a little ahead of ours: a reading counts as later than a record
# only when it started this long after the record's timestamp.
CLOCK_MARGIN_MS = 1000
# How stale the known revocations may be when a signed record is checked.
REVOCATION_REFRESH_MS = 1000
log = logging.getLogger("orchestrator.identity")


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


def revocations_may_be_stale(written_ms: int, read_from_ms: int, now_ms: int) -> bool:
    """A revocation may have come since the last reading, and before this record."""
    return now_ms - read_from_ms > REVOCATION_REFRESH_MS and written_ms > read_from_ms


def miss_may_resolve(violation: Violation | None, written_ms: int, read_from_ms: int) -> bool:
    """An unknown key or attempt may be on the broker already: the last reading began before the record."""
    return violation is not None and violation.kind in ("unknown_key", "not_assignee") and written_ms > read_from_ms


async def open_folded_topics(
    settings: Settings, folded: tuple[str, ...] = FOLDED
) -> tuple[AIOKafkaConsumer, list[TopicPartition]]:
    """A started consumer at the start of every partition of the topics the gate folds."""
    consumer = kafka.consumer(settings)
    await kafka.start(consumer, settings)
    partitions = kafka.partitions(settings, [s for s in EVENT_TOPICS if s.name in folded])
    consumer.assign(partitions)
    await consumer.seek_to_beginning(*partitions)
    return consumer, partitions


class IdentityGate:
    def __init__(
        self,
        settings: Settings,
        *,
        clock: Callable[[], int] = wall_ms,
        open_log: Callable[[Settings], Awaitable[tuple]] | None = None,
        outcomes: bool = True,
    ) -> None:
        """`outcomes=False`: for a consumer that reads no outcomes, so needs no assignments (nor access to them)."""
        self.settings = settings
        self.mode = settings.identity_mode
        self.clock = clock
        self.open_log = open_log or functools.partial(open_folded_topics, folded=FOLDED if outcomes else ("security",))
        self.keys = KeyRegistry()
        self.assignments = Assignments()
        self._consumer: AIOKafkaConsumer | None = None
        self._partitions: list = []
        self._lock = asyncio.Lock()
        self._read_from_ms = -1  # when the latest reading to the end started
        self._folded: dict = {}  # partition -> the offset below which every record is folded
        self._progress = asyncio.Condition()
        self._follower: asyncio.Task | None = None
        self._failure: BaseException | None = None
        # Only these topics carry records that speak for an agent or for the orchestrator; the rest pass unread.
        self._checked = ({settings.topic("task-outcomes")} if outcomes else set()) | (
            {settings.topic(name) for name in ("agents", "heartbeats", "tasks")} if self.mode == "verify" else set()
        )

    async def check(self, record) -> Violation | None:
        """Why `record` (aiokafka record or Faust message) does not come from the agent it speaks for, or None."""
        if record.topic not in self._checked:
            return None
        inbound = Inbound.of(record)
        claim = claim_of(inbound.value)
        if claim is None or (self.mode == "off" and not claim.is_outcome):
            return None
        if self._consumer is None:
            await self._start()
        now = self.clock()
        written_ms = min(inbound.timestamp_ms + CLOCK_MARGIN_MS, now)
        if self.mode == "verify" and revocations_may_be_stale(written_ms, self._read_from_ms, now):
            await self._read_to_end(written_ms)
        violation = verify(inbound, claim, self.keys, self.assignments, mode=self.mode)
        if miss_may_resolve(violation, written_ms, self._read_from_ms):
            await self._read_to_end(written_ms)
            violation = verify(inbound, claim, self.keys, self.assignments, mode=self.mode)
        return violation

    async def split(self, records) -> tuple[list, list[tuple[object, Violation]]]:
        """(accepted records, [(refused record, why)]), in their order."""
        accepted, refused = [], []
        for record in records:
            violation = await self.check(record)
            if violation is None:
                accepted.append(record)
            else:
                refused.append((record, violation))
        return accepted, refused

    async def refuses(self, record) -> bool:
        """For processors that only skip what the projector reports."""
        violation = await self.check(record)
        if violation is not None:
            log.debug("skipping %s[%d]@%d: %s", record.topic, record.partition, record.offset, violation.reason)
        return violation is not None

    def stop_with(self, app) -> None:
        """Stop following when the Faust app stops: it cancels its tasks then."""

        @app.task
        async def stop_identity_gate_with_the_app():
            await self.stop_when_cancelled()

    async def stop_when_cancelled(self) -> None:
        """Run as a Faust app task: the app cancels its tasks when it stops."""
        try:
            await asyncio.Event().wait()
        finally:
            await self.stop()

    async def stop(self) -> None:
        follower, self._follower = self._follower, None
        if follower is not None:
            follower.cancel()
            await asyncio.gather(follower, return_exceptions=True)
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            await consumer.stop()

    async def _start(self) -> None:
        async with self._lock:
            if self._consumer is not None:
                return
            self._consumer, self._partitions = await self.open_log(self.settings)
            self._follower = asyncio.create_task(self._follow(), name="identity gate follower")
        await self._read_to_end(self.clock())

    async def _follow(self) -> None:
        consumer = self._consumer
        try:
            while True:
                for records in (await consumer.getmany(timeout_ms=200)).values():
                    for record in records:
                        self._fold(record)
                # Positions are read only after folding, and only this task moves them.
                folded = {tp: await consumer.position(tp) for tp in self._partitions}
                async with self._progress:
                    self._folded = folded
                    self._progress.notify_all()
        except asyncio.CancelledError:
            raise
        except Exception as error:  # noqa: BLE001 - whoever waits on the gate must hear of it
            log.exception("the identity gate stopped following the security and assignments topics")
            async with self._progress:
                self._failure = error
                self._progress.notify_all()

    async def _read_to_end(self, needed_from_ms: int) -> None:
        """Make sure every record written to the folded topics before now is folded."""
        async with self._lock:
            if self._read_from_ms >= needed_from_ms:
                return  # someone made sure while this caller waited
            started = self.clock()
            ends = await self._consumer.end_offsets(self._partitions)
            async with self._progress:
                await self._progress.wait_for(
                    lambda: self._failure is not None or all(self._folded.get(tp, 0) >= end for tp, end in ends.items())
                )
            if self._failure is not None:
                raise RuntimeError(
                    "the identity gate cannot read the security and assignments topics"
                ) from self._failure
            self._read_from_ms = started

    def _fold(self, record) -> None:
        named = header_type(record.headers)
        if named is not None and named not in FOLDED_TYPES:
            return  # a violation report: nothing the gate keeps
        try:
            # Straight from bytes as the type the header names (every TaskAssigned is read by every gate).
            body = decode(record.value, named).body
        except EventDecodeError:
            return  # the projector parks what cannot be read
        self.keys.apply(body)
        self.assignments.apply(body)
