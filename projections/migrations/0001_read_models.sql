-- Read models of the foundation: positions, agents, tasks, decisions, assignments.
-- Every column is derived from events only (never now()), so a rebuild by replay
-- equals the live tables row for row.

CREATE TABLE projection_positions (
    topic      text   NOT NULL,
    partition  int    NOT NULL,
    "offset"   bigint NOT NULL,
    PRIMARY KEY (topic, partition)
);

CREATE TABLE agents (
    agent_id                text PRIMARY KEY,
    display_name            text,
    status                  text,           -- registered | draining | deregistered
    status_at               timestamptz,
    capacity                int,
    capacity_per_capability jsonb,
    cost_per_task           double precision,
    labels                  jsonb,
    memory_profile          jsonb,
    sdk_version             text,
    health                  text,
    health_at               timestamptz,
    registered_at           timestamptz,
    updated_at              timestamptz
);

CREATE TABLE agent_capabilities (
    agent_id     text NOT NULL,
    name         text NOT NULL,
    proficiency  double precision NOT NULL,
    version      text,
    tags         jsonb,
    updated_at   timestamptz,
    updated_by   text,
    PRIMARY KEY (agent_id, name)
);

CREATE TABLE agent_capability_history (
    event_id     text NOT NULL,
    agent_id     text NOT NULL,
    name         text NOT NULL,
    change       text NOT NULL,          -- registered | added | changed | removed
    proficiency  double precision,
    changed_by   text,
    reason       text,
    occurred_at  timestamptz NOT NULL,
    PRIMARY KEY (event_id, name)
);
CREATE INDEX agent_capability_history_agent ON agent_capability_history (agent_id, name, occurred_at);

CREATE TABLE agent_health_changes (
    event_id          text PRIMARY KEY,
    agent_id          text NOT NULL,
    previous          text,
    current           text NOT NULL,
    reason            text,
    missed_heartbeats int,
    occurred_at       timestamptz NOT NULL
);
CREATE INDEX agent_health_changes_agent ON agent_health_changes (agent_id, occurred_at);

CREATE TABLE agent_heartbeats_latest (
    agent_id      text PRIMARY KEY,
    in_flight     int,
    queue_depth   int,
    cpu_percent   double precision,
    memory_mb     double precision,
    agent_version text,
    seen_at       timestamptz
);

CREATE TABLE tasks (
    task_id            text PRIMARY KEY,
    status             text,
    status_terminal    boolean,
    status_at          timestamptz,
    status_stage       int,
    attempt            int,
    requirements       jsonb,
    priority           int,
    submitter          text,
    job_id             text,
    parent_task_id     text,
    deadline           timestamptz,
    payload            jsonb,
    features           jsonb,
    assigned_agent_id  text,
    reason             text,
    result_summary     text,
    error              text,
    submitted_at       timestamptz,
    routed_at          timestamptz,
    finished_at        timestamptz,
    updated_at         timestamptz
);
CREATE INDEX tasks_status ON tasks (status);
CREATE INDEX tasks_agent ON tasks (assigned_agent_id);
CREATE INDEX tasks_job ON tasks (job_id) WHERE job_id IS NOT NULL;

CREATE TABLE routing_decisions (
    event_id           text PRIMARY KEY,
    task_id            text NOT NULL,
    chosen_agent_id    text,
    candidates         jsonb NOT NULL,
    predicted_success  double precision,
    confidence         double precision,
    propensity         double precision,
    model_version      text,
    policy             text,
    reason             text,
    risk_factors       jsonb,
    decided_at         timestamptz NOT NULL
);
CREATE INDEX routing_decisions_task ON routing_decisions (task_id, decided_at);
CREATE INDEX routing_decisions_agent ON routing_decisions (chosen_agent_id, decided_at);

CREATE TABLE task_assignments (
    task_id        text NOT NULL,
    attempt        int  NOT NULL,
    agent_id       text,
    capability     text,
    assigned_at    timestamptz,
    started_at     timestamptz,
    finished_at    timestamptz,
    outcome        text,            -- completed | failed | rejected | timed_out | handed_off
    success        boolean,
    duration_ms    double precision,
    PRIMARY KEY (task_id, attempt)
);
CREATE INDEX task_assignments_agent ON task_assignments (agent_id, assigned_at);
