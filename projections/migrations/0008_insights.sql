-- What analysts read off the learner's output: where each skill is heading, which task
-- features and agent practices the success model ties to success or failure, and what to
-- do about it. Views only: they are derived from the learning read models, so a replay
-- rebuilds them with those.

-- Each agent's recent course on each capability: the slope of its estimated proficiency
-- over its last 10 estimates, per attempt, and where that slope leads in 20 more attempts
-- (clamped to [0, 1]). A short-term forecast, not a promise: ADWIN's `skill_shifts` say
-- whether a change is significant.
CREATE VIEW skill_trends AS
WITH recent AS (
    SELECT agent_id, capability, proficiency, confidence, attempts, estimated_at,
           row_number() OVER (PARTITION BY agent_id, capability ORDER BY estimated_at DESC, event_id DESC) AS age
    FROM skill_trajectory
)
SELECT agent_id, capability,
       (array_agg(proficiency ORDER BY age))[1] AS proficiency,
       (array_agg(confidence ORDER BY age))[1] AS confidence,
       max(attempts) AS attempts,
       count(*) AS estimates,
       coalesce(regr_slope(proficiency, attempts), 0) AS slope_per_attempt,
       least(1.0, greatest(0.0, (array_agg(proficiency ORDER BY age))[1]
                               + 20 * coalesce(regr_slope(proficiency, attempts), 0))) AS forecast_in_20_attempts,
       max(estimated_at) AS estimated_at
FROM recent
WHERE age <= 10
GROUP BY agent_id, capability;

-- The latest published success model's weights on task features, per capability: a
-- negative weight means that, other things equal, larger values of the feature go with
-- failure. Features are standardized per capability, so weights compare within a model.
CREATE VIEW insights_task_features AS
WITH latest AS (
    SELECT DISTINCT ON (model_id) model_id, model_version, parameters
    FROM model_versions ORDER BY model_id, published_at DESC, model_version DESC
)
SELECT latest.model_id, latest.model_version,
       split_part(w.key, ':', 1) AS capability, substr(w.key, length(split_part(w.key, ':', 1)) + 2) AS feature,
       (w.value)::float8 AS weight,
       CASE WHEN (w.value)::float8 < 0 THEN 'failure' ELSE 'success' END AS goes_with
FROM latest, jsonb_each(latest.parameters -> 'weights') AS w
WHERE w.key LIKE '%:%' AND split_part(w.key, ':', 1) NOT IN ('capability', 'agent', 'label');

-- Practices (agent labels: team, tooling, prompt style, ...) the latest success model ties to
-- success (positive weight) or failure, on top of each agent's own record.
CREATE VIEW insights_practices AS
WITH latest AS (
    SELECT DISTINCT ON (model_id) model_id, model_version, parameters
    FROM model_versions ORDER BY model_id, published_at DESC, model_version DESC
)
SELECT latest.model_id, latest.model_version,
       split_part(substr(w.key, 7), '=', 1) AS label, substr(w.key, length(split_part(w.key, '=', 1)) + 2) AS value,
       (w.value)::float8 AS weight,
       CASE WHEN (w.value)::float8 < 0 THEN 'failure' ELSE 'success' END AS goes_with
FROM latest, jsonb_each(latest.parameters -> 'weights') AS w
WHERE w.key LIKE 'label:%=%';

-- What to do, from the learner's findings:
--   route_more   an agent whose latest significant change on a capability was an improvement
--   investigate  an agent whose latest significant change on a capability was a degradation
--   recruit      a capability with fewer than two competent agents (estimated proficiency at
--                least 0.6 on at least 10 attempts of their own)
CREATE VIEW recommendations AS
WITH latest_shift AS (
    SELECT DISTINCT ON (agent_id, capability) agent_id, capability, direction, before, after, detected_at
    FROM skill_shifts ORDER BY agent_id, capability, detected_at DESC, event_id DESC
), competent AS (
    SELECT capability, count(*) FILTER (WHERE proficiency >= 0.6 AND attempts >= 10) AS agents
    FROM skill_estimates GROUP BY capability
)
SELECT CASE direction WHEN 'improved' THEN 'route_more' ELSE 'investigate' END AS action,
       capability, agent_id,
       format('%s on %s: %s from %s to %s', agent_id, capability, direction,
              round(before::numeric, 2), round(after::numeric, 2)) AS reason,
       detected_at AS since
FROM latest_shift
UNION ALL
SELECT 'recruit', capability, NULL,
       format('%s competent agent(s) on %s (proficiency >= 0.6 on 10 or more attempts)', agents, capability),
       NULL
FROM competent WHERE agents < 2;
