-- The agent's memory: profiles, load history, hand-offs, and per-agent history views.

CREATE TABLE agent_memory_profiles (
    agent_id          text PRIMARY KEY,
    store_kind        text,
    namespace         text,
    retention_days    int,
    context_tokens    int,
    share_experience  boolean,
    updated_at        timestamptz
);

CREATE TABLE agent_load_history (
    agent_id          text NOT NULL,
    window_start      timestamptz NOT NULL,
    window_end        timestamptz NOT NULL,
    heartbeats        int NOT NULL,
    avg_in_flight     double precision,
    max_in_flight     int,
    avg_queue_depth   double precision,
    avg_cpu_percent   double precision,
    max_memory_mb     double precision,
    PRIMARY KEY (agent_id, window_start)
);

CREATE TABLE task_handoffs (
    event_id       text PRIMARY KEY,
    task_id        text NOT NULL,
    attempt        int,
    from_agent_id  text NOT NULL,
    to_agent_id    text,
    subtask_id     text,
    reason         text,
    occurred_at    timestamptz NOT NULL
);
CREATE INDEX task_handoffs_from ON task_handoffs (from_agent_id);
CREATE INDEX task_handoffs_to ON task_handoffs (to_agent_id);

-- Outcomes per agent and capability.
CREATE VIEW agent_capability_outcomes AS
SELECT agent_id, capability,
       count(*)                                        AS tasks_taken,
       count(*) FILTER (WHERE success)                 AS succeeded,
       count(*) FILTER (WHERE success IS FALSE)        AS failed,
       count(*) FILTER (WHERE outcome = 'rejected')    AS rejected,
       (avg(success::int) FILTER (WHERE success IS NOT NULL))::float8 AS success_rate,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY duration_ms) AS median_duration_ms,
       max(coalesce(finished_at, started_at, assigned_at)) AS last_task_at
FROM task_assignments
WHERE agent_id IS NOT NULL
GROUP BY agent_id, capability;

-- Who an agent has worked with: hand-offs either way, and agents on the same job.
CREATE VIEW agent_collaborators AS
WITH pairs AS (
    SELECT from_agent_id AS agent_id, to_agent_id AS other_agent_id, 'handoff' AS via FROM task_handoffs
    WHERE to_agent_id IS NOT NULL
    UNION ALL
    SELECT to_agent_id, from_agent_id, 'handoff' FROM task_handoffs WHERE to_agent_id IS NOT NULL
    UNION ALL
    SELECT DISTINCT a.agent_id, b.agent_id, 'job'
    FROM task_assignments a
    JOIN tasks ta ON ta.task_id = a.task_id AND ta.job_id IS NOT NULL
    JOIN tasks tb ON tb.job_id = ta.job_id AND tb.task_id <> ta.task_id
    JOIN task_assignments b ON b.task_id = tb.task_id
    WHERE a.agent_id <> b.agent_id
)
SELECT agent_id, other_agent_id,
       count(*) FILTER (WHERE via = 'handoff') AS handoffs,
       count(*) FILTER (WHERE via = 'job')     AS shared_jobs
FROM pairs
WHERE agent_id <> other_agent_id
GROUP BY agent_id, other_agent_id;

-- The agent's memory entity: one row per agent for the router's and analysts' questions.
CREATE VIEW agent_memory AS
SELECT a.agent_id, a.display_name, a.status, a.capacity,
       coalesce(a.health, 'unknown')                                      AS health,
       greatest(a.updated_at, hb.seen_at, t.last_task_at)                 AS last_seen,
       hb.in_flight                                                        AS current_in_flight,
       hb.queue_depth                                                      AS current_queue_depth,
       coalesce(t.tasks_taken, 0)                                          AS tasks_taken,
       coalesce(t.succeeded, 0)                                            AS tasks_succeeded,
       t.success_rate,
       recent.success_rate                                                 AS recent_success_rate,
       t.median_duration_ms                                                AS typical_duration_ms,
       coalesce(per_capability.outcomes, '{}'::jsonb)                      AS outcomes_per_capability,
       coalesce(collab.collaborators, '[]'::jsonb)                         AS collaborators
FROM agents a
LEFT JOIN agent_heartbeats_latest hb USING (agent_id)
LEFT JOIN LATERAL (
    SELECT count(*) AS tasks_taken, count(*) FILTER (WHERE success) AS succeeded,
           (avg(success::int) FILTER (WHERE success IS NOT NULL))::float8 AS success_rate,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY duration_ms) AS median_duration_ms,
           max(coalesce(finished_at, started_at, assigned_at)) AS last_task_at
    FROM task_assignments ta WHERE ta.agent_id = a.agent_id
) t ON true
LEFT JOIN LATERAL (
    -- "recent" = the agent's last 20 finished attempts
    SELECT avg(success::int)::float8 AS success_rate FROM (
        SELECT success FROM task_assignments ta
        WHERE ta.agent_id = a.agent_id AND ta.success IS NOT NULL
        ORDER BY ta.finished_at DESC NULLS LAST LIMIT 20) last_ones
) recent ON true
LEFT JOIN LATERAL (
    SELECT jsonb_object_agg(capability, jsonb_build_object(
               'tasks_taken', tasks_taken, 'succeeded', succeeded, 'success_rate', success_rate,
               'median_duration_ms', median_duration_ms)) AS outcomes
    FROM agent_capability_outcomes o WHERE o.agent_id = a.agent_id AND o.capability IS NOT NULL
) per_capability ON true
LEFT JOIN LATERAL (
    SELECT jsonb_agg(jsonb_build_object('agent_id', other_agent_id, 'handoffs', handoffs,
                                        'shared_jobs', shared_jobs) ORDER BY other_agent_id) AS collaborators
    FROM agent_collaborators c WHERE c.agent_id = a.agent_id
) collab ON true;
