"""Projector throughput and rebuild-by-replay rate on the real stack.

    python -m bench.micro.projection --tasks 20000

Publishes a scripted feed (about 5 events per task) under a fresh topic prefix and
schema, measures how fast the projector catches up with it, then how fast
`orchestrator replay` rebuilds it, and prints both with the machine's description.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid

import psycopg
from psycopg import sql

from bench.demo.feed import scripted_feed
from bench.machine import describe
from events.codec import encode, type_header
from events.topics import topic_for_event, topic_name
from services import kafka
from services.projector.bootstrap import projector_running
from services.projector.catchup import wait_until_caught_up
from services.replay import replay
from services.settings import Settings


async def run(tasks: int, keep: bool) -> dict:
    tag = uuid.uuid4().hex[:8]
    settings = Settings.from_env(topic_prefix=f"bench-{tag}", db_schema=f"bench_{tag}")
    await kafka.ensure_topics(settings)
    events = list(scripted_feed(agents=20, tasks=tasks, seed=11))
    started = time.perf_counter()
    await _publish(settings, events)
    publish_s = time.perf_counter() - started
    print(f"published {len(events)} events in {publish_s:.1f}s", flush=True)

    stop = asyncio.Event()
    async with projector_running(settings) as projector:
        started = time.perf_counter()
        runner = asyncio.create_task(projector.run(stop))
        await wait_until_caught_up(settings, timeout=3600)
        project_s = time.perf_counter() - started
        stop.set()
        await runner
    print(f"projected {len(events)} events in {project_s:.1f}s", flush=True)

    cpu = time.process_time()
    report = await replay(settings, into=f"{settings.db_schema}_replay")
    cpu = time.process_time() - cpu
    result = {
        "events": len(events),
        "projector_events_per_second": round(len(events) / project_s),
        "replay_events_per_second": round(report.events_per_second),
        "replay_seconds": round(report.seconds, 2),
        # CPU of this process (decoding, handlers, the client side of the writes) per event:
        # steadier than the rate on a machine others are using.
        "replay_python_cpu_us_per_event": round(cpu / max(1, report.events) * 1e6, 1),
        "publish_events_per_second": round(len(events) / publish_s),
        "machine": describe(),
    }
    if not keep:
        async with await psycopg.AsyncConnection.connect(settings.database_url, autocommit=True) as conn:
            for schema in (settings.db_schema, report.schema):
                await conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
    return result


async def _publish(settings: Settings, events) -> None:
    producer = kafka.producer(settings, max_batch_size=256 * 1024, linger_ms=20)
    await kafka.start(producer, settings)
    try:
        pending = []
        for event in events:
            topic = topic_name(topic_for_event(event.event_type), settings.topic_prefix)
            pending.append(
                await producer.send(topic, encode(event), key=event.key.encode(), headers=[type_header(event)])
            )
        await asyncio.gather(*pending)
    finally:
        await producer.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=20000, help="tasks in the feed (about 5 events each)")
    parser.add_argument("--keep", action="store_true", help="keep the benchmark's schemas")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args.tasks, args.keep)), indent=2))


if __name__ == "__main__":
    main()
