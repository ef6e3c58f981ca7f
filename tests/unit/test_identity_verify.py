"""Given enrolled keys and assignments, when a record arrives, then it is accepted or refused, and why."""

from __future__ import annotations

import base64
from datetime import datetime, timezone

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from events.agents import AgentHeartbeat, AgentRegistered
from events.codec import decode, encode
from events.envelope import make_event
from events.security import AgentKeyEnrolled, AgentKeyRevoked
from events.tasks import TaskAssigned, TaskCompleted, TaskHandedOff, TaskSubmitted
from events.values import Capability, CapabilityRequirement
from services.identity.signing import KEY_ID_HEADER, SIGNATURE_HEADER, Signer, b64, load_signer, write_private_key
from services.identity.verify import Assignments, Inbound, KeyRegistry, claim_of, verify, violation_event
from services.settings import ConfigError, Settings

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
MS0 = int(T0.timestamp() * 1000)


def signer() -> Signer:
    return Signer.of(Ed25519PrivateKey.generate())


ALICE, BOB = signer(), signer()


def enrolled(agent_id: str, key: Signer) -> AgentKeyEnrolled:
    return AgentKeyEnrolled(
        agent_id=agent_id, key_id=key.key_id, public_key=b64(key.public_key), enrolled_by="operator"
    )


def registration(agent_id: str = "alice"):
    return make_event(
        AgentRegistered(
            agent_id=agent_id,
            display_name=agent_id,
            capacity=1,
            capabilities=(Capability(name="python", proficiency=0.8),),
        ),
        producer=agent_id,
    )


def completed(agent_id: str, task_id: str = "task-1", attempt: int = 1):
    return make_event(TaskCompleted(task_id=task_id, agent_id=agent_id, attempt=attempt), producer=agent_id)


def record(value: bytes, headers=(), *, topic="t.agents", at_ms: int = MS0) -> Inbound:
    return Inbound(topic, 0, 7, value, tuple(headers), at_ms)


def signed(event, key: Signer, **options) -> Inbound:
    value = encode(event)
    return record(value, key.headers(value), **options)


class Given:
    def __init__(self) -> None:
        self.keys, self.assignments = KeyRegistry(), Assignments()

    def given(self, *bodies) -> "Given":
        for body in bodies:
            self.keys.apply(body)
            self.assignments.apply(body)
        return self

    def when(self, inbound: Inbound, mode: str = "verify"):
        claim = claim_of(inbound.value)
        assert claim is not None
        return verify(inbound, claim, self.keys, self.assignments, mode=mode)


def kind_of(violation) -> str | None:
    return violation.kind if violation else None


# --- refused first ---------------------------------------------------------------


def test_a_record_without_signature_headers_is_unsigned():
    assert kind_of(Given().given(enrolled("alice", ALICE)).when(record(encode(registration())))) == "unsigned"


def test_a_record_missing_only_its_signature_is_unsigned():
    value = encode(registration())
    violation = Given().given(enrolled("alice", ALICE)).when(record(value, [(KEY_ID_HEADER, ALICE.key_id.encode())]))
    assert kind_of(violation) == "unsigned" and SIGNATURE_HEADER in violation.reason


def test_a_tampered_value_fails_its_signature():
    value = encode(registration())
    tampered = value.replace(b'"capacity":1', b'"capacity":9')
    assert tampered != value
    violation = Given().given(enrolled("alice", ALICE)).when(record(tampered, ALICE.headers(value)))
    assert kind_of(violation) == "bad_signature"


def test_a_signature_by_another_key_under_alices_key_id_fails():
    value = encode(registration())
    forged = [(KEY_ID_HEADER, ALICE.key_id.encode()), BOB.headers(value)[1]]
    assert (
        kind_of(Given().given(enrolled("alice", ALICE), enrolled("bob", BOB)).when(record(value, forged)))
        == "bad_signature"
    )


def test_a_signature_naming_another_key_id_than_the_one_signed_fails():
    value = encode(registration())
    key_id, signature = ALICE.headers(value)
    swapped = [(KEY_ID_HEADER, BOB.key_id.encode()), signature]
    assert (
        kind_of(Given().given(enrolled("alice", ALICE), enrolled("bob", BOB)).when(record(value, swapped)))
        == "bad_signature"
    )


def test_a_registration_claiming_alice_signed_by_bob_is_another_agents_key():
    violation = Given().given(enrolled("alice", ALICE), enrolled("bob", BOB)).when(signed(registration("alice"), BOB))
    assert kind_of(violation) == "other_agents_key"
    assert violation.claim.agent_id == "alice" and violation.key_id == BOB.key_id


def test_a_key_never_enrolled_is_unknown():
    assert kind_of(Given().given(enrolled("bob", BOB)).when(signed(registration("alice"), ALICE))) == "unknown_key"


def test_a_record_written_after_its_key_was_revoked_is_refused():
    revoked = AgentKeyRevoked(agent_id="alice", key_id=ALICE.key_id, revoked_at=T0, revoked_by="operator")
    scenario = Given().given(enrolled("alice", ALICE), revoked)
    assert kind_of(scenario.when(signed(registration(), ALICE, at_ms=MS0 + 1))) == "revoked_key"
    assert scenario.when(signed(registration(), ALICE, at_ms=MS0 - 1)) is None  # written before: still good


def test_enrolling_a_known_key_id_again_for_another_agent_does_not_hand_it_over():
    scenario = Given().given(enrolled("alice", ALICE), enrolled("mallory", ALICE))
    assert kind_of(scenario.when(signed(registration("mallory"), ALICE))) == "other_agents_key"


def test_an_outcome_from_an_agent_the_attempt_was_not_assigned_to_is_refused_even_when_well_signed():
    scenario = Given().given(
        enrolled("alice", ALICE),
        enrolled("bob", BOB),
        TaskAssigned(agent_id="alice", task_id="task-1", attempt=1, capability="python"),
    )
    violation = scenario.when(signed(completed("bob"), BOB, topic="t.task-outcomes"))
    assert kind_of(violation) == "not_assignee" and "assigned to alice" in violation.reason


def test_an_outcome_for_an_attempt_never_assigned_is_refused_also_with_identity_off():
    violation = Given().when(record(encode(completed("bob")), topic="t.task-outcomes"), mode="off")
    assert kind_of(violation) == "not_assignee" and "never assigned" in violation.reason


def test_a_hand_off_counts_only_from_the_agent_holding_the_attempt():
    handed = make_event(
        TaskHandedOff(task_id="task-1", from_agent_id="bob", attempt=1, reason="too busy"), producer="bob"
    )
    scenario = Given().given(TaskAssigned(agent_id="alice", task_id="task-1", attempt=1, capability="python"))
    assert kind_of(scenario.when(record(encode(handed)), mode="off")) == "not_assignee"


# --- accepted --------------------------------------------------------------------


def test_a_record_signed_with_the_agents_own_enrolled_key_is_accepted():
    assert Given().given(enrolled("alice", ALICE)).when(signed(registration(), ALICE)) is None


def test_the_assignees_signed_outcome_is_accepted():
    scenario = Given().given(
        enrolled("alice", ALICE), TaskAssigned(agent_id="alice", task_id="task-1", attempt=1, capability="python")
    )
    assert scenario.when(signed(completed("alice"), ALICE)) is None


def test_with_identity_off_an_unsigned_registration_passes():
    assert Given().when(record(encode(registration())), mode="off") is None


def test_an_agent_in_another_language_signs_with_plain_ed25519_calls_by_the_documented_rule():
    # Only the rule from the README: key id = "ed25519:" + sha256(raw public key)[:24 hex];
    # message = b"orchestrator-signature-v1\0" + key id + b"\0" + value; base64url without padding.
    import hashlib

    private = Ed25519PrivateKey.generate()
    raw_public = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    key_id = "ed25519:" + hashlib.sha256(raw_public).hexdigest()[:24]
    value = encode(make_event(AgentHeartbeat(agent_id="rusty", in_flight=0), producer="rusty"))
    signature = private.sign(b"orchestrator-signature-v1\x00" + key_id.encode() + b"\x00" + value)
    headers = [
        ("orchestrator.key-id", key_id.encode()),
        ("orchestrator.signature", base64.urlsafe_b64encode(signature).rstrip(b"=")),
    ]
    enrolment = AgentKeyEnrolled(
        agent_id="rusty",
        key_id=key_id,
        enrolled_by="operator",
        public_key=base64.urlsafe_b64encode(raw_public).rstrip(b"=").decode(),
    )
    assert Given().given(enrolment).when(record(value, headers)) is None


# --- what is and is not a claim --------------------------------------------------


def test_only_events_that_speak_for_an_agent_make_a_claim():
    submitted = make_event(
        TaskSubmitted(task_id="task-1", requirements=(CapabilityRequirement(name="python"),), submitter="client"),
        producer="client",
    )
    assert claim_of(encode(submitted)) is None
    assert claim_of(b"not json") is None
    assert claim_of(b'{"event_type": "TaskCompleted", "body": {"agent_id": "line\\nbreak"}}') is None
    assert claim_of(encode(completed("bob"))).agent_id == "bob"


def test_a_violation_event_names_origin_and_kind_but_carries_no_payload():
    inbound = record(encode(completed("bob")), topic="t.task-outcomes")
    violation = Given().when(inbound, mode="off")
    event = decode(encode(make_event(violation_event(violation, inbound, "projector"), producer="projector")))
    body = event.body
    assert (body.kind, body.origin_topic, body.origin_offset) == ("not_assignee", "t.task-outcomes", 7)
    assert "result_summary" not in encode(event).decode()


# --- keys on disk and settings ---------------------------------------------------


def test_a_written_key_is_private_to_its_owner_never_overwritten_and_reads_back(tmp_path):
    path = tmp_path / "alice.pem"
    write_private_key(ALICE.private_key, path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert load_signer(path).key_id == ALICE.key_id
    with pytest.raises(FileExistsError):
        write_private_key(BOB.private_key, path)


def test_identity_mode_must_be_off_or_verify():
    with pytest.raises(ConfigError, match="IDENTITY_MODE"):
        Settings.from_env({"IDENTITY_MODE": "strict"})
    with pytest.raises(ConfigError, match="AGENT_SIGNING_KEY_FILE"):
        Settings.from_env({"AGENT_SIGNING_KEY_FILE": "/nonexistent/key.pem"})


def test_the_sdk_signs_what_it_publishes_with_its_key():
    from services.sdk.agent import Agent

    async def handle(task):
        return None

    agent = Agent(
        "alice",
        [Capability(name="python", proficiency=0.8)],
        capacity=1,
        handler=handle,
        settings=Settings.from_env({}),
        signing_key=ALICE,
    )
    outgoing = agent._outgoing(registration("alice"))
    assert Given().given(enrolled("alice", ALICE)).when(record(outgoing.value, outgoing.headers)) is None


# --- when the gate reads the security and assignments topics again ------------------


def test_a_miss_is_final_once_a_reading_began_after_the_record_was_written():
    from services.identity.gate import miss_may_resolve

    unknown = Given().given(enrolled("bob", BOB)).when(signed(registration("alice"), ALICE))
    assert miss_may_resolve(unknown, written_ms=MS0, read_from_ms=MS0 - 5)  # read before it: read again
    assert not miss_may_resolve(unknown, written_ms=MS0, read_from_ms=MS0 + 5)  # read after it: final
    forged = Given().given(enrolled("alice", ALICE), enrolled("bob", BOB)).when(signed(registration("alice"), BOB))
    assert not miss_may_resolve(forged, written_ms=MS0, read_from_ms=MS0 - 5)  # nothing to learn
    assert not miss_may_resolve(None, written_ms=MS0, read_from_ms=MS0 - 5)


def test_revocations_are_read_again_at_most_every_second_and_only_for_newer_records():
    from services.identity.gate import revocations_may_be_stale

    assert revocations_may_be_stale(written_ms=MS0 + 1500, read_from_ms=MS0, now_ms=MS0 + 1500)
    assert not revocations_may_be_stale(written_ms=MS0 + 500, read_from_ms=MS0, now_ms=MS0 + 500)
    assert not revocations_may_be_stale(written_ms=MS0 - 10, read_from_ms=MS0, now_ms=MS0 + 5000)  # a replayed one
