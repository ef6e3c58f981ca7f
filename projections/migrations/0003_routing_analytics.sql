-- Routing and balancing analytics: decisions with their outcomes, waits, utilization,
-- fairness, and a simple saturation forecast per capability.

CREATE TABLE task_queue_events (
    event_id     text PRIMARY KEY,
    task_id      text NOT NULL,
    capability   text,
    reason       text,
    position     int,
    occurred_at  timestamptz NOT NULL
);
CREATE INDEX task_queue_events_capability ON task_queue_events (capability, occurred_at);

CREATE INDEX task_assignments_assigned ON task_assignments (assigned_at);
CREATE INDEX tasks_submitted ON tasks (submitted_at);

-- Each routing decision with what came of it: the attempt that followed on the chosen agent.
CREATE VIEW decision_outcomes AS
SELECT d.event_id, d.task_id, d.decided_at, d.chosen_agent_id, d.policy, d.model_version,
       d.predicted_success, d.confidence, d.propensity, d.reason,
       a.attempt, a.assigned_at, a.outcome, a.success, a.duration_ms
FROM routing_decisions d
LEFT JOIN LATERAL (
    SELECT * FROM task_assignments a
    WHERE a.task_id = d.task_id AND a.agent_id = d.chosen_agent_id AND a.assigned_at >= d.decided_at
    ORDER BY a.attempt LIMIT 1
) a ON true;

-- How long each task waited from submission to its first assignment.
CREATE VIEW task_waits AS
SELECT t.task_id, t.submitter, t.priority, t.requirements -> 0 ->> 'name' AS capability,
       t.submitted_at, first.assigned_at,
       extract(epoch FROM first.assigned_at - t.submitted_at) * 1000.0 AS wait_ms
FROM tasks t
JOIN LATERAL (SELECT min(assigned_at) AS assigned_at FROM task_assignments a WHERE a.task_id = t.task_id) first ON true
WHERE t.submitted_at IS NOT NULL AND first.assigned_at IS NOT NULL;

-- Success and latency per capability (per agent: agent_capability_outcomes).
CREATE VIEW capability_outcomes AS
SELECT capability, count(*) AS attempts,
       (avg(success::int) FILTER (WHERE success IS NOT NULL))::float8 AS success_rate,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY duration_ms) AS p50_duration_ms,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY duration_ms) AS p95_duration_ms
FROM task_assignments WHERE outcome IS NOT NULL
GROUP BY capability;

-- Busy share of each agent's declared capacity per hour, from assignment intervals.
CREATE VIEW agent_utilization AS
SELECT a.agent_id, date_trunc('hour', a.assigned_at) AS hour, count(*) AS attempts,
       sum(extract(epoch FROM coalesce(a.finished_at, a.assigned_at) - a.assigned_at))
         / (3600.0 * max(ag.capacity)) AS utilization
FROM task_assignments a JOIN agents ag USING (agent_id)
WHERE a.assigned_at IS NOT NULL
GROUP BY a.agent_id, date_trunc('hour', a.assigned_at);

-- Jain's fairness index per hour over agents' attempts (1 = perfectly even) and over
-- submitters' mean waits.
CREATE VIEW fairness AS
WITH per_agent AS (
    SELECT date_trunc('hour', assigned_at) AS hour, agent_id, count(*)::float8 AS x
    FROM task_assignments WHERE assigned_at IS NOT NULL GROUP BY 1, 2
), per_submitter AS (
    SELECT date_trunc('hour', submitted_at) AS hour, submitter, avg(wait_ms)::float8 AS x
    FROM task_waits GROUP BY 1, 2
)
SELECT coalesce(a.hour, s.hour) AS hour, a.jain AS agent_load_jain, s.jain AS submitter_wait_jain
FROM (SELECT hour, sum(x) ^ 2 / (count(*) * sum(x ^ 2)) AS jain FROM per_agent GROUP BY hour) a
FULL JOIN (SELECT hour, sum(x) ^ 2 / nullif(count(*) * sum(x ^ 2), 0) AS jain FROM per_submitter GROUP BY hour) s
  USING (hour);

-- Per capability and minute: demand, queueing and waits, for capacity planning.
CREATE VIEW capability_load AS
WITH assigned AS (
    SELECT capability, date_trunc('minute', submitted_at) AS minute, count(*) AS assigned,
           avg(wait_ms) AS mean_wait_ms,
           percentile_cont(0.95) WITHIN GROUP (ORDER BY wait_ms) AS p95_wait_ms
    FROM task_waits GROUP BY 1, 2
), queued AS (
    SELECT capability, date_trunc('minute', occurred_at) AS minute, count(*) AS queued
    FROM task_queue_events GROUP BY 1, 2
)
SELECT capability, minute, coalesce(assigned, 0) AS assigned, coalesce(queued, 0) AS queued,
       mean_wait_ms, p95_wait_ms
FROM assigned FULL JOIN queued USING (capability, minute);

-- A linear trend of queueing over the last hour of data per capability: a positive slope
-- with many queued tasks means demand is outgrowing the capable agents.
CREATE VIEW capability_saturation_forecast AS
WITH recent AS (
    SELECT *, extract(epoch FROM minute) / 60.0 AS m FROM capability_load
    WHERE minute > (SELECT max(minute) FROM capability_load) - interval '1 hour'
)
SELECT capability, count(*) AS minutes, avg(queued) AS mean_queued_per_minute,
       coalesce(regr_slope(queued, m), 0) AS queued_trend_per_minute,
       avg(mean_wait_ms) AS mean_wait_ms,
       greatest(0, avg(queued) + coalesce(regr_slope(queued, m), 0) * 15) AS queued_per_minute_in_15_min
FROM recent GROUP BY capability;
