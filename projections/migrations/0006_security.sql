-- Agent identity for compliance: keys enrolled and revoked, and every record rejected as not
-- coming from the agent it speaks for (where it sat, never what it said).
-- kind: key_enrolled, key_revoked, or a violation kind (unsigned, bad_signature, unknown_key,
-- revoked_key, other_agents_key, not_assignee).

CREATE TABLE security_events (
    event_id          text PRIMARY KEY,
    occurred_at       timestamptz NOT NULL,
    kind              text NOT NULL,
    agent_id          text NOT NULL,
    key_id            text,
    detail            jsonb NOT NULL DEFAULT '{}',
    origin_topic      text,
    origin_partition  int,
    origin_offset     bigint
);
CREATE INDEX security_events_kind ON security_events (kind, occurred_at);
CREATE INDEX security_events_agent ON security_events (agent_id, occurred_at);
