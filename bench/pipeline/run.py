"""The whole pipeline under a steady task stream: what `orchestrator bench` measures.

On a topic prefix and schemas of its own it starts the real projector, health monitor,
router, balancer, learner and audit projector as processes (as `make run` does), registers a fleet of fast
in-process agents that answer their assignments and heartbeat, and submits tasks at a
steady rate: a warm-up, then the measured window. Then it lets the backlog drain, checks the
read models, stops the processors, replays everything the run wrote into a fresh schema, and
measures plain aiokafka on the same broker with messages of the run's mean size.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import io
import os
import random
import shutil
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import psycopg
from psycopg import sql

from bench.evaluation.simulator.fleet import CAPABILITIES, SimulatedAgent, task_stream
from bench.evaluation.simulator.run import answer_assignments, processors, register_fleet, submit_stream, until_ready
from bench.machine import describe
from bench.pipeline.observer import LATENCY_ENDS, Observer
from bench.pipeline.procstat import ProcessWatch, pids_named
from bench.pipeline.profile import layers, parse, top_frames
from bench.pipeline.rate_search import Trial, best, judge, next_rate
from bench.pipeline.raw_kafka import produce_consume
from bench.pipeline.stages import delivered_to, free_port, lag_of
from events.agents import AgentHeartbeat
from events.codec import encode
from events.envelope import make_event
from events.topics import topic_name
from services import kafka
from services.identity.keyring import Keyring
from services.projector.catchup import events_in_log, wait_until_caught_up
from services.replay import replay
from services.settings import Settings

PROCESSORS = ("projector", "health", "router", "balancer", "learner", "audit")
OBSERVED_TOPICS = ("tasks", "assignments", "task-outcomes")
HEARTBEAT_EVERY_S = 5.0
MOST_TRIALS = 10


@dataclass(frozen=True)
class BenchOptions:
    duration_s: float = 60.0
    warmup_s: float = 15.0
    rate: float | None = 170.0  # tasks/s; None: find the sustainable maximum first
    agents: int = 20
    trial_s: float = 20.0
    start_rate: float = 100.0
    raw_messages: int = 100_000
    keep: bool = False
    profile_s: float = 0.0  # py-spy each processor for this long during the measurement (0: not at all)
    profile_dir: str = ".local/bench/profiles"  # raw stacks, a few MB a run: kept out of git


def fast_fleet(size: int, seed: int = 3) -> list[SimulatedAgent]:
    """Agents that can do everything, in a few milliseconds, many at once: the fleet is never the bottleneck."""
    rng = random.Random(seed)
    return [
        SimulatedAgent(
            agent_id=f"bench-agent-{i + 1:03}",
            capacity=64,
            skill={c: rng.uniform(0.5, 0.95) for c in CAPABILITIES},
            declared={c: round(rng.uniform(0.4, 0.9), 2) for c in CAPABILITIES},
            duration_ms={c: rng.uniform(2.0, 6.0) for c in CAPABILITIES},
        )
        for i in range(size)
    ]


@dataclass
class Sampler:
    """Once a second: each stage's lag, the tasks in flight, and the processes' memory."""

    ports: dict[str, int]
    observer: Observer
    watch: ProcessWatch | None = None
    samples: dict[str, list[float]] = dataclasses.field(default_factory=dict)
    ticks: int = 0

    def reset(self) -> None:
        self.samples, self.ticks = {}, 0

    def backlog(self) -> list[float]:
        """The largest backlog of any stage, per sample."""
        return [max(values) for values in zip(*self.samples.values())] if self.samples else []

    async def run(self) -> None:
        while True:
            lags = await lag_of(self.ports)
            lags["tasks in flight"] = float(self.observer.in_flight)
            self.ticks += 1
            for stage in lags:  # a stage first heard from now had no backlog before
                self.samples.setdefault(stage, [0.0] * (self.ticks - 1))
            for stage, series in self.samples.items():  # one not answering this once keeps its last value
                series.append(lags.get(stage, series[-1] if series else 0.0))
            if self.watch:
                self.watch.sample()
            await asyncio.sleep(1.0)


async def run(settings: Settings, options: BenchOptions, log=print) -> dict:
    tag = uuid.uuid4().hex[:6]
    s = settings.replace(
        topic_prefix=f"{settings.topic_prefix}.bench-{tag}",
        db_schema=f"bench_{tag}",
        audit_db_schema=f"bench_{tag}_audit",
        audit_checkpoint_dir=str(Path(".local/bench") / tag / "audit-checkpoints"),
    )
    load_at_start = os.getloadavg()
    await kafka.ensure_topics(s)
    fleet = fast_fleet(options.agents)
    keys = Keyring(s)  # with identities verified (the secure profile), the fleet's and the decisions' keys
    await keys.enroll(*(agent.agent_id for agent in fleet))
    signing = await keys.orchestrator_env(Path(".local/bench") / tag)
    ports = {name: free_port() for name in PROCESSORS}
    log(f"bench: {', '.join(PROCESSORS)} on {s.topic_prefix}.* and schema {s.db_schema}; {len(fleet)} agents")
    try:
        with contextlib.ExitStack() as stack:
            started = {
                name: stack.enter_context(
                    processors(
                        s,
                        "orchestrator",
                        names=(name,),
                        ORCHESTRATOR_DB_SCHEMA=s.db_schema,
                        METRICS_PORT=str(port),
                        AUDIT_DB_SCHEMA=s.audit.db_schema,
                        AUDIT_CHECKPOINT_DIR=s.audit.checkpoint_dir,
                        **signing,
                    )
                )[0]
                for name, port in ports.items()
            }
            measured = await _drive(s, options, fleet, ports, {n: [p.pid] for n, p in started.items()}, log, keys)
        log("bench: processors stopped; replaying the run into a fresh schema")
        cpu = time.process_time()
        rebuilt = await replay(s, into=f"{s.db_schema}_replay", progress_out=io.StringIO())
        cpu = time.process_time() - cpu
        log(f"bench: replayed {rebuilt.events} events at {rebuilt.events_per_second:,.0f}/s; raw aiokafka next")
        raw = await produce_consume(s, messages=options.raw_messages, size=measured["message_bytes"])
    finally:
        if not options.keep:
            await _remove(s)
    pipeline_eps = measured["pipeline_events_per_second"]
    return {
        "requested_rate": "max" if options.rate is None else options.rate,
        **measured,
        "replay_events": rebuilt.events,
        "replay_events_per_second": round(rebuilt.events_per_second),
        "replay_python_cpu_us_per_event": round(cpu / max(1, rebuilt.events) * 1e6, 1),
        "raw_kafka_msgs_per_second": raw["raw_kafka_msgs_per_second"],
        "raw_kafka_produce_msgs_per_second": raw["produce_msgs_per_second"],
        "efficiency": round(pipeline_eps / raw["raw_kafka_msgs_per_second"], 3),
        "task_efficiency": round(measured["tasks_per_minute"] / 60 / raw["raw_kafka_msgs_per_second"], 4),
        "duration_s": options.duration_s,
        "warmup_s": options.warmup_s,
        "agents": len(fleet),
        "load_average_at_start": [round(x, 2) for x in load_at_start],
        "fetch": {"min_bytes": int(s.faust_fetch_min_bytes), "max_wait_ms": int(s.faust_fetch_max_wait_ms)},
        "batch_fetch": {"min_bytes": int(s.batch_fetch_min_bytes), "max_wait_ms": int(s.batch_fetch_max_wait_ms)},
        "prompt_fetch_max_wait_ms": int(s.prompt_fetch_max_wait_ms),
        "batch_commit_interval_ms": int(s.batch_commit_interval_ms),
        "client_linger_ms": int(s.kafka_linger_ms),
        "off_path_nice": int(s.off_path_nice),
        "machine": describe(),
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


async def _drive(s: Settings, options: BenchOptions, fleet, ports, pids, log, keys: Keyring) -> dict:
    producer = kafka.producer(s)
    await kafka.start(producer, s)
    observer = Observer()
    watch = ProcessWatch(
        {
            **{f"{n} (pid {p[0]})": p for n, p in pids.items()},
            "bench harness": [os.getpid()],
            "kafka broker": pids_named("kafka.Kafka"),
            "postgresql (whole server)": _postgres_pids(),
        }
    )
    sampler = Sampler(ports, observer, watch)
    jobs = [
        asyncio.create_task(job)
        for job in (
            answer_assignments(s, producer, fleet, random.Random(5), keys),
            _observe(s, observer),
            _heartbeat(s, producer, fleet, keys),
            sampler.run(),
        )
    ]
    try:
        await register_fleet(s, producer, fleet, keys)
        await until_ready(s, producer, timeout_s=180)
        log("bench: processors ready")
        searched: list[dict] = []
        rate = options.rate
        if rate is None:
            rate = await _search(s, producer, observer, sampler, options, searched, log)
        log(f"bench: warm-up, {options.warmup_s:g}s at {rate:g} tasks/s")
        await _submit(s, producer, rate, options.warmup_s, "warm")
        watch.start()
        before = await events_in_log(s)
        delivered_before = await delivered_to(ports)
        log(f"bench: measuring, {options.duration_s:g}s at {rate:g} tasks/s")
        submitted_before = observer.submitted_total
        profiling = asyncio.create_task(profile_processors(pids, options)) if options.profile_s else None
        completed_per_s, verdict, lags = await _measure(s, producer, observer, sampler, rate, options.duration_s, "run")
        profiles = await profiling if profiling else {}
        events = await events_in_log(s) - before
        delivered_after = await delivered_to(ports)
        delivered = {name: count - delivered_before.get(name, 0.0) for name, count in delivered_after.items()}
        submitted = observer.submitted_total - submitted_before
        usage = watch.usage()
        drained = await _drained(observer, sampler, timeout_s=180)
        completed_total = observer.completed_total
        await wait_until_caught_up(s, timeout=300)
        read_model_completed = await _completed_in_read_models(s)
    finally:
        for job in jobs:
            job.cancel()
        for job in jobs:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await job
        await producer.stop()
    return {
        "rate_tasks_per_second": rate,
        "offered_tasks_per_minute": round(rate * 60),
        "tasks_per_minute": round(completed_per_s * 60),
        "lag_bounded": verdict.sustained,
        "lag_verdict": list(verdict.reasons),
        "routing_latency_ms": observer.latency_ms.summary(),
        "routing_latency_samples": observer.latency_ms.count,
        "routing_latency_ends": LATENCY_ENDS,
        "routing_hops_ms": {hop: histogram.summary() for hop, histogram in observer.hops_ms.items()},
        "pipeline_events_per_second": round(events / options.duration_s),
        "events_per_task": round(events / max(1, submitted), 2),
        "deliveries_per_task": round(sum(delivered.values()) / max(1, submitted), 2),
        "deliveries_per_task_by_processor": {
            name: round(n / max(1, submitted), 2) for name, n in sorted(delivered.items())
        },
        "message_bytes": observer.mean_record_bytes,
        "lag": lags,
        "processes": _per_task(usage, completed_per_s * options.duration_s),
        "drained": drained,
        "completed_total": completed_total,
        "read_model_completed": read_model_completed,
        "rate_search": searched,
        "profiles": profiles,
    }


async def _measure(s, producer, observer: Observer, sampler: Sampler, rate: float, seconds: float, phase: str):
    """Submit at `rate` for `seconds`; completions counted by when they occurred, inside the window."""
    started = time.time()
    observer.start_window(started, started + seconds)
    sampler.reset()
    await _submit(s, producer, rate, seconds, phase)
    await asyncio.sleep(max(0.0, started + seconds - time.time()) + 2.0)  # completions of the window's last tasks
    completed_per_s = observer.completed_in_window / seconds
    backlog = sampler.backlog()
    verdict = judge(
        offered_per_s=rate, completed_per_s=completed_per_s, backlog=backlog, lag_bound=max(1000.0, 2 * rate)
    )
    lags = {stage: {"max": round(max(v)), "last": round(v[-1])} for stage, v in sampler.samples.items() if v}
    return completed_per_s, verdict, lags


async def _search(s, producer, observer, sampler, options: BenchOptions, searched: list[dict], log) -> float:
    trials: list[Trial] = []
    while len(trials) < MOST_TRIALS and (rate := next_rate(trials, start=options.start_rate)) is not None:
        rate = round(rate)
        completed_per_s, verdict, _ = await _measure(
            s, producer, observer, sampler, rate, options.trial_s, f"try{len(trials)}"
        )
        trials.append(Trial(rate, verdict.sustained))
        searched.append(
            {
                "rate": rate,
                "completed_per_s": round(completed_per_s, 1),
                "sustained": verdict.sustained,
                "reasons": list(verdict.reasons),
            }
        )
        log(
            f"bench: {rate} tasks/s for {options.trial_s:g}s: "
            f"{'sustained' if verdict.sustained else 'not sustained: ' + '; '.join(verdict.reasons)}"
        )
        if not verdict.sustained:
            await _drained(observer, sampler, timeout_s=180)
    return best(trials) or options.start_rate


async def profile_processors(pids: dict[str, list[int]], options: BenchOptions) -> dict[str, dict]:
    """py-spy on every processor at once, from the middle of the window; the top frames of each."""
    await asyncio.sleep(max(0.0, (options.duration_s - options.profile_s) / 2))
    directory = Path(options.profile_dir)
    directory.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    files = {name: directory / f"{stamp}-{name}.txt" for name in pids}
    try:
        spies = [
            await asyncio.create_subprocess_exec(
                "py-spy",
                "record",
                "--nonblocking",
                "--gil",
                "--rate",
                "25",
                "--duration",
                str(round(options.profile_s)),
                "--format",
                "raw",
                "--output",
                str(files[name]),
                "--pid",
                str(pid[0]),
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            )
            for name, pid in pids.items()
        ]
    except FileNotFoundError:
        raise RuntimeError("--profile needs py-spy on the PATH: pip install py-spy") from None
    for spy in spies:
        await spy.wait()
    profiles = {}
    for name, path in files.items():
        if path.exists():
            lines = path.read_text().splitlines()
            profiles[name] = {**top_frames(parse(lines), 8), "layers": layers(lines), "file": str(path)}
    return profiles


async def _submit(s, producer, rate: float, seconds: float, phase: str) -> None:
    stream = [(f"{task_id}-{phase}", *rest) for task_id, *rest in task_stream(max(1, round(rate * seconds)))]
    await submit_stream(s, producer, stream, rate)


async def _drained(observer: Observer, sampler: Sampler, timeout_s: float) -> bool:
    """Wait until every submitted task is finished and no stage lags by more than a few records."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        lags = await lag_of(sampler.ports)
        if observer.in_flight <= 0 and all(v < 50 for v in lags.values()):
            return True
        await asyncio.sleep(1.0)
    return False


def _per_task(usage: dict[str, dict], tasks: float) -> dict[str, dict]:
    """With CPU milliseconds per completed task: what a process costs, whatever share of the CPU it got."""
    return {
        name: {**u, "cpu_ms_per_task": round(u["cpu_seconds"] * 1000 / tasks, 3) if tasks else None}
        for name, u in usage.items()
    }


async def _observe(s: Settings, observer: Observer) -> None:
    consumer = kafka.consumer(s, *(topic_name(t, s.topic_prefix) for t in OBSERVED_TOPICS))
    await kafka.start(consumer, s)
    try:
        while True:
            for records in (await consumer.getmany(timeout_ms=200, max_records=5000)).values():
                for record in records:
                    observer.take(record.value, record.timestamp)
    finally:
        await consumer.stop()


async def _heartbeat(s: Settings, producer, fleet: list[SimulatedAgent], keys: Keyring) -> None:
    while True:
        for agent in fleet:
            event = make_event(AgentHeartbeat(agent_id=agent.agent_id, in_flight=0), producer=agent.agent_id)
            value = encode(event)
            await producer.send(
                s.topic("heartbeats"), value, key=event.key.encode(), headers=keys.headers(event, value)
            )
        await asyncio.sleep(HEARTBEAT_EVERY_S)


def _postgres_pids() -> list[int]:
    return pids_named("postgres: ") + pids_named("bin/postgres ")


async def _completed_in_read_models(s: Settings) -> int:
    async with await psycopg.AsyncConnection.connect(s.database_url, autocommit=True) as conn:
        cur = await conn.execute(
            sql.SQL("SELECT count(*) FROM {}.tasks WHERE status = 'completed'").format(sql.Identifier(s.db_schema))
        )
        return int((await cur.fetchone())[0])


async def _remove(s: Settings) -> None:
    """The run's schemas and topics: a benchmark leaves nothing behind but its result."""
    async with await psycopg.AsyncConnection.connect(s.database_url, autocommit=True) as conn:
        for schema in (s.db_schema, f"{s.db_schema}_replay", s.audit.db_schema):
            await conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
    await kafka.delete_topics(s)
    shutil.rmtree(Path(s.audit.checkpoint_dir).parent, ignore_errors=True)
