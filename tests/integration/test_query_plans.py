"""The analyst queries the README and the dashboard use are served by indexes, not by reading whole tables."""

from __future__ import annotations

import itertools
import json
import re

import pytest
from psycopg import sql

from bench.demo.feed import scripted_feed
from projections import rollups
from services.dashboard import queries as web_dashboard
from services.projector.bootstrap import open_view
from tests.conftest import ROOT
from tests.projection_contract import at_offsets

pytestmark = pytest.mark.integration

# query, parameters, an index its plan must read
KEY_QUERIES = {
    "task by id": ("SELECT * FROM tasks WHERE task_id = %s", ("task-1-7",), "tasks_pkey"),
    "decisions of a task": (
        "SELECT decided_at, chosen_agent_id, predicted_success FROM routing_decisions "
        "WHERE task_id = %s ORDER BY decided_at",
        ("task-1-7",),
        "routing_decisions_task",
    ),
    "assignments of an agent in a time range": (
        "SELECT task_id, attempt, outcome FROM task_assignments WHERE agent_id = %s "
        "AND assigned_at >= %s AND assigned_at < %s ORDER BY assigned_at",
        ("agent-1", "2026-01-01T00:00:00Z", "2026-01-01T00:00:05Z"),
        "task_assignments_agent",
    ),
    "capability saturation forecast": ("SELECT * FROM capability_saturation_forecast", (), "task_assignments_pkey"),
    "capability history": (
        "SELECT occurred_at, agent_id, proficiency FROM agent_capability_history WHERE name = %s ORDER BY occurred_at",
        ("python",),
        "agent_capability_history_name",
    ),
}


@pytest.fixture
async def loaded(settings):
    view = await open_view(settings)
    try:
        await view.apply(at_offsets(list(scripted_feed(agents=20, tasks=400))))
        await view.conn.execute("ANALYZE")
        yield view
    finally:
        await view.conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(view.schema)))
        await view.close()


def scans(plan: dict) -> list[tuple[str, str | None]]:
    """(node type, the index it reads, or for a sequential scan the table) of every node of the plan."""
    found = [(plan["Node Type"], plan.get("Index Name") or plan.get("Relation Name"))]
    for child in plan.get("Plans", ()):
        found += scans(child)
    return found


async def plan_of(view, query: str, params) -> list[tuple[str, str | None]]:
    async with view.conn.cursor() as cur:
        await cur.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(view.schema)))
        # Tables this small are cheaper to read whole; what matters is that an index can serve the query.
        await cur.execute("SET enable_seqscan = off")
        try:
            await cur.execute("EXPLAIN (FORMAT JSON) " + query, params)
            [[explained]] = await cur.fetchall()
        finally:
            await cur.execute("RESET enable_seqscan")
    explained = json.loads(explained) if isinstance(explained, str) else explained
    return scans(explained[0]["Plan"])


@pytest.mark.parametrize("name", KEY_QUERIES)
async def test_key_query_reads_its_index(loaded, name):
    query, params, index = KEY_QUERIES[name]
    plan = await plan_of(loaded, query, params)
    assert any(
        node in ("Index Scan", "Index Only Scan", "Bitmap Index Scan") and used == index for node, used in plan
    ), f"{name}: {plan}"
    assert not any(node == "Seq Scan" for node, _ in plan), f"{name} reads a whole table: {plan}"


def dashboard_queries() -> dict[str, str]:
    dashboard = json.loads((ROOT / "infra" / "grafana" / "orchestrator.json").read_text())
    return {
        panel["title"]: target["rawSql"]
        for panel in dashboard["panels"]
        for target in panel.get("targets", ())
        if "rawSql" in target
    }


@pytest.mark.parametrize("title", dashboard_queries())
async def test_every_dashboard_query_runs_on_the_read_models(loaded, title):
    # Grafana's time macro becomes a condition PostgreSQL accepts; the rest is the panel's SQL as written.
    query = re.sub(r"\$__timeFilter\(([a-z_]+)\)", r"\1 IS NOT NULL", dashboard_queries()[title])
    async with loaded.conn.cursor() as cur:
        await cur.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(loaded.schema)))
        await cur.execute(query)
        assert cur.description, title


# Tables that grow with tasks, events or time: the dashboard reads them through an index only.
# Tables of one row per agent (or agent and capability) are small whatever the load, and read whole.
GROWING = {
    "tasks",
    "task_assignments",
    "routing_decisions",
    "task_queue_events",
    "skill_trajectory",
    "skill_shifts",
    "security_events",
    "agent_health_changes",
    "agent_capability_history",
    "model_versions",
    "audit_log",
    # Rollups grow with time (a row per minute or hour), not with tasks: read by their time too.
    *rollups.TABLES,
}
DASHBOARD_FILTERS = {"none": {}, "capability": {"capability": "python"}, "agent": {"agent": "agent-1"}}


@pytest.fixture
async def with_audit_log(loaded):

    from services.audit.store import ensure_schema
    from services.settings import Settings

    settings = Settings.from_env({}).replace(db_schema=loaded.schema, audit_db_schema=f"{loaded.schema}_audit")
    await ensure_schema(loaded.conn, settings.audit.db_schema)
    await loaded.conn.commit()
    try:
        yield settings
    finally:
        await loaded.conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(settings.audit.db_schema)))


@pytest.mark.parametrize("key", sorted(web_dashboard.PANELS))
async def test_every_dashboard_panel_reads_growing_tables_through_an_index(loaded, with_audit_log, key):
    from datetime import datetime, timezone

    from psycopg import AsyncClientCursor

    from services.dashboard.database import statement
    from services.dashboard.queries import PANELS, Filters, parameters

    newest = datetime(2026, 1, 1, 0, 0, 5, tzinfo=timezone.utc)
    # The last hour, and ranges wide enough for the rollups: a week (cut at both ends) and everything.
    for (filtered, given), range_ in itertools.product(DASHBOARD_FILTERS.items(), ("1h", "7d", "all")):
        filters = Filters(range=range_, **given)
        query = statement(PANELS[key], with_audit_log, filters)
        params = {"agent": "agent-1", "task": "task-1-7", **parameters(filters, newest)}
        params["agent"] = params["agent"] or "agent-1"  # the panels of one agent always name one
        text = AsyncClientCursor(loaded.conn).mogrify(query, {k: v for k, v in params.items() if f"%({k})s" in query})
        plan = await plan_of(loaded, text, ())
        assert any(node in ("Index Scan", "Index Only Scan", "Bitmap Index Scan") for node, _ in plan) or not (
            {relation for _, relation in plan} & GROWING
        ), f"{key} ({filtered}, {range_}) reads no index: {plan}"
        whole = [relation for node, relation in plan if node == "Seq Scan" and relation in GROWING]
        assert not whole, f"{key} ({filtered}, {range_}) reads {whole} whole: {plan}"
