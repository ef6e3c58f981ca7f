"""Agent identity: keys an operator enrolled or revoked, and records rejected as not coming
from the agent they speak for.

A violation names where the rejected record sits and what was wrong with it, never its
payload: the record itself waits, unchanged, in the dead-letter topic.
"""

from typing import Annotated, Literal

from pydantic import Field

from events.envelope import EventBody
from events.values import Identifier, Text, UtcDatetime

# Why a record was not accepted as coming from the agent it speaks for.
ViolationKind = Literal["unsigned", "bad_signature", "unknown_key", "revoked_key", "other_agents_key", "not_assignee"]
PublicKey = Annotated[
    str,
    Field(pattern=r"^[A-Za-z0-9_-]{43}$", description="The raw 32-byte Ed25519 public key, base64url without padding."),
]


class AgentKeyEnrolled(EventBody):
    """An operator gave an agent a signing key: records signed with it speak for that agent."""

    event_type = "AgentKeyEnrolled"
    key_field = "agent_id"

    agent_id: Identifier
    key_id: Identifier
    public_key: PublicKey
    algorithm: Literal["ed25519"] = "ed25519"
    enrolled_by: Annotated[str, Field(min_length=1, max_length=256)]


class AgentKeyRevoked(EventBody):
    """An agent's key stops counting: records signed with it from `revoked_at` on are rejected."""

    event_type = "AgentKeyRevoked"
    key_field = "agent_id"

    agent_id: Identifier
    key_id: Identifier
    revoked_at: UtcDatetime
    revoked_by: Annotated[str, Field(min_length=1, max_length=256)]
    reason: Text = ""


class SecurityViolationDetected(EventBody):
    """A record that spoke for an agent was rejected to the dead-letter topic."""

    event_type = "SecurityViolationDetected"
    key_field = "agent_id"

    agent_id: Annotated[Identifier, Field(description="The agent the record claimed to speak for.")]
    kind: ViolationKind
    reason: Text
    key_id: str | None = Field(default=None, max_length=128, description="The key id the record named, if any.")
    event_type_claimed: str | None = Field(default=None, max_length=128)
    origin_topic: Annotated[str, Field(min_length=1, max_length=256)]
    origin_partition: Annotated[int, Field(ge=0)]
    origin_offset: Annotated[int, Field(ge=0)]
    processor: Annotated[str, Field(min_length=1, max_length=64)]


SECURITY_EVENTS: tuple[type[EventBody], ...] = (AgentKeyEnrolled, AgentKeyRevoked, SecurityViolationDetected)
