"""The compliance report against the real broker and database, each source as it is today."""

from __future__ import annotations

import pytest

from services import kafka
from services.compliance.report import ATTENTION, OK, UNAVAILABLE, build_report
from services.projector.bootstrap import open_view
from tests.e2e.helpers import drop_schema

pytestmark = pytest.mark.e2e


async def test_the_report_shows_every_source_and_says_which_ones_are_not_there(settings):
    s = settings.replace(audit_db_schema=f"audit_{settings.db_schema}")
    await kafka.ensure_topics(s)
    view = await open_view(s)  # the read models, with the identity and privacy tables
    try:
        await view.conn.execute(
            "INSERT INTO security_events (event_id, occurred_at, kind, agent_id, detail) VALUES "
            "('e1', now(), 'not_assignee', 'agent-2', '{\"task_id\": \"task-1\"}'), "
            "('e2', now(), 'key_enrolled', 'agent-1', '{}')"
        )

        report = await build_report(s)
    finally:
        await view.close()
        await drop_schema(s, s.db_schema)

    sections = {section.name: section for section in report.sections}
    assert list(sections) == ["acls", "retention", "erasures", "audit", "security_events"]
    if s.kafka_security_protocol == "PLAINTEXT":
        assert (sections["acls"].status, sections["acls"].summary) == (
            OK,
            "plaintext profile: no ACLs (the broker has no authorizer)",
        )
    else:  # the secure profile's broker has an authorizer: the report lists what it enforces
        assert "ACLs in force" in sections["acls"].summary
    assert {row["name"] for row in sections["retention"].items} >= {s.topic("tasks"), "tasks", "security_events"}
    assert sections["erasures"].summary == "0 erasures performed, 0 subject keys destroyed"
    assert sections["audit"].status == UNAVAILABLE and "no audit_log" in sections["audit"].summary
    assert sections["security_events"].status == ATTENTION
    assert "key_enrolled: 1, not_assignee: 1" in sections["security_events"].summary
    assert report.as_json()["sections"]["security_events"]["items"][0]["agent_id"] in ("agent-1", "agent-2")
