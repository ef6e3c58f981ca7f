-- Erasures of data subjects (crypto-shredding), from SubjectErased on the privacy topic.
-- One row per destroyed key; the subject itself is never named anywhere in the read models.
CREATE TABLE erasures (
    key_id      text PRIMARY KEY,
    erasure_id  text NOT NULL,
    erased_at   timestamptz NOT NULL,
    erased_by   text NOT NULL,
    reason      text NOT NULL,
    event_id    text NOT NULL,
    recorded_at timestamptz NOT NULL
);
CREATE INDEX erasures_by_request ON erasures (erasure_id);
