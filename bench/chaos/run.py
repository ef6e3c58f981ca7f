"""`orchestrator chaos`: steady load, seeded faults, then the invariants checked.

On a topic prefix and schemas of its own: two copies of every processor as processes, two
groups of simulated agents as processes of their own (`fleet.py`), and a steady stream of
submissions whose acknowledgements are remembered. Faults follow the seeded plan
(`plan.py`); after the last, the load stops, the backlog drains, and the run is judged from
the log (`invariants.py`) and from the read models: they must equal a replay of the log,
and the audit chain must verify.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import psycopg
from psycopg import sql

from bench.chaos import stack
from bench.chaos.fleet import agent_ids
from bench.chaos.invariants import Check, InboxEntry, log_checks
from bench.chaos.plan import PROCESSORS, Fault, kinds, plan
from bench.evaluation.simulator.fleet import CAPABILITIES
from bench.evaluation.simulator.run import read_events
from events.envelope import make_event
from events.tasks import TaskSubmitted
from events.topics import topic_name
from events.values import CapabilityRequirement
from projections.postgres_view import dump
from services import kafka
from services.audit.verify import verify
from services.balancer.history import KafkaInboxHistory
from services.projector.catchup import wait_until_caught_up
from services.replay import replay
from services.settings import Settings, as_environ

COPIES = 2
AFTERWARDS_S = 15.0  # how long after a fault its effect on the work is still looked for
FLEETS = {"agents-a": 4, "agents-b": 4}  # name -> agents; each agent takes 4 at once
CAPACITY = 4
# Timeouts short enough that work a killed or hanging agent held comes back within the run, and
# longer than a broker's failover (its session timeout, 9 s, and the new leader's election): an
# agent's report held up by the failover is late, not missing.
TUNING = {
    "LOG_LEVEL": "WARNING",
    "BALANCER_START_TIMEOUT_S": "20",
    "BALANCER_COMPLETION_TIMEOUT_S": "30",
    "BALANCER_MAX_ATTEMPTS": "10",
    "HEALTH_HEARTBEAT_INTERVAL_S": "1",
    "HEALTH_TICK_INTERVAL_S": "0.5",
    "GROUP_SESSION_TIMEOUT_S": "6",
    "BALANCER_SESSION_TIMEOUT_S": "6",
    "OFF_PATH_NICE": "0",
}


@dataclass(frozen=True)
class ChaosOptions:
    duration_s: float = 120.0
    faults: int = 10
    seed: int = 1
    rate: float = 10.0  # tasks per second
    drain_s: float = 300.0
    infrastructure: bool = True  # also break the broker and PostgreSQL, not only processes and agents
    only: tuple[str, ...] = ()  # fault kinds to draw from (all when empty)


@dataclass
class Injected:
    fault: Fault
    done: bool = False
    error: str | None = None
    started: float = 0.0  # monotonic clock
    ended: float = 0.0
    longest_pause_s: float | None = None  # longest stretch without a completed task, from the fault on


@dataclass
class Processes:
    """Every process of the run, by name ("router-1", "agents-a"), started again by name."""

    settings: Settings
    directory: Path
    running: dict[str, subprocess.Popen] = field(default_factory=dict)

    def environment(self, name: str) -> dict[str, str]:
        data = str(self.directory / name)
        dirs = {f"{p.upper()}_DATA_DIR": data for p in ("router", "balancer", "health", "learner")}
        return {**os.environ, **as_environ(self.settings), **TUNING, **dirs}

    def command(self, name: str) -> list[str]:
        if name in FLEETS:
            index = list(FLEETS).index(name)
            return [sys.executable, "-m", "bench.chaos.fleet", "--name", name, "--agents", str(FLEETS[name]),
                    "--capacity", str(CAPACITY), "--seed", str(index + 1)]  # fmt: skip
        return [sys.executable, "-m", "services.cli", "serve", name.rsplit("-", 1)[0]]

    def start(self, name: str) -> None:
        log = (self.directory / f"{name}.log").open("ab")
        self.running[name] = subprocess.Popen(
            self.command(name), env=self.environment(name), cwd=stack.ROOT, stdout=log, stderr=subprocess.STDOUT
        )

    def kill(self, name: str) -> None:
        process = self.running[name]
        process.send_signal(signal.SIGKILL)
        process.wait()

    def signal(self, name: str, sig: signal.Signals) -> None:
        self.running[name].send_signal(sig)

    def exited(self) -> list[str]:
        return [
            f"{name} (exit {p.returncode}): {self.last_line(name)}"
            for name, p in self.running.items()
            if p.poll() is not None
        ]

    def last_line(self, name: str, longest: int = 400) -> str:
        """What a process said last (its error, or a traceback's last line), to tell why it ended."""
        with (self.directory / f"{name}.log").open("rb") as log:
            log.seek(max(0, log.seek(0, os.SEEK_END) - 16384))
            lines = [line.strip() for line in log.read().decode(errors="replace").splitlines() if line.strip()]
        return lines[-1][:longest] if lines else "(nothing logged)"

    def stop(self, which=lambda name: True) -> None:
        chosen = [p for name, p in self.running.items() if which(name)]
        for process in chosen:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in chosen:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _node(target: str) -> int:
    return int(target.rsplit("-", 1)[1])  # "broker-2"


def names() -> list[str]:
    return [f"{p}-{n}" for p in PROCESSORS for n in range(1, COPIES + 1)]


async def run(settings: Settings, options: ChaosOptions, log=print) -> dict:
    tag = uuid.uuid4().hex[:6]
    directory = stack.ROOT / ".local" / "chaos" / tag
    directory.mkdir(parents=True, exist_ok=True)
    s = settings.replace(
        topic_prefix=f"{settings.topic_prefix}.chaos-{tag}",
        db_schema=f"chaos_{tag}",
        audit_db_schema=f"chaos_{tag}_audit",
        audit_checkpoint_dir=str(directory / "audit-checkpoints"),
        # The simulated fleet does not sign what it reports: faults are what a run tests, and
        # signatures are tested on their own (tests/e2e/test_identity.py, test_secure_kafka.py).
        identity_mode="off",
    )
    menu = [
        k
        for k in kinds(brokers=stack.brokers(s))
        if (options.infrastructure or k[0] not in ("kill-broker", "restart-postgres"))
        and (not options.only or k[0] in options.only)
    ]
    if not menu:
        raise ValueError(f"no fault kind left to inject: {options.only}")
    faults = plan(options.duration_s, options.faults, options.seed, menu)
    await kafka.ensure_topics(s)
    processes = Processes(s, directory)
    log(
        f"chaos: {COPIES} copies of {', '.join(PROCESSORS)}; agents {', '.join(FLEETS)}; on {s.topic_prefix}.* "
        f"of {stack.brokers(s)} broker(s) at {s.kafka_bootstrap_servers}"
    )
    log(f"chaos: {len(faults)} faults over {options.duration_s:g}s at {options.rate:g} tasks/s, seed {options.seed}")
    started = time.monotonic()
    try:
        for name in [*names(), *FLEETS]:
            processes.start(name)
        load = Load(s)
        await load.start(options.rate)
        try:
            await load.until_first_completed(timeout_s=180)
            log(f"chaos: pipeline up after {time.monotonic() - started:.0f}s; load and faults start")
            injected = await _inject(s, processes, load, faults, options, log)
        finally:
            await load.stop()
        for record in injected:  # until a while after the fault: a takeover shows after the restart
            record.longest_pause_s = longest_pause(load.completed_at, record.started, record.ended + AFTERWARDS_S)
        log(f"chaos: load stopped ({len(load.acknowledged)} submissions acknowledged); draining")
        await load.until_drained(options.drain_s)
        exited = processes.exited()
        # What writes events stops first; the projectors then catch up with everything and stop last.
        processes.stop(lambda name: not name.startswith(("projector", "audit")))
        await wait_until_caught_up(s, timeout=options.drain_s)
        audited = await _audited(s)
    finally:
        processes.stop()
    log("chaos: processors stopped; checking the log and the read models")
    checks = await _checks(s, load, exited, audited)
    result = {
        "seed": options.seed,
        "duration_s": options.duration_s,
        "rate": options.rate,
        "copies": COPIES,
        "brokers": stack.brokers(s),
        "topic_prefix": s.topic_prefix,
        "logs": str(directory),
        "faults": [
            {
                "at_s": i.fault.at_s,
                "fault": i.fault.name,
                "hold_s": i.fault.hold_s,
                "injected": i.done,
                "error": i.error,
                "longest_pause_s": i.longest_pause_s,
            }  # fmt: skip
            for i in injected
        ],
        "invariants": [
            {
                "name": c.name,
                "checked": c.checked,
                "held": c.held,
                "observed_only": c.observed_only,
                "violations": list(c.violations[:20]),
                "violation_count": len(c.violations),
            }
            for c in checks
        ],  # fmt: skip
        "violations": sum(len(c.violations) for c in checks if not c.observed_only),
        "faults_injected": sum(i.done for i in injected),
    }
    if result["violations"]:
        log(f"chaos: topics {s.topic_prefix}.* and schemas {s.db_schema}* kept for a look at what broke")
    else:
        await _remove(s)
    return result


class Load:
    """Submissions at a steady rate, each remembered once the broker acknowledged it; completions counted."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.acknowledged: set[str] = set()
        self.completed_at: list[float] = []
        self.completed: set[str] = set()  # task ids
        self.jobs: list[asyncio.Task] = []
        self.sends: set[asyncio.Task] = set()

    async def start(self, rate: float = 10.0) -> None:
        self.producer = kafka.producer(self.settings)
        await kafka.start(self.producer, self.settings)
        self.rate = rate
        self.jobs = [asyncio.create_task(self._submit()), asyncio.create_task(self._watch())]

    async def stop(self) -> None:
        self.jobs[0].cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.jobs[0]
        if self.sends:
            await asyncio.wait(self.sends, timeout=60)

    async def close(self) -> None:
        for job in self.jobs:
            job.cancel()
        await self.producer.stop()

    async def _submit(self) -> None:
        n, started = 0, time.monotonic()
        while True:
            task_id = f"chaos-{n:06}"
            send = asyncio.create_task(self._send(task_id, CAPABILITIES[n % len(CAPABILITIES)]))
            self.sends.add(send)
            send.add_done_callback(self.sends.discard)
            n += 1
            await asyncio.sleep(max(0.0, started + n / self.rate - time.monotonic()))

    async def _send(self, task_id: str, capability: str) -> None:
        body = TaskSubmitted(task_id=task_id, requirements=(CapabilityRequirement(name=capability),), submitter="chaos")
        try:
            await kafka.publish(self.producer, self.settings, make_event(body, producer="chaos"))
        except Exception:  # noqa: BLE001 - not acknowledged: the producer was not told it is written
            return
        self.acknowledged.add(task_id)

    async def _watch(self) -> None:
        consumer = kafka.consumer(self.settings, topic_name("task-outcomes", self.settings.topic_prefix))
        await kafka.start(consumer, self.settings)
        try:
            while True:
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    for record in records:
                        if _type(record) == b"TaskCompleted" and record.key is not None:
                            self.completed_at.append(time.monotonic())
                            self.completed.add(record.key.decode())
        finally:
            await consumer.stop()

    async def until_first_completed(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while not self.completed_at:
            if time.monotonic() > deadline:
                raise TimeoutError(f"no task completed within {timeout_s:.0f}s of the start")
            await asyncio.sleep(0.5)

    async def until_drained(self, timeout_s: float, stall_s: float = 90.0) -> bool:
        """Until every acknowledged task completed; False after `timeout_s`, or `stall_s` without a completion."""
        deadline = time.monotonic() + timeout_s
        while not self.acknowledged <= self.completed:
            last = self.completed_at[-1] if self.completed_at else 0.0
            if time.monotonic() > deadline or time.monotonic() - last > stall_s:
                return False
            await asyncio.sleep(1.0)
        return True


def _type(record) -> bytes:
    return dict(record.headers or ()).get("event_type", b"")


async def _inject(s: Settings, processes: Processes, load: Load, faults: list[Fault], options, log) -> list[Injected]:
    started = time.monotonic()
    injected = []
    for fault in faults:
        await asyncio.sleep(max(0.0, started + fault.at_s - time.monotonic()))
        record = Injected(fault)
        injected.append(record)
        record.started = time.monotonic()
        try:
            await _one(s, processes, fault)
            record.done = True
        except Exception as error:  # noqa: BLE001 - reported in the table; the run goes on
            record.error = f"{type(error).__name__}: {error}"
        record.ended = time.monotonic()
        log(f"chaos: {time.monotonic() - started:6.1f}s {fault.name} for {fault.hold_s:g}s"
            f"{'' if record.done else ' FAILED: ' + str(record.error)}")  # fmt: skip
    await asyncio.sleep(max(0.0, started + options.duration_s - time.monotonic()))
    return injected


def longest_pause(completed_at: list[float], start: float, end: float) -> float:
    """The longest time in [start, end] with no task completed: how long a fault stopped the work."""
    inside = [start, *(t for t in completed_at if start < t < end), end]
    return round(max(b - a for a, b in zip(inside, inside[1:])), 2)


async def _one(s: Settings, processes: Processes, fault: Fault) -> None:
    kind, target = fault.kind, fault.target
    if kind in ("kill-copy", "kill-both"):
        victims = [f"{target}-1"] if kind == "kill-copy" else [f"{target}-{n}" for n in range(1, COPIES + 1)]
        for name in victims:
            processes.kill(name)
        await asyncio.sleep(fault.hold_s)
        for name in victims:
            processes.start(name)
    elif kind == "kill-agent":
        processes.kill(target)
        await asyncio.sleep(fault.hold_s)
        processes.start(target)
    elif kind == "hang-agent":
        processes.signal(target, signal.SIGUSR1)
        await asyncio.sleep(fault.hold_s)
        processes.signal(target, signal.SIGUSR2)
    elif kind == "pause-broker":
        pid = await stack.broker_pid(s, _node(target))
        os.kill(pid, signal.SIGSTOP)
        try:
            await asyncio.sleep(fault.hold_s)
        finally:
            os.kill(pid, signal.SIGCONT)
    elif kind == "kill-broker":
        await stack.kill_broker(s, _node(target))
        await asyncio.sleep(fault.hold_s)
        await stack.start_broker(s, _node(target))
    elif kind == "restart-postgres":
        pid = await stack.postgres_pid(s)
        os.kill(pid, signal.SIGINT)  # a fast shutdown: sessions are cut, as in a failover
        await asyncio.sleep(fault.hold_s)
        await stack.start_postgres()
    else:
        raise ValueError(f"unknown fault {fault.name}")


async def _checks(s: Settings, load: Load, exited: list[str], audited) -> list[Check]:
    await load.close()
    events = await read_events(s)
    capacities = {a: CAPACITY for name, n in FLEETS.items() for a in agent_ids(name, n)}
    waiting = await _waiting_reasons(s)
    checks = log_checks(events, await read_inbox(s), load.acknowledged, capacities, waiting)
    missing = sorted(load.acknowledged - load.completed)
    checks.append(Check("every acknowledged task completed in the drain", len(load.acknowledged), tuple(missing)))
    checks.append(Check("no processor exited by itself", len(names()), tuple(exited)))
    async with await psycopg.AsyncConnection.connect(s.database_url) as conn:
        live = await dump(conn, s.db_schema)
    copy = await replay(s, into=f"{s.db_schema}_replay", progress_out=io.StringIO())
    async with await psycopg.AsyncConnection.connect(s.database_url) as conn:
        replayed = await dump(conn, copy.schema)
    differ = tuple(sorted(t for t in live.keys() | replayed.keys() if live.get(t) != replayed.get(t)))
    checks.append(Check("read models equal a replay of the log", len(live), differ))
    checks.append(Check("the audit chain verifies against Kafka", audited.rows,
                        tuple(str(p) for p in audited.problems)))  # fmt: skip
    return checks


async def read_inbox(s: Settings) -> list[InboxEntry]:
    """The balancer's inbox in its order: which event (or tick) it read at each offset."""
    history = KafkaInboxHistory(s)
    probe = kafka.consumer(s)
    await kafka.start(probe, s)
    try:
        end = (await probe.end_offsets([history.inbox]))[history.inbox]
    finally:
        await probe.stop()
    entries = []
    async for record in history.records(0, end):
        event_id = None
        if not record.is_tick:
            with contextlib.suppress(orjson.JSONDecodeError, TypeError, AttributeError):
                event_id = orjson.loads(record.value).get("event_id")
        entries.append(InboxEntry(record.offset, record.timestamp_ms, event_id))
    return entries


async def _audited(s: Settings, timeout_s: float = 90.0):
    """The audit chain's verdict once the audit projector has caught up (it stops when the processes do)."""
    deadline = time.monotonic() + timeout_s
    while True:
        verdict = await verify(s, against_kafka=True)
        if verdict.ok or time.monotonic() > deadline:
            return verdict
        await asyncio.sleep(3.0)


async def _waiting_reasons(s: Settings) -> dict[str, str]:
    """Tasks not finished that the read models show waiting, with the reason they show."""
    async with await psycopg.AsyncConnection.connect(s.database_url) as conn:
        cur = await conn.execute(
            sql.SQL("SELECT task_id, reason FROM {}.tasks WHERE NOT status_terminal AND status = 'queued'").format(
                sql.Identifier(s.db_schema)
            )
        )
        return {task: reason for task, reason in await cur.fetchall() if reason}


async def _remove(s: Settings) -> None:
    async with await psycopg.AsyncConnection.connect(s.database_url, autocommit=True) as conn:
        for schema in (s.db_schema, f"{s.db_schema}_replay", s.audit.db_schema):
            await conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
    await kafka.delete_topics(s)


def table(result: dict) -> str:
    lines = ["| at s | fault | held s | injected | longest pause in completions s |", "|---|---|---|---|---|"]
    for f in result["faults"]:
        done = "yes" if f["injected"] else f"no: {f['error']}"
        lines.append(f"| {f['at_s']:.1f} | {f['fault']} | {f['hold_s']:g} | {done} | {f['longest_pause_s']} |")
    lines += ["", "| invariant | checked | held | violations |", "|---|---|---|---|"]
    for c in result["invariants"]:
        shown = ", ".join(c["violations"][:5]) + (" ..." if c["violation_count"] > 5 else "")
        held = f"observed {c['violation_count']}" if c.get("observed_only") else "yes" if c["held"] else "NO"
        lines.append(f"| {c['name']} | {c['checked']} | {held} | {shown} |")
    lines.append("")
    lines.append(f"{result['faults_injected']} faults injected, {result['violations']} violations")
    return "\n".join(lines)
