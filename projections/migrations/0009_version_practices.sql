-- Capability versions are practices too: the success model now has a term for each version an
-- agent declares of a capability (`version:<capability>=<version>`), shared by every agent on
-- that version, so whether an upgrade goes with success is learned across the fleet.

-- Task features: the same as before, without the version terms.
CREATE OR REPLACE VIEW insights_task_features AS
WITH latest AS (
    SELECT DISTINCT ON (model_id) model_id, model_version, parameters
    FROM model_versions ORDER BY model_id, published_at DESC, model_version DESC
)
SELECT latest.model_id, latest.model_version,
       split_part(w.key, ':', 1) AS capability, substr(w.key, length(split_part(w.key, ':', 1)) + 2) AS feature,
       (w.value)::float8 AS weight,
       CASE WHEN (w.value)::float8 < 0 THEN 'failure' ELSE 'success' END AS goes_with
FROM latest, jsonb_each(latest.parameters -> 'weights') AS w
WHERE w.key LIKE '%:%' AND split_part(w.key, ':', 1) NOT IN ('capability', 'agent', 'label', 'version');

-- Practices: agent labels (`practice` = 'label': `label` is the label's key, `value` its value)
-- and capability versions (`practice` = 'capability_version': `label` is the capability,
-- `value` the version). The new column comes last, so earlier queries read the same columns.
CREATE OR REPLACE VIEW insights_practices AS
WITH latest AS (
    SELECT DISTINCT ON (model_id) model_id, model_version, parameters
    FROM model_versions ORDER BY model_id, published_at DESC, model_version DESC
)
SELECT latest.model_id, latest.model_version,
       split_part(substr(w.key, strpos(w.key, ':') + 1), '=', 1) AS label,
       substr(w.key, strpos(w.key, '=') + 1) AS value,
       (w.value)::float8 AS weight,
       CASE WHEN (w.value)::float8 < 0 THEN 'failure' ELSE 'success' END AS goes_with,
       CASE WHEN w.key LIKE 'label:%' THEN 'label' ELSE 'capability_version' END AS practice
FROM latest, jsonb_each(latest.parameters -> 'weights') AS w
WHERE w.key LIKE 'label:%=%' OR w.key LIKE 'version:%=%';
