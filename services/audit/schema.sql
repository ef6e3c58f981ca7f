-- The audit log: every Kafka record of every catalog topic, one row each, hash-chained
-- (services/audit/chain.py). Applied by `orchestrator serve audit` and `orchestrator db roles`
-- into the audit schema (AUDIT_DB_SCHEMA), never into a read-model schema: replay rebuilds
-- and swaps read models, and must never drop or rebuild the audit trail.
CREATE TABLE IF NOT EXISTS audit_log (
    seq                 bigint  PRIMARY KEY,
    topic               text    NOT NULL,
    partition           integer NOT NULL,
    "offset"            bigint  NOT NULL,
    kafka_timestamp_ms  bigint  NOT NULL,
    key                 bytea,
    value               bytea,
    headers             bytea   NOT NULL,   -- length-prefixed name/value pairs, as hashed
    prev_hash           bytea   NOT NULL,
    hash                bytea   NOT NULL,
    -- exactly once: a Kafka record has one row, whatever redelivers it
    UNIQUE (topic, partition, "offset")
);
