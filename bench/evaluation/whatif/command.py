"""The shell of `orchestrator whatif`: read the decision log from Kafka, evaluate, report, store."""

from __future__ import annotations

import sys
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable

from bench.evaluation.whatif.decisions import EVENT_TYPES, DecisionLog, LoggedDecision
from bench.evaluation.whatif.policies import parse
from bench.evaluation.whatif.report import PolicyResult, evaluate, logged_value
from bench.evaluation.whatif.store import rows, save
from events.codec import EventDecodeError, decode, header_type
from events.topics import topic_name
from services import kafka
from services.log_follower import open_from_start
from services.router.bootstrap import weights_from
from services.settings import Settings

TOPICS = ("tasks", "assignments", "task-outcomes")
DEFAULT_POLICIES = ("router", "greedy", "random", "best-single")


@dataclass(frozen=True)
class WhatIfRun:
    run_id: uuid.UUID
    decisions: list[LoggedDecision]
    results: list[PolicyResult]
    skipped: dict[str, int]

    def as_json(self) -> dict:
        return {
            "run_id": str(self.run_id),
            "decisions": len(self.decisions),
            "logged_success": round(logged_value(self.decisions), 6) if self.decisions else None,
            "skipped": self.skipped,
            "policies": [r.as_json() for r in self.results],
        }


class Progress:
    """One line on stderr at most every second: records read of those there were when it began."""

    def __init__(self, total: int, out=sys.stderr, every: float = 1.0) -> None:
        self.total, self.out, self.every, self.last = total, out, every, 0.0

    def update(self, done: int, final: bool = False) -> None:
        if final or time.monotonic() - self.last >= self.every:
            self.last = time.monotonic()
            share = done / self.total if self.total else 1.0
            print(f"whatif: {done}/{self.total} records read ({share:.0%})", file=self.out, flush=True)


class NoDecisionLog(RuntimeError):
    pass


async def check_topics(settings: Settings) -> None:
    """A log that was never written is said so at once; reading it would wait for its metadata."""
    admin = kafka.admin_client(settings)
    await kafka.start(admin, settings)
    try:
        present = set(await admin.list_topics())
    finally:
        await admin.close()
    wanted = {topic_name(name, settings.topic_prefix) for name in TOPICS}
    if missing := sorted(wanted - present):
        raise NoDecisionLog(
            f"no decision log under the topic prefix {settings.topic_prefix!r} "
            f"(ORCHESTRATOR_TOPIC_PREFIX): {', '.join(missing)} missing on the broker"
        )


async def read_log(settings: Settings, log: DecisionLog, out=sys.stderr) -> None:
    await check_topics(settings)
    consumer, ends = await open_from_start(settings, TOPICS, EVENT_TYPES)
    try:
        progress = Progress(sum(ends.values()), out)
        behind = {tp for tp, end in ends.items() if end > 0}
        while behind:
            for tp, records in (await consumer.getmany(*behind, timeout_ms=500)).items():
                for record in records:
                    if record.offset < ends[tp]:
                        _apply(log, record)
            positions = {tp: await consumer.position(tp) for tp in behind}
            behind = {tp for tp in behind if positions[tp] < ends[tp]}
            progress.update(sum(min(positions.get(tp, end), end) for tp, end in ends.items()))
        progress.update(progress.total, final=True)
    finally:
        await consumer.stop()


def _apply(log: DecisionLog, record) -> None:
    try:
        log.apply(decode(record.value, header_type(record.headers)))
    except EventDecodeError:
        log.counts["unreadable events"] += 1  # parked on the dead-letter topic by the processors already


async def whatif(
    settings: Settings,
    specs: list[str],
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    resamples: int = 1000,
    store: bool = True,
    out=sys.stderr,
    clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
) -> WhatIfRun:
    today = weights_from(settings)
    policies = [parse(spec, today) for spec in (specs or DEFAULT_POLICIES)]  # bad specs fail before reading
    log = DecisionLog(since=since, until=until)
    await read_log(settings, log, out)
    decisions = log.decisions()
    results = evaluate(decisions, policies, today, resamples=resamples) if decisions else []
    run = WhatIfRun(uuid.uuid4(), decisions, results, dict(log.counts))
    if store and results:
        await save(
            settings.database_url,
            settings.db_schema,
            rows(run.run_id, clock(), since, until, decisions, results, run.skipped),
        )
    return run
