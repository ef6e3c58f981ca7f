"""The router's Faust app: the shell around `services.router.logic`.

    <prefix>.agents, .skills, .models, .assignments,
    .task-outcomes, .tasks ── every partition, every copy ──▶ follower ──▶ RouterFold
    <prefix>.tasks ── group `<app id>-tasks`, in batches ──▶ route ──▶ TaskRouted / TaskQueued ─▶ <prefix>.tasks
                                    `<app id>-waiting` (no capable agent yet) ◀─┘
    timer, when agents changed ──▶ route the waiting tasks this copy owns ──▶ TaskRouted

The tasks topic is read in batches by a group consumer of the app's own (`services/batches.py`
says why not a Faust stream); records whose `event_type` header names anything but a
submission are passed over unread. A task nobody can take is kept on the waiting topic
(`waiting.py`) and routed again as soon as the agents change; it leaves when its TaskRouted
(or TaskTimedOut) comes back through the tasks topic.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from datetime import datetime

import faust
from aiokafka import AIOKafkaProducer

from events.codec import decode, encode, header_type, type_header
from events.envelope import Envelope, make_event
from events.tasks import TaskQueued, TaskRouted, TaskSubmitted, TaskTimedOut
from events.topics import DEAD_LETTER, topic_name
from services.batches import Assignment, OpenConsumer, Sends, read_group, run_readers
from services.deadletter.park import ConsumedRecord, park_on
from services.faust_worker import ProcessorSite, processor_app
from services.identity.gate import IdentityGate
from services.identity.signing import Signer
from services.metrics import ProcessorMetrics
from services.router.follower import LogFollower
from services.router.logic import Weights
from services.router.policies import Policy
from services.router.waiting import WaitingTasks

SERVICE = "router"
ENDS_WAITING = frozenset({TaskRouted.event_type, TaskTimedOut.event_type})
log = logging.getLogger("orchestrator.router")


def exploration_rng(seed: int, task_id: str) -> random.Random:
    # Seeded by the task, so the draw behind any decision can be reproduced from the log.
    return random.Random(f"{seed}:{task_id}")


def create_app(
    *,
    site: ProcessorSite,
    follower: LogFollower,
    weights: Weights,
    policy: Policy,
    seed: int,
    retry_interval_s: float,
    metrics: ProcessorMetrics,
    clock: Callable[[], datetime],
    waiting_topic: str,
    open_consumer: OpenConsumer,
    commit_interval_s: float = 0.0,
    open_producer: Callable[[], Awaitable[AIOKafkaProducer]],
    read_waiting: Callable[[list[int]], Awaitable[dict[int, list]]],
    signer: Signer | None = None,
    identity: IdentityGate | None = None,
) -> faust.App:
    app = processor_app(site)
    tasks_topic = topic_name("tasks", site.topic_prefix)
    dead_letter_topic = topic_name(DEAD_LETTER, site.topic_prefix)
    decision_seconds = metrics.routing_decision_seconds
    view = follower.view
    routes, retries = Sends(), Sends()  # the batch reader's, and the timer's
    waiting = WaitingTasks()

    def decide(submitted: Envelope) -> TaskRouted | TaskQueued:
        return policy(submitted.body, view.state, weights, exploration_rng(seed, submitted.body.task_id))

    async def emit(sends: Sends, decision: TaskRouted | TaskQueued, cause: Envelope, label: str) -> None:
        event = make_event(decision, producer=SERVICE, cause=cause)
        if isinstance(decision, TaskRouted):
            view.remember_routed(decision.task_id)
        value = encode(event)
        headers = [type_header(event), *(signer.headers(value) if signer else ())]
        await sends.send(tasks_topic, key=event.key.encode(), value=value, headers=headers)
        metrics.events_out.labels(SERVICE, tasks_topic).inc()
        decision_seconds.labels(SERVICE, label).observe(max(0.0, (clock() - cause.occurred_at).total_seconds()))

    async def no_longer_waiting(record) -> None:
        if waiting.remove(record.partition, record.key):
            await routes.send(waiting_topic, key=record.key, value=None, partition=record.partition)

    async def route(records: list) -> None:
        await follower.ready.wait()
        for record in records:
            metrics.events_in.labels(SERVICE, record.topic).inc()
            named = header_type(record.headers)
            if named is not None and named != "TaskSubmitted":
                # passed over unread (the key is the task id), once the decision is known to be the orchestrator's
                if named in ENDS_WAITING and not (identity and await identity.refuses(record)):
                    await no_longer_waiting(record)
                continue
            started = time.perf_counter()
            try:
                envelope = decode(record.value, named)
                body = envelope.body
                if isinstance(body, TaskSubmitted) and view.already_routed(body.task_id):
                    continue  # delivered again: it was decided once, and that decision stands
                decision = decide(envelope) if isinstance(body, TaskSubmitted) else None
            except Exception as error:  # noqa: BLE001 - bad input is parked, never stops the stream
                await park_on(routes.topic(dead_letter_topic), ConsumedRecord.of(record), error, SERVICE, metrics)
                continue
            if decision is None:
                if isinstance(body, (TaskRouted, TaskTimedOut)) and not (identity and await identity.refuses(record)):
                    await no_longer_waiting(record)
                continue
            if isinstance(decision, TaskQueued):
                waiting.add(record.partition, record.key, record.value)
                await routes.send(waiting_topic, key=record.key, value=record.value, partition=record.partition)
            await emit(routes, decision, envelope, "routed" if isinstance(decision, TaskRouted) else "queued")
            metrics.events_applied.labels(SERVICE, record.topic).inc()
            metrics.handler_seconds.labels(SERVICE, record.topic).observe(time.perf_counter() - started)

    class OwnedTasks(Assignment):
        async def on_partitions_revoked(self, revoked) -> None:
            await super().on_partitions_revoked(revoked)
            waiting.forget(tp.partition for tp in revoked)

        async def on_partitions_assigned(self, assigned) -> None:
            # Before the first batch of a partition: the tasks that were waiting there.
            for partition, records in (await read_waiting([tp.partition for tp in assigned])).items():
                waiting.restore(partition, records)
            await super().on_partitions_assigned(assigned)

    owned_tasks = OwnedTasks()
    if identity:
        identity.stop_with(app)

    @app.task
    async def follow_the_log():
        try:
            await follower.run()
        except asyncio.CancelledError:
            raise
        except Exception as error:  # noqa: BLE001 - routing blind would be worse than stopping
            log.exception("the router's view stopped following the log")
            await app.crash(error)

    @app.task
    async def route_tasks():
        await run_readers(
            app,
            open_producer,
            (routes, retries),
            lambda: read_group(
                open_consumer,
                f"{site.app_id}-tasks",
                [tasks_topic],
                route,
                routes,
                metrics,
                owned_tasks,
                commit_interval_s=commit_interval_s,
                prompt=True,  # each submission is decided alone; clients send them as they come
            ),
            "the router stopped reading the tasks topic",
        )

    seen = {"registry": -1, "owned": frozenset(), "exported": -1}

    @app.timer(interval=retry_interval_s)
    async def route_waiting():
        if view.registry_version != seen["exported"]:
            seen["exported"] = view.registry_version
            metrics.routable_agents(view.state.agents.values())
        if not follower.ready.is_set() or retries.producer is None:
            return
        owned = frozenset(tp.partition for tp in owned_tasks.partitions)
        if (view.registry_version, owned) == (seen["registry"], seen["owned"]):
            return  # nothing that decides who is capable has changed
        seen.update(registry=view.registry_version, owned=owned)
        for partition, key, value in waiting.items():
            if view.already_routed(key.decode()) or partition not in owned:  # routed, not yet read back
                continue
            submitted = decode(value)
            decision = decide(submitted)
            if isinstance(decision, TaskRouted):
                await emit(retries, decision, submitted, "routed-after-waiting")
        await retries.settle()

    return app
