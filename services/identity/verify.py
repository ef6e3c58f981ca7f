"""Whether a record really comes from the agent it speaks for. Pure: state in, verdict out.

Two checks, in this order:
- the signature (IDENTITY_MODE=verify): signed, by a key enrolled for that very agent, not
  revoked when the record was written, over these exact bytes;
- the assignee (always): an outcome counts only from the agent its attempt was assigned to.

The orchestrator's decisions on the tasks topic speak for it as an agent's records speak for
the agent: in verify mode they must be signed with a key enrolled for `ORCHESTRATOR`, which only
the router and the balancer hold. Whoever may submit tasks may write that topic, and would
otherwise be able to route, queue, reassign or time out any task.

Claims are read from the raw JSON, before the event is validated: a record that does not
parse has no claim, and the decoder's own error parks it as any other bad input.
"""

from __future__ import annotations

import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from events.envelope import EventBody
from events.security import AgentKeyEnrolled, AgentKeyRevoked, SecurityViolationDetected
from events.tasks import TaskAssigned
from events.values import ID_PATTERN
from services.identity.signing import KEY_ID_HEADER, SIGNATURE_HEADER, signed_message, unb64

# Event type -> the body field naming the agent it speaks for.
SPEAKER_FIELD = {
    "AgentRegistered": "agent_id",
    "AgentDeregistered": "agent_id",
    "AgentCapabilitiesChanged": "agent_id",
    "AgentMemoryProfileUpdated": "agent_id",
    "AgentHeartbeat": "agent_id",
    "TaskStarted": "agent_id",
    "TaskCompleted": "agent_id",
    "TaskFailed": "agent_id",
    "TaskRejected": "agent_id",
    "TaskHandedOff": "from_agent_id",
}
# Decisions (event types) the orchestrator alone makes, and the identity they speak for: an
# enrolment for this id is an operator's grant of the right to decide, never an agent's key.
ORCHESTRATOR = "orchestrator"
DECISIONS = frozenset({"TaskRouted", "TaskQueued", "TaskReassigned", "TaskTimedOut"})
OUTCOMES = frozenset({"TaskStarted", "TaskCompleted", "TaskFailed", "TaskRejected", "TaskHandedOff"})
MODES = ("off", "verify")


@dataclass(frozen=True)
class Inbound:
    """What the checks need of a consumed record, whichever client consumed it."""

    topic: str
    partition: int
    offset: int
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]
    timestamp_ms: int

    @classmethod
    def of(cls, record) -> "Inbound":
        """From an aiokafka record (timestamp in ms) or a Faust message (in seconds)."""
        headers = record.headers or ()
        pairs = headers.items() if isinstance(headers, Mapping) else headers
        stamp = record.timestamp
        timestamp_ms = round(stamp * 1000) if isinstance(stamp, float) else int(stamp or 0)
        return cls(record.topic, record.partition, record.offset, record.value, tuple(pairs), timestamp_ms)

    def header(self, name: str) -> bytes | None:
        return next((value for key, value in self.headers if key == name), None)


@dataclass(frozen=True)
class Claim:
    event_type: str
    agent_id: str
    task_id: str | None = None
    attempt: int | None = None

    @property
    def is_outcome(self) -> bool:
        return self.event_type in OUTCOMES


def claim_of(value: bytes | None) -> Claim | None:
    """The agent a record speaks for, if it is one of the events that do and names one."""
    try:
        data = orjson.loads(value) if value else None
    except orjson.JSONDecodeError:
        return None
    if not isinstance(data, dict) or not isinstance(body := data.get("body"), dict):
        return None
    if data.get("event_type") in DECISIONS:
        return Claim(data["event_type"], ORCHESTRATOR)
    speaker = SPEAKER_FIELD.get(data.get("event_type"))
    agent_id = body.get(speaker) if speaker else None
    if not isinstance(agent_id, str) or not re.fullmatch(ID_PATTERN, agent_id):
        return None
    attempt = body.get("attempt")
    return Claim(
        data["event_type"],
        agent_id,
        body.get("task_id") if isinstance(body.get("task_id"), str) else None,
        attempt if type(attempt) is int else None,
    )


@dataclass(frozen=True)
class EnrolledKey:
    agent_id: str
    public_key: bytes
    revoked_at_ms: int | None = None


@dataclass
class KeyRegistry:
    """Keys by key id, folded from the `security` topic."""

    keys: dict[str, EnrolledKey] = field(default_factory=dict)

    def apply(self, body: EventBody) -> None:
        if isinstance(body, AgentKeyEnrolled):
            # A key id is a hash of its key, so enrolling it again (for the same agent) changes nothing.
            self.keys.setdefault(body.key_id, EnrolledKey(body.agent_id, unb64(body.public_key)))
        elif isinstance(body, AgentKeyRevoked) and (key := self.keys.get(body.key_id)):
            revoked_at_ms = int(body.revoked_at.timestamp() * 1000)
            if key.revoked_at_ms is None or revoked_at_ms < key.revoked_at_ms:
                self.keys[body.key_id] = EnrolledKey(key.agent_id, key.public_key, revoked_at_ms)


@dataclass
class Assignments:
    """Who each attempt of each task was assigned to, folded from the `assignments` topic."""

    agents: dict[tuple[str, int], str] = field(default_factory=dict)

    def apply(self, body: EventBody) -> None:
        if isinstance(body, TaskAssigned):
            self.agents[(body.task_id, body.attempt)] = body.agent_id


# The events the two folds above change on: the gate passes over the rest unread.
FOLDED_TYPES = frozenset(cls.event_type for cls in (AgentKeyEnrolled, AgentKeyRevoked, TaskAssigned))


@dataclass(frozen=True)
class Violation:
    kind: str  # one of events.security.ViolationKind
    reason: str
    claim: Claim
    key_id: str | None = None


@lru_cache(maxsize=4096)
def loaded_key(public_key: bytes) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(public_key)


def verify_signature(record: Inbound, claim: Claim, keys: KeyRegistry) -> Violation | None:
    key_id_raw, signature_raw = record.header(KEY_ID_HEADER), record.header(SIGNATURE_HEADER)
    if key_id_raw is None or signature_raw is None:
        missing = KEY_ID_HEADER if key_id_raw is None else SIGNATURE_HEADER
        return Violation("unsigned", f"{claim.event_type} for {claim.agent_id} has no {missing} header", claim)
    key_id = key_id_raw.decode(errors="replace")[:128]
    key = keys.keys.get(key_id)
    if key is None:
        return Violation("unknown_key", f"key {key_id} was never enrolled", claim, key_id)
    try:
        loaded_key(key.public_key).verify(unb64(signature_raw), signed_message(key_id, record.value or b""))
    except (InvalidSignature, ValueError, binascii.Error):
        return Violation("bad_signature", f"the signature does not match the record and key {key_id}", claim, key_id)
    if key.agent_id != claim.agent_id:
        return Violation(
            "other_agents_key",
            f"{claim.event_type} speaks for {claim.agent_id} but is signed with {key.agent_id}'s key {key_id}",
            claim,
            key_id,
        )
    if key.revoked_at_ms is not None and record.timestamp_ms >= key.revoked_at_ms:
        return Violation(
            "revoked_key", f"key {key_id} of {key.agent_id} was revoked before this record was written", claim, key_id
        )
    return None


def check_assignee(claim: Claim, assignments: Assignments) -> Violation | None:
    if not claim.is_outcome or claim.task_id is None or claim.attempt is None:
        return None
    assignee = assignments.agents.get((claim.task_id, claim.attempt))
    if assignee == claim.agent_id:
        return None
    held = f"is assigned to {assignee}" if assignee else "was never assigned"
    return Violation(
        "not_assignee",
        f"{claim.event_type} from {claim.agent_id}, but {claim.task_id} attempt {claim.attempt} {held}",
        claim,
    )


def verify(
    record: Inbound, claim: Claim, keys: KeyRegistry, assignments: Assignments, *, mode: str
) -> Violation | None:
    """The first reason `record` does not come from the agent it speaks for, or None."""
    if mode == "verify" and (violation := verify_signature(record, claim, keys)):
        return violation
    return check_assignee(claim, assignments)


def violation_event(violation: Violation, record: Inbound, processor: str) -> SecurityViolationDetected:
    return SecurityViolationDetected(
        agent_id=violation.claim.agent_id,
        kind=violation.kind,
        reason=violation.reason,
        key_id=violation.key_id,
        event_type_claimed=violation.claim.event_type,
        origin_topic=record.topic,
        origin_partition=record.partition,
        origin_offset=record.offset,
        processor=processor,
    )
