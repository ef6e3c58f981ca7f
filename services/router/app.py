"""The router's Faust app: the shell around `services.router.logic`.

    <prefix>.agents, .skills, .models, .assignments,
    .task-outcomes, .tasks ── every partition, every copy ──▶ follower ──▶ RouterView
    <prefix>.tasks ── in the group, by task ──▶ route_tasks ──▶ TaskRouted / TaskQueued ─▶ <prefix>.tasks
                                    table `waiting-tasks` (no capable agent yet) ◀─┘
    timer, when agents changed ──▶ route the waiting tasks this copy owns ──▶ TaskRouted

A task nobody can take is kept, keyed by task id, and routed again as soon as the agents
change; it leaves the table when its TaskRouted comes back through the tasks topic, inside
the stream, where Faust lets a table be written.
"""
from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import faust

from events.codec import decode, encode, header_type, type_header
from events.envelope import Envelope, make_event
from events.tasks import TaskQueued, TaskRouted, TaskSubmitted, TaskTimedOut
from events.topics import DEAD_LETTER, PARTITIONS, topic_name
from services.deadletter import ConsumedRecord, park_on
from services.kafka import partition_of
from services.metrics import ProcessorMetrics
from services.router.follower import LogFollower
from services.router.logic import Weights
from services.router.policies import Policy

SERVICE = "router"
ENDS_WAITING = frozenset({TaskRouted.event_type, TaskTimedOut.event_type})
log = logging.getLogger("orchestrator.router")


def exploration_rng(seed: int, task_id: str) -> random.Random:
    # Seeded by the task, so the draw behind any decision can be reproduced from the log.
    return random.Random(f"{seed}:{task_id}")


def create_app(*, app_id: str, brokers: list[str], topic_prefix: str, replication_factor: int, datadir: Path,
               follower: LogFollower, weights: Weights, policy: Policy, seed: int, retry_interval_s: float,
               metrics: ProcessorMetrics, clock: Callable[[], datetime]) -> faust.App:
    app = faust.App(app_id, broker=brokers, store="memory://", datadir=str(datadir), web_enabled=False,
                    topic_partitions=PARTITIONS, topic_replication_factor=replication_factor,
                    table_standby_replicas=0)
    raw = {"key_serializer": "raw", "value_serializer": "raw"}
    tasks_topic = topic_name("tasks", topic_prefix)
    tasks = app.topic(tasks_topic, **raw)
    dead_letters = app.topic(topic_name(DEAD_LETTER, topic_prefix), **raw)
    # task id -> its TaskSubmitted, as received; written in the task's partition of the tasks topic
    waiting = app.Table("waiting-tasks", key_type=bytes, value_type=bytes, partitions=PARTITIONS)
    decision_seconds = metrics.routing_decision_seconds
    view = follower.view
    routed_from_waiting: set[bytes] = set()  # emitted, not yet back through the stream to be removed

    def decide(submitted: Envelope) -> TaskRouted | TaskQueued:
        return policy(submitted.body, view.state, weights, exploration_rng(seed, submitted.body.task_id))

    async def emit(decision: TaskRouted | TaskQueued, cause: Envelope, label: str) -> None:
        event = make_event(decision, producer=SERVICE, cause=cause)
        await tasks.send(key=event.key.encode(), value=encode(event), headers=[type_header(event)])
        metrics.events_out.labels(SERVICE, tasks_topic).inc()
        decision_seconds.labels(SERVICE, label).observe(max(0.0, (clock() - cause.occurred_at).total_seconds()))

    async def park(message, error: Exception) -> None:
        await park_on(dead_letters, ConsumedRecord.of(message), error, SERVICE, metrics)

    @app.task
    async def follow_the_log():
        try:
            await follower.run()
        except asyncio.CancelledError:
            raise
        except Exception as error:  # noqa: BLE001 - routing blind would be worse than stopping
            log.exception("the router's view stopped following the log")
            await app.crash(error)

    @app.agent(tasks)
    async def route_tasks(stream):
        async for event in stream.events():
            message = event.message
            metrics.events_in.labels(SERVICE, message.topic).inc()
            named = header_type(message.headers)
            if named is not None and named != "TaskSubmitted":
                # Passed over unread: only a routing or an expiry of a waiting task matters here,
                # and the record's key is its task id.
                if named in ENDS_WAITING and message.key in waiting:
                    del waiting[message.key]
                    routed_from_waiting.discard(message.key)
                metrics.consumed_message(app.consumer, message)
                continue
            started = time.perf_counter()
            try:
                envelope = decode(message.value, named)
            except Exception as error:  # noqa: BLE001 - bad input is parked, never stops the stream
                await park(message, error)
                continue
            body = envelope.body
            if isinstance(body, TaskSubmitted):
                await follower.ready.wait()
                try:
                    decision = decide(envelope)
                except Exception as error:  # noqa: BLE001
                    await park(message, error)
                    continue
                if isinstance(decision, TaskQueued):
                    waiting[body.task_id.encode()] = message.value
                await emit(decision, envelope, "routed" if isinstance(decision, TaskRouted) else "queued")
            elif isinstance(body, (TaskRouted, TaskTimedOut)) and (key := body.task_id.encode()) in waiting:
                del waiting[key]  # routed after waiting, or expired
                routed_from_waiting.discard(key)
            metrics.events_applied.labels(SERVICE, message.topic).inc()
            metrics.handler_seconds.labels(SERVICE, message.topic).observe(time.perf_counter() - started)
            metrics.consumed_message(app.consumer, message)

    seen = {"registry": -1, "owned": frozenset(), "exported": -1}

    @app.timer(interval=retry_interval_s)
    async def route_waiting():
        if view.registry_version != seen["exported"]:
            seen["exported"] = view.registry_version
            metrics.routable_agents(view.state.agents.values())
        if app.rebalancing or app.in_recovery or not follower.ready.is_set():
            return
        owned = frozenset(tp.partition for tp in app.assignor.assigned_actives() if tp.topic == tasks_topic)
        if (view.registry_version, owned) == (seen["registry"], seen["owned"]):
            return  # nothing that decides who is capable has changed
        seen.update(registry=view.registry_version, owned=owned)
        for key, value in list(waiting.items()):
            # The memory store keeps what it wrote for partitions since given to another copy.
            if key in routed_from_waiting or partition_of(key) not in owned:
                continue
            submitted = decode(value)
            decision = decide(submitted)
            if isinstance(decision, TaskRouted):
                routed_from_waiting.add(key)
                await emit(decision, submitted, "routed-after-waiting")

    return app
