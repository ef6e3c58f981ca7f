import psycopg
import pytest
from psycopg import sql
from psycopg.rows import dict_row

from projections.postgres_view import PostgresView
from services.projector.bootstrap import open_view
from tests.projection_contract import ProjectionContract

pytestmark = pytest.mark.integration

PRIMARY_KEYS = {
    "agents": "agent_id",
    "agent_capabilities": "agent_id, name",
    "tasks": "task_id",
    "routing_decisions": "event_id",
    "task_assignments": "task_id, attempt",
    "agent_memory_profiles": "agent_id",
    "agent_load_history": "agent_id, window_start",
    "task_handoffs": "event_id",
}


@pytest.fixture
async def schemas(settings):
    made = []

    async def make(suffix: str) -> PostgresView:
        view = await open_view(settings, f"{settings.db_schema}_{suffix}")
        made.append(view)
        return view

    yield make
    for view in made:
        await view.conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(view.schema)))
        await view.close()


class TestPostgresView(ProjectionContract):
    @pytest.fixture
    async def view(self, schemas):
        return await schemas("a")

    @pytest.fixture
    async def other_view(self, schemas):
        return await schemas("b")

    async def rows(self, view, table):
        async with view.conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(
                sql.SQL("SELECT * FROM {} ORDER BY {}").format(sql.Identifier(table), sql.SQL(PRIMARY_KEYS[table]))
            )
            return await cur.fetchall()


async def test_migrations_apply_once(settings, schemas):
    view = await schemas("m")
    from projections.migrate import migrate

    assert await migrate(view.conn, view.schema) == []


async def test_a_failing_row_rolls_back_its_whole_batch(settings, schemas):
    from projections.ops import Position, Upsert

    view = await schemas("r")
    good = (Position("t", 0, 0), [Upsert("tasks", {"task_id": "ok"}, {"status": "submitted"})])
    bad = (Position("t", 0, 1), [Upsert("tasks", {"task_id": "bad"}, {"priority": 10**12})])

    with pytest.raises(psycopg.errors.DataError):
        await view.apply([good, bad])

    assert await view.stored_positions([("t", 0)]) in ({}, {("t", 0): -1})
    cur = await view.conn.execute("SELECT count(*) FROM tasks")
    assert (await cur.fetchone())[0] == 0


async def test_the_agent_memory_view_answers_per_agent_questions(settings, schemas):
    from tests import factories as f
    from tests.projection_contract import at_offsets

    view = await schemas("v")
    events = [
        f.registered("agent-1"),
        f.registered("agent-2"),
        *f.lifecycle("task-1", "agent-1", t=1),
        *f.lifecycle("task-2", "agent-1", t=10),
        f.submitted("task-3", t=20),
        f.assigned("task-3", "agent-1", t=21),
        f.failed("task-3", "agent-1", t=22),
        f.handed_off("task-2", "agent-1", "agent-2", t=30),
    ]
    await view.apply(at_offsets(events))

    async with view.conn.cursor(row_factory=dict_row) as cur:
        await cur.execute("SELECT * FROM agent_memory WHERE agent_id = 'agent-1'")
        memory = await cur.fetchone()

    assert memory["tasks_taken"] == 3 and memory["tasks_succeeded"] == 1
    assert memory["outcomes_per_capability"]["python"]["tasks_taken"] == 3
    assert abs(memory["recent_success_rate"] - 0.5) < 1e-9  # the hand-off attempt has no verdict
    assert memory["collaborators"] == [{"agent_id": "agent-2", "handoffs": 1, "shared_jobs": 0}]
    assert memory["health"] == "unknown" and memory["last_seen"] is not None


async def test_the_routing_analytics_views_answer(settings, schemas):
    from bench.demo.feed import scripted_feed
    from tests.projection_contract import at_offsets

    view = await schemas("an")
    await view.apply(at_offsets(list(scripted_feed(agents=5, tasks=200, seed=1))))

    async def rows(query):
        async with view.conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(query)
            return await cur.fetchall()

    decisions = await rows("SELECT * FROM decision_outcomes")
    assert decisions and all(d["outcome"] in ("completed", "failed") for d in decisions)
    waits = await rows("SELECT * FROM task_waits")
    assert waits and all(w["wait_ms"] >= 0 for w in waits)
    assert {r["capability"] for r in await rows("SELECT * FROM capability_outcomes")}
    [fair] = await rows("SELECT * FROM fairness")
    assert 0 < fair["agent_load_jain"] <= 1
    utilization = await rows("SELECT * FROM agent_utilization")
    assert utilization and all(u["utilization"] >= 0 for u in utilization)
    forecast = await rows("SELECT * FROM capability_saturation_forecast")
    assert forecast and all(f["queued_per_minute_in_15_min"] >= 0 for f in forecast)
    queued = await rows("SELECT count(*) AS n FROM task_queue_events")
    assert queued[0]["n"] > 0
