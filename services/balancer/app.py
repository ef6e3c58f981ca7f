"""The balancer's Faust app: the shell around `services.balancer.logic`.

    <prefix>.tasks, .task-outcomes, .agents, .health ─▶ forward ─┐
    timer (only the inbox's owner) ── tick ──────────────────────┴─▶ <app id>-inbox (1 partition, kept forever)
                                                                         │
                                                                  decide (batches, in order)
                                  TaskAssigned ─▶ <prefix>.assignments (keyed by agent) ◀─┤
        TaskQueued / TaskReassigned / TaskTimedOut ─▶ <prefix>.tasks (keyed by task)  ◀───┘

Capacity is per agent, but task events are keyed by task, so no partitioning by key keeps
all decisions about one agent in one place. Every input therefore goes, with its original
bytes, into one single-partition inbox read by one decider: decisions are serialized and
each sees the effect of the one before. One Python decider takes ~25k inputs/s, and a
completion that places a waiting task costs about 0.03 ms with 16,000 waiting (`queue.py`
keeps them in order; `python -m bench.micro.balancer_queue`). More copies are standbys the
decider's group hands the inbox to when the owner stops. How state survives restarts: `inbox.py`.

Both hops read in batches with group consumers of their own (`<app id>-forwarder`,
`<app id>-decider`; see `services/batches.py` for why not Faust streams): the forwarder copies
what the decider acts on, passing over the other records by their `event_type` header unread,
and commits once the copies are on the broker; the decider commits once the batch's decisions are.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

import faust
from aiokafka import AIOKafkaProducer

from events.codec import decode, encode, header_type, type_header
from events.envelope import Envelope
from events.topics import DEAD_LETTER, misplaced, topic_for_event, topic_name
from services.balancer.history import ForwarderProgress
from services.balancer.inbox import (
    INPUT_TYPES,
    TICK_HEADER,
    InboxDecider,
    InboxHistory,
    InboxRecord,
    OrderedDecisions,
    inbox_headers,
)
from services.balancer.logic import Limits
from services.balancer.state import waits_on_time
from services.batches import Assignment, OpenConsumer, Sends, read_group, run_readers
from services.deadletter.park import ConsumedRecord, park_on
from services.faust_worker import ProcessorSite, processor_app
from services.identity.gate import IdentityGate
from services.identity.signing import Signer
from services.metrics import ProcessorMetrics

SERVICE = "balancer"
INPUT_TOPICS = ("tasks", "task-outcomes", "agents", "health")
log = logging.getLogger("orchestrator.balancer")


def reader_group(app_id: str, reader: str) -> str:
    """The consumer group of one of the balancer's two readers: "forwarder" or "decider"."""
    return f"{app_id}-{reader}"


def create_app(
    *,
    site: ProcessorSite,
    inbox_topic: str,
    history: InboxHistory,
    limits: Limits,
    tick_interval_s: float,
    snapshot_every: int,
    metrics: ProcessorMetrics,
    open_consumer: OpenConsumer,
    commit_interval_s: float = 0.0,
    open_producer: Callable[[], Awaitable[AIOKafkaProducer]],
    forwarder_progress: ForwarderProgress | None = None,
    identity: IdentityGate | None = None,
    signer: Signer | None = None,
) -> faust.App:
    app = processor_app(site)
    input_topics = [topic_name(name, site.topic_prefix) for name in INPUT_TOPICS]
    dead_letter_topic = topic_name(DEAD_LETTER, site.topic_prefix)
    # One set of sends per reader: each commits only once its own sends are on the broker.
    copies, decided, ticks = Sends(), Sends(), Sends()
    inbox_owned = Assignment()

    async def emit(events: list[Envelope]) -> None:
        for event in events:
            name = topic_name(topic_for_event(event.event_type), site.topic_prefix)
            value = encode(event)
            # Signed, so that its decisions count where everyone who may submit a task may write too.
            headers = [type_header(event), *(signer.headers(value) if signer else ())]
            await decided.send(name, key=event.key.encode(), value=value, headers=headers)
            metrics.events_out.labels(SERVICE, name).inc()

    async def park_from_inbox(record: InboxRecord, error: Exception) -> None:
        # Parked under its original position, so `dlq replay` sends it back where it came from.
        topic, partition, offset = record.origin() or (inbox_topic, 0, record.offset)
        await park_on(
            decided.topic(dead_letter_topic),
            ConsumedRecord(topic, partition, offset, record.key, record.value, record.original_headers),
            error,
            SERVICE,
            metrics,
        )

    decisions = OrderedDecisions(
        InboxDecider(limits, namespace=inbox_topic),
        history,
        emit=emit,
        park=park_from_inbox,
        flush=decided.settle,
        snapshot_every=snapshot_every,
    )

    if identity:
        identity.stop_with(app)

    async def forward(records: list) -> None:
        for record in records:
            metrics.events_in.labels(SERVICE, record.topic).inc()
            named = header_type(record.headers)
            if named is not None and named not in INPUT_TYPES:
                continue  # passed over unread
            consumed = ConsumedRecord.of(record)
            # Refused records never reach the inbox, so a replay of the inbox never meets them.
            if identity and await identity.refuses(record):
                continue
            if named is None:  # a producer that names no type: read the record to know it
                try:
                    named = decode(record.value).event_type
                except Exception as error:  # noqa: BLE001 - bad input is parked, never stops the stream
                    await park_on(copies.topic(dead_letter_topic), consumed, error, SERVICE, metrics)
                    continue
            if named not in INPUT_TYPES:
                continue
            # An input on a topic the catalog does not give it is a forgery (a verdict on the agents
            # topic, which every agent may write): parked, and kept out of the inbox like the refused.
            if error := misplaced(named, record.topic):
                await park_on(copies.topic(dead_letter_topic), consumed, error, SERVICE, metrics)
                continue
            # Copied unread: the decider parses each input once, and parks what it cannot use.
            await copies.send(
                inbox_topic,
                key=record.key,
                value=record.value,
                headers=inbox_headers(consumed.headers, record.topic, record.partition, record.offset),
            )

    def export_state() -> None:
        state = decisions.decider.state
        metrics.balancer_state(state.slots, state.tasks.values())

    async def decide_in_order(records: list) -> None:
        for record in records:
            started = time.perf_counter()
            metrics.events_in.labels(SERVICE, inbox_topic).inc()
            if await decisions.take(InboxRecord.of(record)):
                metrics.events_applied.labels(SERVICE, inbox_topic).inc()
                metrics.handler_seconds.labels(SERVICE, inbox_topic).observe(time.perf_counter() - started)
        if metrics.due("state"):
            export_state()

    @app.task
    async def balance():
        await run_readers(
            app,
            open_producer,
            (copies, decided, ticks),
            lambda: asyncio.gather(
                read_group(
                    open_consumer,
                    reader_group(site.app_id, "forwarder"),
                    input_topics,
                    forward,
                    copies,
                    metrics,
                    in_time_order=True,
                    commit_interval_s=commit_interval_s,
                ),  # the inbox follows the order things happened
                read_group(
                    open_consumer,
                    reader_group(site.app_id, "decider"),
                    [inbox_topic],
                    decide_in_order,
                    decided,
                    metrics,
                    inbox_owned,
                    commit_interval_s=commit_interval_s,
                    prompt=True,  # the forwarder already sends its copies a batch at a time
                ),
            ),
            "the balancer stopped reading its inputs",
        )

    owner = {"was": False}

    @app.timer(interval=tick_interval_s)
    async def clock():
        # Time enters the inbox as a record like any other, so a replay sees the same clock.
        owns = bool(inbox_owned.partitions)
        newly_owned, owner["was"] = owns and not owner["was"], owns
        if owns:  # the last decisions' effect, also when no event has come since
            export_state()
        # Until it has decided something since being given the inbox, the state here may be
        # stale; a tick makes the decider catch up, and then it knows what waits on time.
        # Asked at every interval, tick or not, so that its marks are never older than one interval.
        caught_up = owns and await _forwarder_caught_up()
        if (
            caught_up
            and ticks.producer
            and (newly_owned or not decisions.restored or waits_on_time(decisions.decider.state))
        ):
            await ticks.send(inbox_topic, key=None, value=b"", headers=[(TICK_HEADER, b"1")])
            await ticks.settle()

    async def _forwarder_caught_up() -> bool:
        if forwarder_progress is None:
            return True
        try:
            return await forwarder_progress.caught_up()
        except Exception as error:  # noqa: BLE001 - no answer (a broker away): no tick, ask again next time
            log.warning("no tick: the forwarder's progress is unknown (%s)", error)
            return False

    @app.task
    async def stop_forwarder_progress_with_the_app():
        try:
            await asyncio.Event().wait()  # the app cancels its tasks when it stops
        finally:
            if forwarder_progress is not None:
                await forwarder_progress.stop()

    return app
