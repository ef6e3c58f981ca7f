"""The web dashboard's pure parts: filters, time window, the analyst's connection, figures, cells."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import pytest
from aiohttp.test_utils import TestClient, TestServer
from psycopg.conninfo import conninfo_to_dict

from services.dashboard.app import make_app
from services.dashboard.charts import cell, figure
from services.dashboard.database import analyst_conninfo, statement
from services.dashboard.queries import PAGES, PANELS, BadFilter, Chart, Filters, parameters, window
from services.settings import ConfigError, Settings

NEWEST = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)


def test_filters_default_to_the_last_hour_and_nothing_else():
    assert Filters.from_query({}) == Filters(range="1h")
    assert Filters.from_query({"range": "all", "capability": "python", "agent": " a-1 ", "live": "1"}) == Filters(
        range="all", capability="python", agent="a-1", live=True
    )


@pytest.mark.parametrize(
    "query, complaint",
    [
        ({"range": "2h"}, "range must be one of"),
        ({"agent": "x'; DROP TABLE tasks"}, "agent may hold"),
        ({"task": "t" * 201}, "task may hold"),
    ],
)
def test_bad_filters_are_refused_with_the_reason(query, complaint):
    with pytest.raises(BadFilter, match=complaint):
        Filters.from_query(query)


def test_a_link_keeps_the_other_filters():
    filters = Filters(range="6h", capability="sql")
    assert filters.query_string(agent="agent-2") == "range=6h&capability=sql&agent=agent-2"


def test_the_range_counts_back_from_the_newest_task():
    assert window(Filters(range="15m"), NEWEST) == (NEWEST - timedelta(minutes=15), NEWEST)
    assert window(Filters(range="all"), NEWEST) == ("-infinity", "infinity")
    assert window(Filters(range="1h"), None) == ("-infinity", "infinity")
    assert parameters(Filters(agent="a"), NEWEST, agent="b")["agent"] == "b"


def test_the_analyst_logs_in_with_its_password_and_keeps_the_urls_tls_parameters():
    url = "postgresql://admin:secret@db.example:5432/orch?sslmode=verify-full&sslrootcert=/etc/ca.pem"
    given = Settings.from_env({"DATABASE_URL": url, "DB_ANALYST_PASSWORD": "pw", "DB_ROLE_PREFIX": "acme"})
    parts = conninfo_to_dict(analyst_conninfo(given))
    assert (parts["user"], parts["password"], parts["sslmode"], parts["sslrootcert"], parts["host"]) == (
        "acme_analyst",
        "pw",
        "verify-full",
        "/etc/ca.pem",
        "db.example",
    )


def test_without_the_analysts_password_the_url_is_used_as_given_and_narrowed_later():
    url = "postgresql://admin:secret@127.0.0.1:5432/orch?sslmode=require"
    assert analyst_conninfo(Settings.from_env({"DATABASE_URL": url})) == url
    own = "postgresql://reader:x@127.0.0.1:5432/orch"
    assert (
        analyst_conninfo(
            Settings.from_env({"DATABASE_URL": url, "DB_ANALYST_PASSWORD": "pw", "DASHBOARD_DATABASE_URL": own})
        )
        == own
    )


def test_the_port_must_be_a_port():
    with pytest.raises(ConfigError, match="DASHBOARD_PORT"):
        Settings.from_env({"DASHBOARD_PORT": "eighty"})


def test_every_page_names_known_panels_and_every_chart_draws_columns_its_sql_selects():
    assert {key for page in PAGES.values() for key in page.panels} <= set(PANELS)
    for panel in PANELS.values():
        chart = panel.chart
        if chart is None:
            continue
        columns = [chart.x, *chart.y, chart.series, chart.z, chart.low, chart.high]
        for text in filter(None, (panel.sql, panel.rollup_sql)):
            missing = [c for c in columns if c and not re.search(rf"\b{c}\b", text)]
            assert not missing, f"{panel.key}: {missing}"
        assert chart.marks is None or chart.marks in PANELS


def test_the_audit_schema_is_quoted_into_the_audit_panels_only():
    settings = Settings.from_env({"AUDIT_DB_SCHEMA": "audit_x"})
    assert 'FROM "audit_x".audit_log' in statement(PANELS["audit_head"], settings)
    assert statement(PANELS["tasks_per_minute"], settings) == PANELS["tasks_per_minute"].sql.strip()


def test_bars_have_one_trace_per_column():
    rows = [
        {"capability": "python", "mean_wait_ms": 10.0, "p95_wait_ms": 30.0},
        {"capability": "sql", "mean_wait_ms": 5.0, "p95_wait_ms": 9.0},
    ]
    data = figure(Chart("bar", "capability", ("mean_wait_ms", "p95_wait_ms")), rows)["data"]
    assert [(t["name"], t["x"], t["y"]) for t in data] == [
        ("mean_wait_ms", ["python", "sql"], [10.0, 5.0]),
        ("p95_wait_ms", ["python", "sql"], [30.0, 9.0]),
    ]


def test_a_heatmap_leaves_a_hole_where_an_agent_never_tried_a_capability():
    rows = [
        {"agent_id": "a", "capability": "python", "success_rate": 0.5},
        {"agent_id": "b", "capability": "sql", "success_rate": 1.0},
    ]
    [trace] = figure(Chart("heatmap", "capability", (), series="agent_id", z="success_rate"), rows)["data"]
    assert (trace["x"], trace["y"], trace["z"]) == (["python", "sql"], ["a", "b"], [[0.5, None], [None, 1.0]])


def test_a_band_per_series_with_the_shifts_marked():
    at = NEWEST.isoformat()
    rows = [{"capability": "python", "estimated_at": NEWEST, "proficiency": 0.6, "low": 0.4, "high": 0.8}]
    marks = [{"capability": "python", "detected_at": NEWEST, "direction": "improved", "after": 0.7}]
    chart = Chart("band", "estimated_at", ("proficiency",), series="capability", low="low", high="high")
    low, high, line, shift = figure(chart, rows, marks)["data"]
    assert (low["y"], high["y"], high["fill"], line["y"], line["x"]) == ([0.4], [0.8], "tonexty", [0.6], [at])
    assert (shift["x"], shift["y"], shift["text"]) == ([at], [0.7], ["python improved"])


def test_cells_are_plain_text():
    assert [cell(None), cell(True), cell(0.12345), cell(2.0), cell(7), cell(NEWEST)] == [
        "",
        "true",
        "0.123",
        "2",
        "7",
        "2026-03-02 09:00:00.000+00:00",
    ]


async def test_a_bad_filter_or_page_is_answered_before_the_database_is_asked_and_plotly_is_served_locally():
    # The database URL points at a closed port: none of these requests may need it.
    app = make_app(Settings.from_env({"DATABASE_URL": "postgresql://nobody:x@127.0.0.1:9/none"}))
    async with TestClient(TestServer(app)) as client:
        bad = await client.get("/now?range=forever")
        assert bad.status == 400 and "range must be one of" in await bad.text()
        assert (await client.get("/nowhere")).status == 404
        plotly = await client.get("/static/plotly.min.js")
        assert plotly.status == 200 and "plotly.js" in (await plotly.text())[:200]
        assert (await client.get("/static/dashboard.js")).status == 200


def test_ranges_over_a_day_read_the_rollups_unless_an_agent_is_picked_that_the_rollup_has_not():
    settings = Settings.from_env({})
    rolled_up = {key for key, panel in PANELS.items() if panel.rollup_sql}
    assert rolled_up == {"tasks_per_minute", "success_per_minute", "wait_per_capability", "success_heatmap"}
    for key in rolled_up:
        panel = PANELS[key]
        assert statement(panel, settings, Filters(range="24h")) == panel.sql.strip()
        for wide in ("7d", "all"):
            assert statement(panel, settings, Filters(range=wide)) == panel.rollup_sql.strip()
            picked = statement(panel, settings, Filters(range=wide, agent="agent-1"))
            assert picked == (panel.rollup_sql if panel.rollup_has_agent else panel.sql).strip()
