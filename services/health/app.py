"""The health monitor's Faust app: the shell around `services.health.logic`.

    <prefix>.agents, .heartbeats ──▶ watch ──▶ table `agent-health` (keyed by agent)
    timer ─▶ on_tick for every agent this worker owns ─▶ <prefix>.health
                                         (AgentHealthChanged, AgentLoadSummarized)

Verdicts have a topic of their own, which only the monitor may write: on the agents topic,
which every agent writes, any agent could declare another unhealthy.

A heartbeat counts from when the broker wrote it (the heartbeats topic stamps records with
their append time), and silence is judged only up to where the monitor has read the agent's
partition: how far is kept per partition from what the consumer hands over, what is
processed and the consumer's position (see `read_until` in the logic). A verdict is
announced only once the state that holds it is on the changelog (`remember`): the restarted
monitor's next verdict then names as previous the one it last announced.

The monitor reads no per-task event: which tasks an agent holds is the balancer's to know,
and the balancer reassigns them when the agent is declared unhealthy. Records whose
`event_type` header names an event the monitor does not watch (capability changes, memory
profiles) are passed over unread; an event on a topic the catalog does not give it is parked.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Callable
from datetime import datetime, timezone

import faust
from faust.transport.utils import DefaultSchedulingStrategy
from faust.types import TP

from events.agents import AgentHealthChanged
from events.codec import decode, encode, header_type, type_header, wanted
from events.envelope import EventBody, make_event
from events.topics import DEAD_LETTER, misplaced, topic_name
from services.deadletter.park import ConsumedRecord, park_on
from services.faust_worker import ProcessorSite, processor_app
from services.health.logic import (
    WATCHED,
    AgentState,
    Policy,
    Reading,
    agent_of,
    announced,
    decode_state,
    encode_state,
    new_state,
    on_event,
    on_tick,
    read_to_end,
    read_until,
    remember,
)
from services.identity.gate import IdentityGate
from services.kafka import partition_of
from services.metrics import ProcessorMetrics

SERVICE = "health"
log = logging.getLogger("orchestrator.health")
LOG_APPEND_TIME = 1  # a record's timestamp type when the broker stamped it


def create_app(
    *,
    site: ProcessorSite,
    policy: Policy,
    tick_interval_s: float,
    metrics: ProcessorMetrics,
    clock: Callable[[], datetime],
    identity: IdentityGate | None = None,
) -> faust.App:
    agents_topic, heartbeats_topic = (topic_name(name, site.topic_prefix) for name in ("agents", "heartbeats"))
    readings: dict[tuple[str, int], Reading] = {}
    handings = itertools.count(1)
    processed = {"in": 0}  # the latest handing a record processed came in (see `read_to_end`)

    def reading(topic: str, partition: int) -> Reading:
        return readings.setdefault((topic, partition), Reading())

    class Handing(DefaultSchedulingStrategy):
        """Faust's order of records, noting for each partition the records handed over and in which handing."""

        def iterate(self, records):
            handing = next(handings)
            for tp, batch in records.items():
                if batch and tp.topic in (agents_topic, heartbeats_topic):
                    reading(tp.topic, tp.partition).hand(batch[0].offset, batch[-1].offset, handing)
            return super().iterate(records)

    app = processor_app(
        site,
        # The memory store replays the whole changelog on every recovery anyway; a standby
        # would only be one more copy to keep up to date.
        table_standby_replicas=0,
        ConsumerScheduler=Handing,
    )
    raw = {"key_serializer": "raw", "value_serializer": "raw"}
    agent_topics = app.topic(agents_topic, heartbeats_topic, **raw)
    verdicts_topic = topic_name("health", site.topic_prefix)
    verdicts = app.topic(verdicts_topic, **raw)
    dead_letters = app.topic(topic_name(DEAD_LETTER, site.topic_prefix), **raw)
    # Keys are agent ids as bytes and placed by the producer's partitioner, not by the
    # partition of the event being processed: the timer writes outside any stream, and this
    # way each agent's state lands in the changelog partition numbered like its heartbeats,
    # which is what a worker restores when it is given those partitions.
    table = app.Table("agent-health", key_type=bytes, value_type=bytes, use_partitioner=True)

    def store(key: bytes, before: AgentState, after: AgentState | None) -> None:
        if after is None:
            if key in table:
                del table[key]
        elif after != before:
            table[key] = encode_state(after)  # a new value each time, so the changelog sees it

    async def emit(bodies: list[EventBody], now: datetime) -> None:
        for body in bodies:
            event = make_event(body, producer=SERVICE, occurred_at=now)
            await verdicts.send(key=event.key.encode(), value=encode(event), headers=[type_header(event)])
            metrics.events_out.labels(SERVICE, verdicts_topic).inc()

    async def park(message, error: Exception) -> None:
        await park_on(dead_letters, ConsumedRecord.of(message), error, SERVICE, metrics)

    def written_at(message) -> datetime:
        """When the broker wrote the record (when it is read, on a topic still keeping its producer's time)."""
        if message.timestamp_type == LOG_APPEND_TIME and message.timestamp:
            return datetime.fromtimestamp(message.timestamp, tz=timezone.utc)
        return clock()

    async def take(message) -> None:
        written = written_at(message)
        try:
            await handle(message, written)
        finally:
            handing = reading(message.topic, message.partition).finish(message.offset, written)
            processed["in"] = max(processed["in"], handing)

    async def handle(message, written: datetime) -> None:
        metrics.events_in.labels(SERVICE, message.topic).inc()
        metrics.consumed_message(app.consumer, message)
        if not wanted(message.headers, WATCHED):
            return
        started = time.perf_counter()
        if identity and await identity.refuses(message):
            return
        try:
            event = decode(message.value, header_type(message.headers))
            if error := misplaced(event.event_type, message.topic):
                raise error
            agent_id = agent_of(event.body)
            if agent_id is None:
                return
            key = agent_id.encode()
            state = decode_state(table[key]) if key in table else new_state(agent_id)
            step = on_event(state, event, now=written, policy=policy)
        except Exception as error:  # noqa: BLE001 - bad input is parked, never stops the stream
            await park(message, error)
            return
        store(key, state, step.state)
        await emit(step.emitted, clock())
        metrics.events_applied.labels(SERVICE, message.topic).inc()
        metrics.handler_seconds.labels(SERVICE, message.topic).observe(time.perf_counter() - started)

    if identity:
        identity.stop_with(app)

    @app.agent(agent_topics)
    async def watch(stream):
        async for event in stream.events():
            await take(event.message)

    # Per partition, since when this worker has been able to judge it: given, and read far
    # enough that a tick has something to judge its agents by.
    watching: dict = {"partitions": frozenset(), "since": {}}
    judged_until: dict[int, datetime] = {}

    async def read_up_to(owned: frozenset[int], now: datetime) -> dict[int, datetime | None]:
        """Per partition, the time up to which every heartbeat of it has been read (`read_until`)."""
        tps = [TP(topic, partition) for partition in sorted(owned) for topic in (agents_topic, heartbeats_topic)]
        try:
            # Asked of the broker: the consumer's own high-water marks are as old as its last
            # fetch of each partition, and it fetches none while it holds records of it.
            ends = await app.consumer.highwaters(*tps) if tps else {}
        except Exception as error:  # noqa: BLE001 - nothing known to be read to the end this time
            log.warning("end offsets of the agents and heartbeats topics not known: %r", error)
            ends = {}
        at_end = {}
        for tp in tps:
            read, end = reading(tp.topic, tp.partition), ends.get(tp)
            at_end[tp] = read_to_end(read, end=end, processed_in=processed["in"])
            if at_end[tp] is None:
                try:
                    position = await app.consumer.position(tp)
                    at_end[tp] = read_to_end(read, end=end, position=position, processed_in=processed["in"])
                except Exception:  # noqa: BLE001 - a partition being given or taken has no position
                    at_end[tp] = False
        until = {}
        for partition in owned:
            both = at_end[TP(agents_topic, partition)] and at_end[TP(heartbeats_topic, partition)]
            heartbeats = reading(heartbeats_topic, partition)
            until[partition] = read_until(heartbeats, at_end=both, now=now, before=judged_until.get(partition))
            if until[partition] is not None:
                judged_until[partition] = until[partition]
        return until

    async def delivered(sends) -> None:
        """Wait until the broker has each of these records; raise the first refusal, if any."""
        for outcome in await asyncio.gather(*sends, return_exceptions=True):
            if isinstance(outcome, BaseException):
                raise outcome

    async def announce(keys: list[bytes]) -> None:
        """Announce the verdicts these agents' states hold, once those states are on the changelog."""
        held = {key: table[key] for key in keys if key in table}
        if not held:
            return
        try:
            # Written again and waited for: a key's writes reach the changelog in order, so
            # once this one is there, so is the state it was copied from.
            await delivered([table.send_changelog(None, key, value) for key, value in held.items()])
            sent = []
            for key, value in held.items():
                for announcement in decode_state(value).unannounced:
                    event = decode(announcement)
                    sent.append(await verdicts.send(key=key, value=encode(event), headers=[type_header(event)]))
                    metrics.events_out.labels(SERVICE, verdicts_topic).inc()
            await delivered(sent)
        except Exception as error:  # noqa: BLE001 - held, and tried again at the next tick
            log.warning("verdicts of %d agents held until their state is on the changelog: %r", len(held), error)
            return
        for key, value in held.items():
            if key in table:
                state = decode_state(table[key])
                store(key, state, announced(state, decode_state(value).unannounced))

    @app.timer(interval=tick_interval_s)
    async def tick():
        if app.rebalancing or app.in_recovery:
            return
        now = clock()
        owned = frozenset(tp.partition for tp in app.assignor.assigned_actives() if tp.topic == heartbeats_topic)
        if owned != watching["partitions"]:
            watching.update(partitions=owned, since={})
        until = await read_up_to(owned, now)
        for partition, at in until.items():
            if at is not None:
                # Silence before this delays a worse verdict. It starts when the partition can
                # first be judged, not when it was given: reading a backlog of other partitions
                # first may take longer than the policy's intervals.
                watching["since"].setdefault(partition, now)
        emitted: list[EventBody] = []
        announcing: list[bytes] = []
        for key, raw_state in list(table.items()):
            # The memory store keeps what it wrote for partitions since given to another worker.
            if partition_of(key) not in owned:
                continue
            state = decode_state(raw_state)
            at = until[partition_of(key)]
            after: AgentState | None = state
            if at is not None:  # None: nothing of its partition read yet, nothing to judge it by
                step = on_tick(state, now=at, policy=policy, watching_since=watching["since"][partition_of(key)])
                verdicts_due = [body for body in step.emitted if isinstance(body, AgentHealthChanged)]
                emitted += [body for body in step.emitted if not isinstance(body, AgentHealthChanged)]
                after = step.state
                if after is not None and verdicts_due:
                    events = (make_event(body, producer=SERVICE, occurred_at=now) for body in verdicts_due)
                    after = remember(after, [encode(event).decode() for event in events])
                store(key, state, after)
            if after is not None and after.unannounced:
                announcing.append(key)
        await emit(emitted, now)
        await announce(announcing)

    return app
