"""The rollups the projector keeps equal a rebuild from the rows, and the dashboard's wide ranges read
from them what its rows say: the same numbers, the 95th percentile of waits to three figures."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

import pytest
from psycopg import AsyncClientCursor, sql
from psycopg.rows import dict_row

from bench.demo.feed import scripted_feed
from events.topics import topic_for_event
from projections import rollups
from projections.handlers import ops_for
from projections.ops import Position
from services.dashboard.queries import PANELS
from services.projector.bootstrap import open_view
from tests import factories as f

pytestmark = pytest.mark.integration

BASE = datetime(2026, 1, 1, tzinfo=timezone.utc)


def spread_log() -> list:
    """Four runs of the same fleet, 50 minutes and some seconds apart, one more the next day, and a
    task retried."""
    events = []
    for k in range(5):
        start = BASE + k * timedelta(minutes=50, seconds=17.3) if k < 4 else BASE + timedelta(days=1, hours=2.17)
        run = scripted_feed(agents=6, tasks=120, seed=11 + k, start=start)
        events += [e for e in run if k == 0 or not e.event_type.startswith("Agent")]
    events += [
        f.submitted("retried", t=30),
        f.assigned("retried", "agent-1", t=31),
        f.failed("retried", "agent-1", t=32),
        f.assigned("retried", "agent-2", attempt=2, t=3000),
        f.completed("retried", "agent-2", attempt=2, t=3001),
        f.assigned("never-submitted", "agent-3", t=40),
    ]
    return events


def shuffled_batches(events, seed: int) -> list[list[tuple[Position, list]]]:
    """The events topic by topic, in batches of any size interleaving the topics: a task's outcome
    may be projected before its submission, as two topics read at their own pace deliver them."""
    rng = random.Random(seed)
    queues: dict[str, list] = {}
    for event in events:
        queues.setdefault(topic_for_event(event.event_type).name, []).append(event)
    offsets = dict.fromkeys(queues, 0)
    batches = []
    while any(queues.values()):
        batch = []
        for _ in range(rng.randint(1, 4)):
            if not any(queues.values()):
                break
            topic = rng.choice([t for t, q in queues.items() if q])
            size = rng.randint(1, 60)
            take, queues[topic] = queues[topic][:size], queues[topic][size:]
            for event in take:
                batch.append((Position(topic, 0, offsets[topic]), ops_for(event)))
                offsets[topic] += 1
        batches.append(batch)
    return batches


@pytest.fixture
async def projected(settings):
    view = await open_view(settings)
    try:
        for batch in shuffled_batches(spread_log(), seed=5):
            await view.apply(sorted(batch, key=lambda item: (item[0].topic, item[0].offset)))
        yield view
    finally:
        await view.conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(view.schema)))
        await view.close()


async def rollup_rows(view) -> dict[str, list[tuple]]:
    found = {}
    for table in rollups.TABLES:
        cur = await view.conn.execute(sql.SQL("SELECT * FROM {}").format(sql.Identifier(table)))
        found[table] = sorted(await cur.fetchall(), key=repr)
    return found


async def test_the_rollups_kept_batch_by_batch_equal_a_rebuild(projected):
    kept = await rollup_rows(projected)
    assert all(kept.values()), {t: len(rows) for t, rows in kept.items()}
    async with projected.conn.transaction():
        await rollups.rebuild(projected.conn)
    assert await rollup_rows(projected) == kept


def ranges(newest: datetime) -> list[tuple]:
    return [
        ("-infinity", "infinity"),
        (BASE, newest),  # a whole day, whole hours of the next, the hour it cuts
        (BASE + timedelta(minutes=13, seconds=7.25), newest),  # cuts a minute and an hour at the start
        (BASE + timedelta(hours=1), BASE + timedelta(hours=2, seconds=3)),  # aligned start, cut end
        (BASE + timedelta(minutes=50, seconds=17.5), BASE + timedelta(minutes=50, seconds=19)),  # within a minute
    ]


async def rows_of(view, query: str, params: dict) -> list[dict]:
    async with AsyncClientCursor(view.conn, row_factory=dict_row) as cur:
        await cur.execute("SET TIME ZONE 'UTC'")
        await cur.execute(cur.mogrify(query, {k: v for k, v in params.items() if f"%({k})s" in query}))
        return await cur.fetchall()


@pytest.mark.parametrize("key", sorted(k for k, p in PANELS.items() if p.rollup_sql))
async def test_a_wide_range_reads_from_the_rollup_what_the_rows_say(projected, key):
    panel = PANELS[key]
    [[newest]] = await (await projected.conn.execute("SELECT max(submitted_at) FROM tasks")).fetchall()
    compared = 0
    for since, until in ranges(newest):
        for capability in (None, "python"):
            for agent in (None, "agent-1") if panel.rollup_has_agent else (None,):
                params = {"since": since, "until": until, "capability": capability, "agent": agent}
                exact = await rows_of(projected, panel.sql, params)
                wide = await rows_of(projected, panel.rollup_sql, params)
                if key == "wait_per_capability":
                    for row in exact:  # to three significant figures, then rounded to 0.1 ms
                        row["p95_wait_ms"] = pytest.approx(row["p95_wait_ms"], rel=0.005, abs=0.051)
                assert wide == exact, (since, until, capability, agent)
                compared += len(exact)
    assert compared > 20
