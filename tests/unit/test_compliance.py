"""The compliance report: each source a section, a missing or failing source never sinks the report."""

from datetime import datetime, timezone

from services.compliance.report import (
    ATTENTION,
    OK,
    UNAVAILABLE,
    Section,
    acl_section,
    audit_section,
    build_report,
    erasure_section,
    retention_section,
    security_events_section,
)
from services.settings import Settings

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
SETTINGS = Settings.from_env({})


async def missing_module(settings):
    import services.not_built_yet  # noqa: F401 - what an area that has not landed looks like


async def unreachable(settings):
    raise ConnectionRefusedError("connection refused\nmore detail")


async def fine(settings):
    return Section("audit", OK, "chain intact")


async def test_sources_that_are_missing_or_failing_are_reported_as_unavailable_and_the_rest_still_shows():
    report = await build_report(
        SETTINGS, sources=(("acls", missing_module), ("erasures", unreachable), ("audit", fine)), now=NOW
    )

    sections = {s.name: s for s in report.sections}
    assert sections["acls"].status == UNAVAILABLE and "services.not_built_yet" in sections["acls"].summary
    assert sections["erasures"].summary == "not available: ConnectionRefusedError: connection refused"
    assert sections["audit"].status == OK
    assert report.as_json()["status"] == UNAVAILABLE
    assert report.as_json()["generated_at"] == "2026-03-01T12:00:00Z"
    assert "== erasures [unavailable]" in report.as_text()


def test_a_tampered_audit_chain_draws_attention_to_its_first_bad_row():
    verdict = {
        "ok": False,
        "rows_verified": 39,
        "head_seq": 39,
        "checkpoints": 1,
        "notes": [],
        "first_bad": {
            "seq": 40,
            "kind": "altered",
            "position": "p.tasks[0]@12",
            "detail": "its content does not match its hash",
        },
        "problems": [{"seq": 40, "kind": "altered", "position": "p.tasks[0]@12", "detail": "…"}],
    }

    section = audit_section(verdict)

    assert section.status == ATTENTION
    assert "seq 40 (p.tasks[0]@12): altered" in section.summary


def test_an_intact_chain_is_reported_with_its_extent():
    section = audit_section(
        {
            "ok": True,
            "rows_verified": 7,
            "head_seq": 7,
            "checkpoints": 2,
            "notes": [],
            "first_bad": None,
            "problems": [],
        }
    )

    assert (section.status, section.summary) == (OK, "chain intact: 7 rows up to seq 7, 2 signed checkpoints")


def test_without_an_authorizer_the_plaintext_profile_says_there_are_no_acls():
    assert acl_section(None, plaintext=True).summary == "plaintext profile: no ACLs (the broker has no authorizer)"
    assert acl_section(None, plaintext=False).status == ATTENTION


def test_acls_in_force_are_counted_per_principal():
    bindings = [
        {"principal": "User:router", "operation": "read"},
        {"principal": "User:router", "operation": "write"},
        {"principal": "User:agent-1", "operation": "read"},
    ]

    section = acl_section(bindings, plaintext=False)

    assert (section.status, section.summary, section.items) == (OK, "3 ACLs in force for 2 principals", bindings)


def test_retention_drift_and_security_violations_need_attention():
    retention = retention_section([{"name": "p.tasks", "status": "ok"}, {"name": "p.heartbeats", "status": "drift"}])
    events = security_events_section(
        [{"kind": "key_enrolled", "count": 3}, {"kind": "not_assignee", "count": 1}],
        [{"occurred_at": NOW, "kind": "not_assignee", "agent_id": "a-2", "detail": {}}],
    )
    quiet = security_events_section([{"kind": "key_enrolled", "count": 3}], [])

    assert (retention.status, retention.summary) == (ATTENTION, "2 topics and tables; 1 not as declared")
    assert events.status == ATTENTION and "not_assignee: 1" in events.summary
    assert events.items[0]["occurred_at"] == NOW.isoformat()
    assert quiet.status == OK


def test_erasures_count_erasures_and_destroyed_keys_without_personal_data():
    rows = [
        {"erasure_id": "e1", "key_id": "k1", "erased_at": NOW, "erased_by": "dpo", "reason": "request"},
        {"erasure_id": "e1", "key_id": "k2", "erased_at": NOW, "erased_by": "dpo", "reason": "request"},
    ]

    section = erasure_section(rows)

    assert section.summary == "1 erasures performed, 2 subject keys destroyed"
    assert section.items[0]["erased_at"] == NOW.isoformat()
