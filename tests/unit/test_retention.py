"""Retention declared for every topic and table: what is due, and declared vs actual."""

from datetime import datetime, timedelta, timezone

import pytest

from events.topics import FOREVER, SEVEN_DAYS_MS, TOPICS
from projections.migrate import migration_files
from services.privacy.retention import TABLES, TableRetention, prune_cutoffs, table_rows, topic_row

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
HEARTBEATS = next(t for t in TOPICS if t.name == "heartbeats")
TASKS = next(t for t in TOPICS if t.name == "tasks")


def test_an_expiring_table_must_say_how_a_row_ages():
    with pytest.raises(ValueError, match="needs a time column"):
        TableRetention(table="x", derived_from="heartbeats", retention_ms=1000)


def test_a_topic_missing_from_the_broker_is_reported():
    row = topic_row(TASKS, "p", None)
    assert (row["name"], row["status"], row["actual_retention_ms"]) == ("p.tasks", "missing", None)


def test_a_topic_whose_broker_retention_drifted_is_reported():
    row = topic_row(TASKS, "p", {"retention.ms": str(SEVEN_DAYS_MS), "cleanup.policy": "delete"})
    assert (row["status"], row["declared_retention_ms"], row["actual_retention_ms"]) == (
        "drift",
        FOREVER,
        SEVEN_DAYS_MS,
    )


def test_an_undeclared_table_and_a_missing_declared_one_are_reported():
    rows = {r["name"]: r for r in table_rows({"mystery": (3, None)}, NOW)}
    assert rows["mystery"]["status"] == "undeclared"
    assert rows["tasks"]["status"] == "missing"


def test_telemetry_rows_older_than_their_retention_are_overdue():
    old = NOW - timedelta(milliseconds=SEVEN_DAYS_MS, hours=1)
    rows = {r["name"]: r for r in table_rows({"agent_heartbeats_latest": (2, old), "tasks": (5, old)}, NOW)}
    assert rows["agent_heartbeats_latest"]["status"] == "overdue"
    assert rows["tasks"]["status"] == "ok"  # kept forever


def test_a_topic_as_declared_is_ok():
    row = topic_row(HEARTBEATS, "p", {"retention.ms": str(SEVEN_DAYS_MS), "cleanup.policy": "delete"})
    assert row["status"] == "ok" and row["detail"] == ""


def test_only_tables_derived_from_telemetry_are_pruned_and_at_the_telemetry_retention():
    [(table, cutoff)] = prune_cutoffs(TABLES, NOW)
    assert table.table == "agent_heartbeats_latest" and table.derived_from == "heartbeats"
    assert cutoff == NOW - timedelta(milliseconds=HEARTBEATS.retention_ms)


def test_every_table_the_migrations_create_has_a_declared_retention():
    created = {
        line.split()[2]
        for _, _, text in migration_files()
        for line in text.splitlines()
        if line.startswith("CREATE TABLE ")
    }
    assert created - {t.table for t in TABLES} == set()
