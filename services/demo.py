"""`make run`: the projector, a short scripted feed, and the read models it produced."""
from __future__ import annotations

import asyncio
import sys
import time

import psycopg

from events.codec import encode
from events.topics import topic_for_event, topic_name
from services import kafka
from services.feed import scripted_feed
from services.projector.bootstrap import projector_running
from services.projector.catchup import wait_until_caught_up
from services.settings import Settings

QUERIES = {
    "agents": "SELECT agent_id, display_name, status, capacity, health FROM agents ORDER BY agent_id",
    "tasks by status": "SELECT status, count(*) AS tasks FROM tasks GROUP BY status ORDER BY tasks DESC",
    "latest routing decisions": (
        "SELECT task_id, chosen_agent_id, round(predicted_success::numeric, 2) AS predicted, reason "
        "FROM routing_decisions ORDER BY decided_at DESC LIMIT 5"),
    "outcomes per agent": (
        "SELECT agent_id, count(*) AS attempts, count(*) FILTER (WHERE success) AS succeeded, "
        "round(avg(duration_ms)) AS avg_ms FROM task_assignments GROUP BY agent_id ORDER BY agent_id"),
}


async def main() -> None:
    settings = Settings.from_env()
    seed = int(time.time())
    events = list(scripted_feed(agents=5, tasks=40, seed=seed))
    stop = asyncio.Event()
    async with projector_running(settings) as projector:
        runner = asyncio.create_task(projector.run(stop))
        producer = kafka.producer(settings)
        await kafka.start(producer, settings)
        for event in events:
            await producer.send(topic_name(topic_for_event(event.event_type), settings.topic_prefix),
                                encode(event), key=event.key.encode())
        await producer.flush()
        await producer.stop()
        print(f"published {len(events)} events (seed {seed}); projecting…", flush=True)
        await wait_until_caught_up(settings)
        stop.set()
        await runner
    await _print_read_models(settings)


async def _print_read_models(settings: Settings) -> None:
    async with await psycopg.AsyncConnection.connect(settings.database_url) as conn:
        await conn.execute(f"SET search_path TO {settings.db_schema}")
        for title, query in QUERIES.items():
            cur = await conn.execute(query)
            names = [c.name for c in cur.description]
            rows = [[("" if v is None else str(v)) for v in row] for row in await cur.fetchall()]
            widths = [max(len(n), *(len(r[i]) for r in rows)) if rows else len(n) for i, n in enumerate(names)]
            print(f"\n== {title}")
            print("  ".join(n.ljust(w) for n, w in zip(names, widths)))
            for row in rows:
                print("  ".join(v.ljust(w) for v, w in zip(row, widths)))
    print(f"\nRead models live in schema {settings.db_schema!r} of DATABASE_URL; "
          "keep projecting with `orchestrator serve projector`.")


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(130)
