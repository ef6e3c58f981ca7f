"""An agent process: registers, heartbeats, runs its own assignments, reports each outcome once.

Start-up order matters. The transactional producer starts first, which aborts anything a
previous process of this agent left half-done; only then is the committed position read, so
it is final. The position is fixed before AgentRegistered is sent: a brand-new agent starts at
the end of its partition, since nothing is assigned to an agent before it registers.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from aiokafka import TopicPartition
from aiokafka.errors import KafkaError

from events.agents import AgentDeregistered, AgentHeartbeat
from events.codec import decode, encode, type_header
from events.envelope import Envelope, EventBody, make_event
from events.errors import EventDecodeError, InvalidEvent
from events.tasks import TaskAssigned, TaskHandedOff, TaskRejected, TaskStarted
from events.topics import topic_for_event
from events.values import Capability, MemoryProfile
from services.deadletter.park import dead_letter_headers
from services.identity.signing import Signer, load_signer
from services.sdk.capacity import Slots, read_ahead_window
from services.sdk.ledger import Ledger
from services.sdk.outbox import Outbox, Outgoing, backoff
from services.sdk.partitions import partition_for
from services.sdk.registration import InvalidAgent, declaration
from services.sdk.results import Completed, Failed, outcome_for
from services.sdk.task import Task
from services.sdk.transport import KafkaTransactions, committed_position, end_offset, partition_consumer, stop_quietly
from services.sdk.usage import ProcessUsage
from services.settings import Settings

log = logging.getLogger("orchestrator.sdk")

Handler = Callable[[Task], Awaitable[Completed]]
POLL_MS = 500
LAST_WORDS_TIMEOUT_S = 10.0


class NotDeregistered(RuntimeError):
    pass


@dataclass(eq=False)
class _Job:
    offset: int
    assignment: Envelope
    ended: bool = False  # its final outcome (or a whole-task hand-off) is queued
    runner: asyncio.Task | None = None
    handler: asyncio.Task | None = field(default=None, repr=False)

    @property
    def body(self) -> TaskAssigned:
        return self.assignment.body


class Agent:
    def __init__(
        self,
        agent_id: str,
        capabilities: Iterable[Capability | Mapping],
        capacity: int,
        handler: Handler,
        *,
        display_name: str | None = None,
        capacity_per_capability: Mapping[str, int] | None = None,
        cost_per_task: float = 0.0,
        labels: Mapping[str, str] | None = None,
        memory_profile: MemoryProfile | Mapping | None = None,
        version: str | None = None,
        heartbeat_interval: float = 5.0,
        drain_timeout: float = 30.0,
        settings: Settings | None = None,
        signing_key: Signer | str | Path | None = None,
    ) -> None:
        self.registration = declaration(
            agent_id=agent_id,
            capabilities=capabilities,
            capacity=capacity,
            display_name=display_name,
            capacity_per_capability=capacity_per_capability,
            cost_per_task=cost_per_task,
            labels=labels,
            memory_profile=memory_profile,
        )
        if not callable(handler):
            raise InvalidAgent(f"agent {agent_id}: handler must be an async function taking a Task")
        if not heartbeat_interval > 0:
            raise InvalidAgent(f"agent {agent_id}: heartbeat_interval must be positive, got {heartbeat_interval}")
        if not drain_timeout >= 0:
            raise InvalidAgent(f"agent {agent_id}: drain_timeout must not be negative, got {drain_timeout}")
        self.agent_id = agent_id
        self.handler = handler
        self.version = version
        self.heartbeat_interval = heartbeat_interval
        self.drain_timeout = drain_timeout
        self.settings = settings or Settings.from_env()
        # Everything this agent publishes is signed with its enrolled key, when it has one.
        key = signing_key or self.settings.agent_signing_key_file or None
        self.signer: Signer | None = key if isinstance(key, Signer) or key is None else load_signer(key)
        # Also the transactional id: one process per agent id may publish at a time.
        self.group_id = f"{self.settings.topic_prefix}.agent.{agent_id}"
        self.ready = asyncio.Event()  # registered and reading its assignments
        self.partition: TopicPartition | None = None  # the one assignments partition it reads
        self._key = agent_id.encode()
        self._slots = Slots(self.registration.capacity, self.registration.capacity_per_capability)
        self._window = read_ahead_window(self.registration.capacity)
        self._usage = ProcessUsage()
        self._jobs: dict[int, _Job] = {}
        self._attempts: set[tuple[str, int]] = set()
        self._draining = False
        self._slot_freed = asyncio.Event()
        self._room = asyncio.Event()
        self._stopping = asyncio.Event()
        self._finished = asyncio.Event()
        self._running = False
        self._outbox: Outbox | None = None
        self._ledger: Ledger | None = None

    @property
    def in_flight(self) -> int:
        return self._slots.in_flight

    @property
    def queue_depth(self) -> int:
        return len(self._jobs) - self._slots.in_flight

    async def stop(self) -> None:
        """Stop taking assignments, let running tasks finish (up to drain_timeout), deregister."""
        self._stopping.set()
        if self._running:
            await self._finished.wait()

    async def run(self, *, install_signal_handlers: bool = False) -> None:
        if self._running:
            raise RuntimeError(f"agent {self.agent_id} is already running")
        self._running = True
        self._finished.clear()
        loop = asyncio.get_running_loop()
        signals = (signal.SIGTERM, signal.SIGINT) if install_signal_handlers else ()
        for signum in signals:
            loop.add_signal_handler(signum, self._stopping.set)
        transactions = KafkaTransactions(self.settings, self.group_id, self.group_id)
        consumer = None
        background: list[asyncio.Task] = []
        try:
            await transactions.open()
            topic = self.settings.topic("assignments")
            tp = TopicPartition(topic, partition_for(self.agent_id, await transactions.partition_count(topic)))
            self.partition = tp
            consumer = await partition_consumer(self.settings, tp)
            self._ledger = await self._resume(consumer, tp)
            self._outbox = Outbox(transactions, self._ledger, tp)
            outbox = asyncio.create_task(self._outbox.run(), name=f"{self.agent_id}-outbox")
            background.append(outbox)
            await self._publish(self.registration)
            log.info(
                "agent %s registered; reading %s[%d] from offset %d",
                self.agent_id,
                topic,
                tp.partition,
                self._ledger.position().offset,
            )
            self.ready.set()
            reader = asyncio.create_task(self._read(consumer, tp), name=f"{self.agent_id}-reader")
            beat = asyncio.create_task(self._beat(), name=f"{self.agent_id}-heartbeat")
            stop = asyncio.create_task(self._stopping.wait())
            background += [reader, beat, stop]
            done, _ = await asyncio.wait({outbox, reader, beat, stop}, return_when=asyncio.FIRST_COMPLETED)
            if outbox in done:
                outbox.result()  # it only ends on an error nothing can be published after
            reader.cancel()
            await self._drain()
            beat.cancel()
            await self._deregister()
            for crashed in done - {stop}:
                crashed.result()
        finally:
            await self._tear_down(background)
            if consumer is not None:
                await stop_quietly(consumer)
            await transactions.close()
            for signum in signals:
                loop.remove_signal_handler(signum)
            self.ready.clear()
            self._stopping.clear()
            self._running = False
            self._finished.set()

    async def _resume(self, consumer, tp: TopicPartition) -> Ledger:
        committed = await committed_position(self.settings, self.group_id, tp)
        ledger = (
            Ledger(await end_offset(consumer, tp))
            if committed is None
            else Ledger.resume(committed.offset, committed.metadata)
        )
        consumer.seek(tp, ledger.position().offset)
        return ledger

    # --- reading assignments ------------------------------------------------------------

    async def _read(self, consumer, tp: TopicPartition) -> None:
        failures = 0
        while True:
            while len(self._jobs) >= self._window:
                self._room.clear()
                await self._room.wait()
            try:
                batch = await consumer.getmany(tp, timeout_ms=POLL_MS, max_records=self._window - len(self._jobs))
            except KafkaError as error:
                failures += 1
                log.warning("reading assignments failed (%s); retry %d", error, failures)
                await asyncio.sleep(backoff(failures))
                continue
            failures = 0
            for record in batch.get(tp, ()):
                self._accept(record)

    def _accept(self, record) -> None:
        if not self._ledger.receive(record.offset):
            return  # reported before a restart
        if record.key != self._key:
            # Another agent's assignment on the shared partition. Its offset is committed with
            # whatever goes out next (at the latest the next heartbeat).
            self._ledger.finish(record.offset)
            return
        try:
            event = decode(record.value)
            if not isinstance(event.body, TaskAssigned):
                raise InvalidEvent(
                    f"{event.event_type} does not belong on the assignments topic", event_type=event.event_type
                )
        except EventDecodeError as error:
            log.warning("dead-lettering assignment at offset %d: %s", record.offset, error)
            headers = tuple(dead_letter_headers(record, error, f"agent:{self.agent_id}"))
            self._outbox.submit(
                [Outgoing(self.settings.topic("dead-letter"), record.value, record.key, headers)],
                finishes=record.offset,
            )
            return
        attempt = (event.body.task_id, event.body.attempt)
        if attempt in self._attempts:
            log.warning(
                "task %s attempt %d is already running here; ignoring the repeat at offset %d", *attempt, record.offset
            )
            self._ledger.finish(record.offset)
            return
        job = _Job(record.offset, event)
        self._jobs[record.offset] = job
        self._attempts.add(attempt)
        job.runner = asyncio.create_task(self._work(job), name=f"{self.agent_id}-{event.body.task_id}")

    # --- running tasks ------------------------------------------------------------------

    async def _work(self, job: _Job) -> None:
        capability = job.body.capability
        try:
            if not await self._take_slot(capability):
                await self._end(job, TaskRejected(**_attempt_of(job.body), reason="the agent is shutting down"))
                return
            try:
                await self._run_handler(job)
            finally:
                self._slots.give_back(capability)
                self._wake_slot_waiters()
        finally:
            del self._jobs[job.offset]
            self._attempts.discard((job.body.task_id, job.body.attempt))
            self._room.set()

    async def _take_slot(self, capability: str) -> bool:
        while not self._draining and not self._slots.free(capability):
            await self._slot_freed.wait()
        if self._draining:
            return False
        self._slots.take(capability)
        return True

    def _wake_slot_waiters(self) -> None:
        self._slot_freed.set()
        self._slot_freed = asyncio.Event()

    async def _run_handler(self, job: _Job) -> None:
        await self._report(job, TaskStarted(**_attempt_of(job.body)))
        task = Task.of(job.body, job.assignment.event_id, lambda body: self._hand_off(job, body))
        started = time.monotonic()
        # The handler runs as its own task so that a drain timeout can stop it and still report.
        job.handler = asyncio.create_task(self._call_handler(task))
        try:
            await asyncio.wait({job.handler})
        finally:
            job.handler.cancel()
        duration_ms = (time.monotonic() - started) * 1000
        if job.handler.cancelled():
            outcome = Failed("the agent stopped before the task finished", retryable=True)
        else:
            outcome = job.handler.exception() or job.handler.result()
        if job.ended:
            if outcome is not None:
                log.warning("task %s was handed off; ignoring what the handler returned", job.body.task_id)
            return
        await self._end(job, outcome_for(job.body, outcome, duration_ms))

    async def _call_handler(self, task: Task):
        return await self.handler(task)

    async def _hand_off(self, job: _Job, body: TaskHandedOff) -> None:
        if job.ended:
            raise RuntimeError(f"task {job.body.task_id} attempt {job.body.attempt} has already ended")
        if body.subtask_id is None:
            await self._end(job, body)
        else:
            await self._report(job, body)

    async def _end(self, job: _Job, body: EventBody) -> None:
        job.ended = True
        await self._report(job, body, finishes=job.offset)

    async def _report(self, job: _Job, body: EventBody, finishes: int | None = None) -> None:
        event = make_event(body, producer=self.agent_id, cause=job.assignment)
        await self._outbox.publish([self._outgoing(event)], finishes=finishes)

    # --- heartbeats, drain, deregistration ----------------------------------------------

    async def _beat(self) -> None:
        pending: asyncio.Future | None = None
        while True:
            # One heartbeat in the queue at a time: while Kafka is away, stale ones would pile up.
            if pending is None or pending.done():
                cpu_percent, memory_mb = self._usage.sample()
                body = AgentHeartbeat(
                    agent_id=self.agent_id,
                    in_flight=self.in_flight,
                    queue_depth=max(0, self.queue_depth),
                    cpu_percent=cpu_percent,
                    memory_mb=memory_mb,
                    agent_version=self.version,
                )
                pending = self._outbox.submit([self._outgoing(make_event(body, producer=self.agent_id))])
            await asyncio.sleep(self.heartbeat_interval)

    async def _drain(self) -> None:
        self._draining = True
        self._wake_slot_waiters()  # queued tasks are rejected, so they can go elsewhere now
        runners = [job.runner for job in self._jobs.values()]
        if not runners:
            return
        log.info("agent %s draining %d tasks (up to %.0fs)", self.agent_id, len(runners), self.drain_timeout)
        _, late = await asyncio.wait(runners, timeout=self.drain_timeout)
        if late:
            stuck = [job for job in self._jobs.values() if job.handler is not None and not job.handler.done()]
            log.warning(
                "agent %s: after %.0fs, %d tasks still running (reporting them failed), %d outcomes not yet in Kafka",
                self.agent_id,
                self.drain_timeout,
                len(stuck),
                len(late) - len(stuck),
            )
            for job in stuck:
                job.handler.cancel()
            await asyncio.wait(late, timeout=LAST_WORDS_TIMEOUT_S)

    async def _deregister(self) -> None:
        body = AgentDeregistered(agent_id=self.agent_id, reason="stopped", drain=True)
        try:
            await asyncio.wait_for(self._publish(body), LAST_WORDS_TIMEOUT_S)
            log.info("agent %s deregistered", self.agent_id)
        except asyncio.TimeoutError:
            raise NotDeregistered(
                f"agent {self.agent_id} could not publish AgentDeregistered within "
                f"{LAST_WORDS_TIMEOUT_S:.0f}s; is Kafka reachable?"
            ) from None

    async def _tear_down(self, background: list[asyncio.Task]) -> None:
        tasks = background + [job.runner for job in self._jobs.values() if job.runner is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._jobs.clear()
        self._attempts.clear()
        self._draining = False

    async def _publish(self, body: EventBody) -> None:
        await self._outbox.publish([self._outgoing(make_event(body, producer=self.agent_id))])

    def _outgoing(self, event: Envelope) -> Outgoing:
        value = encode(event)
        return Outgoing(
            self.settings.topic(topic_for_event(event.event_type).name),
            value,
            event.key.encode(),
            (type_header(event), *(self.signer.headers(value) if self.signer else ())),
        )


def _attempt_of(assignment: TaskAssigned) -> dict:
    return {"task_id": assignment.task_id, "agent_id": assignment.agent_id, "attempt": assignment.attempt}
