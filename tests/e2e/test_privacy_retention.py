"""Declared retention against the real broker and database: reported, then applied."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from events.agents import AgentHeartbeat
from events.envelope import make_event
from projections.handlers import ops_for
from projections.ops import Position
from services import kafka
from services.privacy.retention import apply_retention, retention_report
from services.projector.bootstrap import open_view
from tests.e2e.helpers import drop_schema, fetch, wait_for

pytestmark = pytest.mark.e2e
NOW = datetime.now(timezone.utc)


@pytest.fixture
async def projected(settings):
    await kafka.ensure_topics(settings)
    view = await open_view(settings)
    heartbeats = [
        make_event(AgentHeartbeat(agent_id=agent, in_flight=0), producer=agent, occurred_at=at)
        for agent, at in (("stale-1", NOW - timedelta(days=8)), ("fresh-1", NOW - timedelta(hours=1)))
    ]
    await view.apply(
        [(Position(settings.topic("heartbeats"), 0, offset), ops_for(event)) for offset, event in enumerate(heartbeats)]
    )
    await view.close()
    yield settings
    await drop_schema(settings, settings.db_schema)


async def set_retention(settings, topic: str, retention_ms: int) -> None:
    admin = kafka.admin_client(settings)
    await kafka.start(admin, settings)
    try:
        await admin.alter_configs(
            [
                ConfigResource(
                    ConfigResourceType.TOPIC,
                    settings.topic(topic),
                    {"retention.ms": str(retention_ms), "cleanup.policy": "delete"},
                )
            ]
        )
    finally:
        await admin.close()


async def until_report(settings, seen, what: str) -> list[dict]:
    """The retention report once `seen` holds for it."""

    async def report():
        rows = await retention_report(settings)
        return rows if seen(rows) else None

    return await wait_for(report, what=what)


async def test_drift_on_the_broker_and_overdue_rows_are_reported_and_apply_prunes_only_those(projected):
    settings = projected
    await set_retention(settings, "tasks", 3_600_000)

    # A config change reaches the broker's answers through the metadata log: wait until it shows.
    report = {
        row["name"]: row
        for row in await until_report(
            settings,
            lambda rows: any(r["name"] == settings.topic("tasks") and r["status"] == "drift" for r in rows),
            "the drift reported",
        )
    }
    assert (report[settings.topic("tasks")]["status"], report[settings.topic("tasks")]["actual_retention_ms"]) == (
        "drift",
        3_600_000,
    )
    assert report["agent_heartbeats_latest"]["status"] == "overdue"
    assert report["agent_heartbeats_latest"]["rows"] == 2

    dry = await apply_retention(settings, dry_run=True)
    assert [(r["table"], r["pruned"]) for r in dry] == [("agent_heartbeats_latest", 1)]
    assert len(await fetch(settings, "SELECT * FROM agent_heartbeats_latest")) == 2

    done = await apply_retention(settings)
    assert [(r["table"], r["pruned"]) for r in done] == [("agent_heartbeats_latest", 1)]
    assert [r["agent_id"] for r in await fetch(settings, "SELECT agent_id FROM agent_heartbeats_latest")] == ["fresh-1"]

    await kafka.ensure_topics(settings)
    report = await until_report(settings, lambda rows: all(r["status"] == "ok" for r in rows), "every status ok")
    assert {row["status"] for row in report} == {"ok"}, [r for r in report if r["status"] != "ok"]
    declared = {row["name"]: row["declared_retention_ms"] for row in report}
    assert declared[settings.topic("heartbeats")] == 7 * 24 * 3_600_000 and declared["tasks"] == -1
