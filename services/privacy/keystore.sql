-- The key store: one AES-256 key per data subject, outside the event log.
--
-- Lives in its own schema (KEYSTORE_SCHEMA, `keystore` by default), reached with its own
-- URL (KEYSTORE_DATABASE_URL) so that it can have its own role: analysts and processors
-- never need it; only clients sealing fields, agents opening them and `privacy erase` do.
-- Run with search_path set to that schema (services/privacy/keystore.py does so); every
-- statement is idempotent.

-- A subject appears only as a keyed digest (HMAC-SHA-256 under KEYSTORE_SUBJECT_DIGEST_KEY),
-- and events name only key_id, a random pseudonym. Erasing a subject deletes its row and
-- rewrites the table (VACUUM FULL) so the key bytes survive in no live or dead tuple.
CREATE TABLE IF NOT EXISTS subject_keys (
    key_id         text PRIMARY KEY,
    subject_digest bytea NOT NULL UNIQUE,
    key            bytea NOT NULL CHECK (octet_length(key) = 32),
    created_at     timestamptz NOT NULL DEFAULT now()
);

-- What was erased, without the subject: lets an open fail with "erased" rather than
-- "unknown", and lets an erasure whose announcement did not reach Kafka be announced later.
CREATE TABLE IF NOT EXISTS erased_keys (
    key_id       text PRIMARY KEY,
    erasure_id   text NOT NULL,
    erased_at    timestamptz NOT NULL,
    erased_by    text NOT NULL,
    reason       text NOT NULL,
    announced_at timestamptz  -- when SubjectErased was published; NULL: still to publish
);
