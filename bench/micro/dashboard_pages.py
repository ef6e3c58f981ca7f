"""How long each dashboard page takes on large read models.

    python -m bench.micro.dashboard_pages --tasks 1000000

Fills a fresh schema with synthetic rows by SQL (a task every 0.6 s over a week at a million:
its assignment after a wait spread evenly on a log scale from 2 ms to 2 s, its routing decision,
a queue event for one task in a hundred, skill estimates of 200 agents) and their rollups as a
rebuild computes them, applies the roles under a throw-away prefix, serves the dashboard in this
process, and times every page over HTTP as the analyst, for the last hour and for everything.
Drops the schema and the roles afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import statistics
import time
import urllib.request
import uuid

import psycopg
from aiohttp import web
from psycopg import sql

from bench.machine import describe
from projections import rollups
from services.audit.roles import Roles, apply_roles, drop_roles
from services.dashboard.app import make_app
from services.projector.bootstrap import open_view
from services.settings import Settings

AGENTS = 200
CAPABILITIES = ("python", "sql", "summarize", "translate", "review")
FILL = """
INSERT INTO agents (agent_id, display_name, status, capacity, health)
SELECT 'agent-' || i, 'Agent ' || i, 'registered', 4, CASE WHEN i % 17 = 0 THEN 'degraded' ELSE 'healthy' END
FROM generate_series(1, {agents}) i;
INSERT INTO agent_capabilities (agent_id, name, proficiency)
SELECT 'agent-' || i, c, 0.3 + (i % 7) / 10.0 FROM generate_series(1, {agents}) i, unnest({capabilities}::text[]) c
WHERE (i + length(c)) % 3 <> 0;
INSERT INTO tasks (task_id, status, status_terminal, attempt, requirements, submitter, assigned_agent_id, reason,
                   submitted_at, routed_at, finished_at)
SELECT 'task-' || n,
       CASE WHEN n % 100 = 0 THEN 'queued' WHEN n % 9 = 0 THEN 'failed' ELSE 'completed' END, n % 100 <> 0, 1,
       jsonb_build_array(jsonb_build_object('name', ({capabilities}::text[])[1 + n % 5])), 'client-' || n % 3,
       CASE WHEN n % 100 <> 0 THEN 'agent-' || (1 + n % {agents}) END, 'best predicted success',
       timestamptz '2026-01-01' + n * interval '0.6 s', timestamptz '2026-01-01' + n * interval '0.6 s' + '5 ms',
       timestamptz '2026-01-01' + n * interval '0.6 s' + '900 ms'
FROM generate_series(1, {tasks}) n;
INSERT INTO task_assignments (task_id, attempt, agent_id, capability, assigned_at, started_at, finished_at, outcome,
                              success, duration_ms)
SELECT task_id, 1, assigned_agent_id, requirements -> 0 ->> 'name', submitted_at + wait,
       submitted_at + wait + interval '10 ms', submitted_at + wait + interval '880 ms', status,
       status = 'completed', 870
FROM tasks
CROSS JOIN LATERAL (SELECT 2 * power(1.0069, substr(task_id, 6)::bigint * 7919 % 1000) * interval '1 ms' AS wait) w
WHERE assigned_agent_id IS NOT NULL;
INSERT INTO routing_decisions (event_id, task_id, chosen_agent_id, candidates, predicted_success, confidence,
                               propensity, policy, reason, decided_at)
SELECT 'decision-' || task_id, task_id, assigned_agent_id,
       jsonb_build_array(jsonb_build_object('agent_id', assigned_agent_id, 'score', 0.7, 'features',
                                            jsonb_build_object('load', 0.1), 'predicted_success', 0.7,
                                            'confidence', 0.5, 'propensity', 0.9)),
       0.7, 0.5, 0.9, 'softmax', 'best predicted success', routed_at
FROM tasks WHERE assigned_agent_id IS NOT NULL;
INSERT INTO task_queue_events (event_id, task_id, capability, reason, occurred_at)
SELECT 'queued-' || task_id, task_id, requirements -> 0 ->> 'name', 'no agent free', routed_at
FROM tasks WHERE status = 'queued';
INSERT INTO skill_trajectory (event_id, agent_id, capability, proficiency, confidence, successes, attempts,
                              estimated_at)
SELECT 'estimate-' || c.agent_id || '-' || c.name || '-' || k, c.agent_id, c.name, least(1, c.proficiency + k / 500.0),
       least(1, k / 100.0), k / 2, k, timestamptz '2026-01-01' + k * ({tasks} * interval '0.6 s' / 100)
FROM agent_capabilities c, generate_series(1, 100) k;
INSERT INTO skill_estimates (agent_id, capability, proficiency, confidence, successes, attempts, estimated_at)
SELECT DISTINCT ON (agent_id, capability) agent_id, capability, proficiency, confidence, successes, attempts,
       estimated_at
FROM skill_trajectory ORDER BY agent_id, capability, estimated_at DESC;
"""
PAGES = ("now", "agents", "capabilities", "decisions", "decisions?task=task-777", "security", "audit", "whatif")


async def fill(settings: Settings, tasks: int) -> tuple[float, float]:
    """Seconds to fill the rows, and to compute their rollups as a rebuild does."""
    view = await open_view(settings)
    await view.close()
    started = time.perf_counter()
    async with await psycopg.AsyncConnection.connect(settings.database_url, autocommit=True) as conn:
        await conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(settings.db_schema)))
        statement = FILL.format(
            agents=AGENTS, tasks=int(tasks), capabilities=sql.Literal(list(CAPABILITIES)).as_string(conn)
        )
        await conn.execute(statement)
        filled = time.perf_counter()
        async with conn.transaction():
            await rollups.rebuild(conn)
        rolled_up = time.perf_counter()
        await conn.execute("ANALYZE")
    return filled - started, rolled_up - filled


def timed_get(url: str) -> float:
    started = time.perf_counter()
    with urllib.request.urlopen(url, timeout=120) as answer:
        answer.read()
        assert answer.status == 200, url
    return time.perf_counter() - started


async def measure(settings: Settings, repeat: int) -> dict[str, dict[str, float]]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    runner = web.AppRunner(make_app(settings))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        figures = {}
        for range_ in ("1h", "all"):
            for page in PAGES:
                url = f"http://127.0.0.1:{port}/{page}{'&' if '?' in page else '?'}range={range_}"
                seconds = [await asyncio.to_thread(timed_get, url) for _ in range(repeat)]
                figures[f"{page} ({range_})"] = {
                    "median_ms": round(statistics.median(seconds) * 1000),
                    "max_ms": round(max(seconds) * 1000),
                }
                print(
                    f"{page + ' (' + range_ + ')':38} median {figures[f'{page} ({range_})']['median_ms']:6} ms",
                    flush=True,
                )
        return figures
    finally:
        await runner.cleanup()


async def run(tasks: int, repeat: int) -> dict:
    tag = uuid.uuid4().hex[:8]
    settings = Settings.from_env().replace(
        db_schema=f"bench_{tag}",
        audit_db_schema=f"bench_{tag}_audit",
        db_role_prefix=f"bench{tag}",
        keystore_schema=f"bench_{tag}_keystore",
    )
    try:
        fill_s, rollup_s = await fill(settings, tasks)
        print(f"filled {tasks:,} tasks in {fill_s:.0f} s, their rollups in {rollup_s:.0f} s", flush=True)
        await apply_roles(settings)
        pages = await measure(settings, repeat)
    finally:
        async with await psycopg.AsyncConnection.connect(settings.database_url, autocommit=True) as conn:
            for schema in (settings.db_schema, settings.audit.db_schema):
                await conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
            await drop_roles(conn, Roles.named(settings.db_role_prefix))
    return {
        "tasks": tasks,
        "repeat": repeat,
        "fill_s": round(fill_s),
        "rollups_s": round(rollup_s),
        "pages": pages,
        "machine": describe(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3, help="requests per page and range (the median is shown)")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args.tasks, args.repeat)), indent=2))


if __name__ == "__main__":
    main()
