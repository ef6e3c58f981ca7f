from __future__ import annotations

import json
import re

from prometheus_client import CollectorRegistry

from services.metrics import ProcessorMetrics
from tests.conftest import ROOT

DASHBOARD = ROOT / "infra" / "grafana" / "orchestrator.json"
ALERTS = ROOT / "infra" / "prometheus" / "alerts.yml"
METRIC_NAME = re.compile(r"\borchestrator_[a-z_]+")
SAMPLE_SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}


def defined_sample_names() -> set[str]:
    registry = CollectorRegistry()
    ProcessorMetrics("any", registry=registry)
    return {family.name + suffix for family in registry.collect() for suffix in SAMPLE_SUFFIXES[family.type]}


def promql_of(dashboard: dict) -> list[str]:
    return [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", ()) if "expr" in target]


def test_dashboard_is_valid_json_with_unique_panel_ids():
    dashboard = json.loads(DASHBOARD.read_text())
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    assert promql_of(dashboard)


def test_every_metric_the_dashboard_queries_is_defined():
    referenced = {name for expr in promql_of(json.loads(DASHBOARD.read_text())) for name in METRIC_NAME.findall(expr)}
    assert referenced and referenced <= defined_sample_names(), referenced - defined_sample_names()


def test_every_metric_the_alerts_use_is_defined():
    referenced = set(METRIC_NAME.findall(ALERTS.read_text()))
    assert referenced and referenced <= defined_sample_names(), referenced - defined_sample_names()


def test_the_dashboard_reads_the_analyst_views():
    sql = " ".join(
        target.get("rawSql", "")
        for panel in json.loads(DASHBOARD.read_text())["panels"]
        for target in panel.get("targets", ())
    )
    for view in ("capability_saturation_forecast", "task_waits", "recommendations", "skill_trends"):
        assert view in sql, view
