"""The balancer's Faust app: the shell around `services.balancer.logic`.

    <prefix>.tasks, .task-outcomes, .agents ─▶ forward ─┐
    timer (only the inbox's owner) ── tick ─────────────┴─▶ <app id>-inbox (1 partition, kept forever)
                                                                  │
                                                           decide_in_order
                                  TaskAssigned ─▶ <prefix>.assignments (keyed by agent) ◀─┤
        TaskQueued / TaskReassigned / TaskTimedOut ─▶ <prefix>.tasks (keyed by task)  ◀───┘

Capacity is per agent, but task events are keyed by task, so no partitioning by key keeps
all decisions about one agent in one place. Every input therefore goes, with its original
bytes, into one single-partition inbox read by one decider: decisions are serialized and
each sees the effect of the one before. That is enough at the expected ~1k events/s: one
Python decider takes ~25k inputs/s, and a completion that places a waiting task costs about
0.03 ms with 16,000 waiting (`queue.py` keeps them in order; `python -m bench.balancer_queue`).
More copies are standbys the group hands the inbox to when the owner stops. How state
survives restarts: `inbox.py`.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path

import faust

from events.codec import decode, encode
from events.envelope import Envelope
from events.topics import DEAD_LETTER, PARTITIONS, topic_for_event, topic_name
from services.balancer.inbox import (ORIGIN_HEADER, TICK_HEADER, INPUTS, InboxDecider, InboxHistory, InboxRecord,
                                     OrderedDecisions)
from services.balancer.logic import Limits
from services.balancer.state import waits_on_time
from services.deadletter import ConsumedRecord, park_on
from services.identity.gate import IdentityGate
from services.metrics import ProcessorMetrics

SERVICE = "balancer"
INPUT_TOPICS = ("tasks", "task-outcomes", "agents")
log = logging.getLogger("orchestrator.balancer")


def create_app(*, app_id: str, brokers: list[str], topic_prefix: str, replication_factor: int, datadir: Path,
               inbox_topic: str, history: InboxHistory, limits: Limits, tick_interval_s: float,
               snapshot_every: int, session_timeout_s: float, metrics: ProcessorMetrics,
               identity: IdentityGate | None = None) -> faust.App:
    # The session timeout is how long the inbox waits, after its owner dies, for another copy.
    app = faust.App(app_id, broker=brokers, store="memory://", datadir=str(datadir), web_enabled=False,
                    topic_partitions=PARTITIONS, topic_replication_factor=replication_factor,
                    broker_session_timeout=session_timeout_s, broker_heartbeat_interval=session_timeout_s / 4)
    raw = {"key_serializer": "raw", "value_serializer": "raw"}
    inputs = app.topic(*(topic_name(name, topic_prefix) for name in INPUT_TOPICS), **raw)
    inbox = app.topic(inbox_topic, partitions=1, **raw)
    dead_letters = app.topic(topic_name(DEAD_LETTER, topic_prefix), **raw)
    outputs: dict[str, faust.TopicT] = {}

    async def emit(events: list[Envelope]) -> None:
        for event in events:
            name = topic_name(topic_for_event(event.event_type), topic_prefix)
            topic = outputs.get(name) or outputs.setdefault(name, app.topic(name, **raw))
            await topic.send(key=event.key.encode(), value=encode(event))
            metrics.events_out.labels(SERVICE, name).inc()

    async def park(record: ConsumedRecord, error: Exception) -> None:
        await park_on(dead_letters, record, error, SERVICE, metrics)

    async def park_from_inbox(record: InboxRecord, error: Exception) -> None:
        # Parked under its original position, so `dlq replay` sends it back where it came from.
        topic, partition, offset = record.origin() or (inbox_topic, 0, record.offset)
        await park(ConsumedRecord(topic, partition, offset, record.key, record.value, record.original_headers),
                   error)

    async def flush() -> None:
        await app.producer.flush()

    decisions = OrderedDecisions(InboxDecider(limits, namespace=inbox_topic), history, emit=emit,
                                 park=park_from_inbox, flush=flush, snapshot_every=snapshot_every)

    if identity:
        identity.stop_with(app)

    @app.agent(inputs)
    async def forward(stream):
        async for event in stream.events():
            message = event.message
            metrics.events_in.labels(SERVICE, message.topic).inc()
            record = ConsumedRecord.of(message)
            # Refused records never reach the inbox, so a replay of the inbox never meets them.
            if identity and await identity.refuses(message):
                metrics.consumed_message(app.consumer, message)
                continue
            try:
                body = decode(message.value).body
            except Exception as error:  # noqa: BLE001 - bad input is parked, never stops the stream
                await park(record, error)
                continue
            if isinstance(body, INPUTS):
                origin = f"{message.topic}:{message.partition}:{message.offset}".encode()
                await inbox.send(key=message.key, value=message.value,
                                 headers=[*record.headers, (ORIGIN_HEADER, origin)])
            metrics.consumed_message(app.consumer, message)

    def export_state() -> None:
        state = decisions.decider.state
        metrics.balancer_state(state.slots, state.tasks.values())

    @app.agent(inbox)
    async def decide_in_order(stream):
        async for event in stream.events():
            started = time.perf_counter()
            if await decisions.take(InboxRecord.of(event.message)):
                metrics.events_applied.labels(SERVICE, inbox_topic).inc()
                metrics.handler_seconds.labels(SERVICE, inbox_topic).observe(time.perf_counter() - started)
            metrics.consumed_message(app.consumer, event.message)
            if metrics.due("state"):
                export_state()

    owner = {"was": False}

    @app.timer(interval=tick_interval_s)
    async def clock():
        # Time enters the inbox as a record like any other, so a replay sees the same clock.
        if app.rebalancing or app.in_recovery:
            return
        owns = any(tp.topic == inbox_topic for tp in app.consumer.assignment())
        newly_owned, owner["was"] = owns and not owner["was"], owns
        if owns:  # the last decisions' effect, also when no event has come since
            export_state()
        # Until it has decided something since being given the inbox, the state here may be
        # stale; a tick makes the decider catch up, and then it knows what waits on time.
        if owns and (newly_owned or not decisions.restored or waits_on_time(decisions.decider.state)):
            await inbox.send(key=None, value=b"", headers=[(TICK_HEADER, b"1")])

    return app
