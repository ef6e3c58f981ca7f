-- What other routing policies would have achieved on the logged decisions (`orchestrator whatif`):
-- one row per run and policy. Written by the command, not replayed from events: a rebuild starts it
-- empty, and running the command again refills it.
CREATE TABLE whatif_runs (
    run_id uuid NOT NULL,
    policy text NOT NULL,
    ran_at timestamptz NOT NULL,
    since timestamptz,
    until timestamptz,
    decisions integer NOT NULL,
    logged_success float8,
    ips float8, ips_low float8, ips_high float8,
    snips float8, snips_low float8, snips_high float8,
    dr float8, dr_low float8, dr_high float8,
    effective_sample_size float8 NOT NULL,
    unsupported float8 NOT NULL,
    skipped jsonb NOT NULL DEFAULT '{}',
    PRIMARY KEY (run_id, policy)
);
CREATE INDEX whatif_runs_ran_at ON whatif_runs (ran_at DESC);

-- The probability with which the balancer gave each attempt to its agent (TaskAssigned v2; null before).
ALTER TABLE task_assignments ADD COLUMN propensity double precision;
