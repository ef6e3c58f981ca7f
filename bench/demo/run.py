"""`make run`: the whole loop on the local stack, with a live view and a summary.

Every processor runs as its own process (projector, health, router, balancer), a
simulated fleet answers its assignments, and a task stream arrives at a steady rate.
The live view reads the analysts' read models, as anyone could with psql; so does the
dashboard, whose address is printed at the start.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import sys
import time
from pathlib import Path

import psycopg
from psycopg import sql

from bench.evaluation.simulator.fleet import make_fleet, task_stream
from bench.evaluation.simulator.run import (
    answer_assignments,
    deregister_fleet,
    processors,
    register_fleet,
    submit_stream,
    until_ready,
)
from services import kafka
from services.audit.roles import apply_roles
from services.dashboard.bootstrap import address
from services.identity.keyring import Keyring
from services.projector.bootstrap import open_view
from services.projector.catchup import wait_until_caught_up
from services.settings import Settings

LIVE = {  # this run's tasks only: the read models also hold earlier runs
    "throughput": "SELECT count(*) FILTER (WHERE status = 'completed') AS completed, count(*) AS submitted, "
    "count(*) FILTER (WHERE status = 'queued') AS queued FROM tasks WHERE task_id LIKE {run}",
    "success": "SELECT round(avg(success::int), 3) AS success_rate FROM task_assignments "
    "WHERE success IS NOT NULL AND task_id LIKE {run}",
}
SUMMARY = {
    "tasks by status": "SELECT status, count(*) AS tasks FROM tasks GROUP BY status ORDER BY tasks DESC",
    "top agents per capability": (
        "SELECT capability, agent_id, tasks_taken, round(success_rate::numeric, 3) AS success_rate, "
        "round(median_duration_ms::numeric) AS median_ms FROM ("
        "  SELECT *, row_number() OVER (PARTITION BY capability ORDER BY success_rate DESC NULLS LAST, "
        "tasks_taken DESC) AS rank FROM agent_capability_outcomes WHERE tasks_taken >= 3) ranked "
        "WHERE rank <= 2 ORDER BY capability, rank"
    ),
    "queue waits per capability": (
        "SELECT capability, count(*) AS tasks, round(avg(wait_ms)) AS mean_wait_ms, "
        "round(percentile_cont(0.95) WITHIN GROUP (ORDER BY wait_ms)::numeric) AS p95_wait_ms "
        "FROM task_waits GROUP BY capability ORDER BY capability"
    ),
    "latest routing decisions": (
        "SELECT task_id, chosen_agent_id, round(predicted_success::numeric, 2) AS predicted, "
        "round(propensity::numeric, 2) AS propensity, left(reason, 70) AS reason "
        "FROM routing_decisions ORDER BY decided_at DESC LIMIT 5"
    ),
    "fairness (Jain, 1 = even)": "SELECT hour, round(agent_load_jain::numeric, 3) AS agents, "
    "round(submitter_wait_jain::numeric, 3) AS submitters FROM fairness ORDER BY hour",
}


async def main(tasks: int, rate: float, agents: int) -> None:
    settings = Settings.from_env()
    await kafka.ensure_topics(settings)
    await _analyst_access(settings)
    fleet = make_fleet(agents, seed=int(time.time()) % 1000)
    run = f"run{int(time.time())}"
    stream = [(f"{task_id}-{run}", *rest) for task_id, *rest in task_stream(tasks)]
    print(
        f"starting projector, health, router, balancer, learner, audit, dashboard; {agents} simulated agents; "
        f"{tasks} tasks at {rate:g}/s",
        flush=True,
    )
    keys = Keyring(settings)  # with identities verified (the secure profile), the fleet's and the decisions' keys
    await keys.enroll(*(agent.agent_id for agent in fleet))
    with processors(
        settings,
        "orchestrator",
        names=("projector", "health", "router", "balancer", "learner", "audit", "dashboard"),
        **await keys.orchestrator_env(Path(".local/keys")),
    ):
        print(f"dashboard: {address(settings)}now?live=1 (the read models, as the analyst role sees them)", flush=True)
        producer = kafka.producer(settings)
        await kafka.start(producer, settings)
        answering = asyncio.create_task(answer_assignments(settings, producer, fleet, random.Random(1), keys))
        watching = asyncio.create_task(_live_view(settings, run))
        try:
            await register_fleet(settings, producer, fleet, keys)
            await until_ready(settings, producer)  # the processors take a few seconds to start
            await submit_stream(settings, producer, stream, rate)
            await _until_done(settings, run, len(stream))
            await deregister_fleet(settings, producer, fleet, keys)
        finally:
            for job in (answering, watching):
                job.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await job
            await producer.stop()
        await wait_until_caught_up(settings, timeout=60)
        await _print(settings, SUMMARY)
        print(
            f"\nEverything is in Kafka (topics {settings.topic_prefix}.*) and in the read models of schema "
            f"{settings.db_schema!r}; `orchestrator replay` rebuilds them."
        )
        if sys.stdin.isatty():  # someone is watching: leave the dashboard up to look around
            print(f"The dashboard stays up at {address(settings)} until Ctrl-C.", flush=True)
            await asyncio.Event().wait()


async def _analyst_access(settings: Settings) -> None:
    """The read models exist and the analyst role may read them before the dashboard reads as that role."""
    view = await open_view(settings)  # the projector's own migration, idempotent
    await view.close()
    await apply_roles(settings)


async def _query(conn, query: str) -> tuple[list[str], list[tuple]]:
    cur = await conn.execute(query)
    return [c.name for c in cur.description], await cur.fetchall()


async def _live_view(settings: Settings, run: str) -> None:
    this_run = sql.Literal(f"%-{run}")
    started = time.monotonic()
    async with await _connect(settings) as conn:
        while True:
            await asyncio.sleep(2)
            with contextlib.suppress(psycopg.Error):
                _, [(completed, submitted, queued)] = await _query(
                    conn, sql.SQL(LIVE["throughput"]).format(run=this_run)
                )
                _, [(success,)] = await _query(conn, sql.SQL(LIVE["success"]).format(run=this_run))
                elapsed = time.monotonic() - started
                print(
                    f"[{elapsed:5.0f}s] submitted {submitted}  completed {completed} "
                    f"({completed / elapsed * 60:,.0f}/min)  queued {queued}  success rate {success}",
                    flush=True,
                )


async def _until_done(settings: Settings, run: str, total: int, timeout: float = 600.0) -> None:
    deadline = time.monotonic() + timeout
    async with await _connect(settings) as conn:
        while time.monotonic() < deadline:
            with contextlib.suppress(psycopg.Error):
                _, [(finished,)] = await _query(
                    conn,
                    sql.SQL(
                        "SELECT count(*) FROM tasks WHERE status IN ('completed', 'failed', 'expired') "
                        "AND task_id LIKE {}"
                    ).format(sql.Literal(f"%-{run}")),
                )
                if finished >= total:
                    return
            await asyncio.sleep(1)
    print("not every task finished in time; showing what there is", file=sys.stderr)


async def _connect(settings: Settings) -> psycopg.AsyncConnection:
    conn = await psycopg.AsyncConnection.connect(settings.database_url, autocommit=True)
    await conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(settings.db_schema)))
    return conn


async def _print(settings: Settings, queries: dict[str, str]) -> None:
    async with await _connect(settings) as conn:
        for title, query in queries.items():
            names, rows = await _query(conn, query)
            cells = [[("" if v is None else str(v)) for v in row] for row in rows]
            widths = [max([len(n), *(len(r[i]) for r in cells)]) for i, n in enumerate(names)]
            print(f"\n== {title}")
            print("  ".join(n.ljust(w) for n, w in zip(names, widths)))
            for row in cells:
                print("  ".join(v.ljust(w) for v, w in zip(row, widths)))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", type=int, default=300)
    parser.add_argument("--rate", type=float, default=20.0, help="tasks per second")
    parser.add_argument("--agents", type=int, default=10)
    args = parser.parse_args()
    try:
        asyncio.run(main(args.tasks, args.rate, args.agents))
    except KeyboardInterrupt:
        sys.exit(130)
