-- Feature names of the success model are unambiguous from this version on
-- (services/learner/features.py): task features carry the prefix `task:`, so a capability
-- named like a prefix ("agent", "label") cannot pose as another kind, and inside a name
-- ':', '=' and '%' are written %3A, %3D and %25. The insights read the names back here.

CREATE OR REPLACE FUNCTION feature_name_part(part text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT AS $$
    SELECT replace(replace(replace(part, '%3A', ':'), '%3D', '='), '%25', '%')
$$;

-- task:<capability>:<feature>
CREATE OR REPLACE VIEW insights_task_features AS
WITH latest AS (
    SELECT DISTINCT ON (model_id) model_id, model_version, parameters
    FROM model_versions ORDER BY model_id, published_at DESC, model_version DESC
)
SELECT latest.model_id, latest.model_version,
       feature_name_part(split_part(w.key, ':', 2)) AS capability,
       feature_name_part(split_part(w.key, ':', 3)) AS feature,
       (w.value)::float8 AS weight,
       CASE WHEN (w.value)::float8 < 0 THEN 'failure' ELSE 'success' END AS goes_with
FROM latest, jsonb_each(latest.parameters -> 'weights') AS w
WHERE w.key LIKE 'task:%:%';

-- label:<key>=<value> and version:<capability>=<version>
CREATE OR REPLACE VIEW insights_practices AS
WITH latest AS (
    SELECT DISTINCT ON (model_id) model_id, model_version, parameters
    FROM model_versions ORDER BY model_id, published_at DESC, model_version DESC
)
SELECT latest.model_id, latest.model_version,
       feature_name_part(split_part(split_part(w.key, ':', 2), '=', 1)) AS label,
       feature_name_part(split_part(split_part(w.key, ':', 2), '=', 2)) AS value,
       (w.value)::float8 AS weight,
       CASE WHEN (w.value)::float8 < 0 THEN 'failure' ELSE 'success' END AS goes_with,
       CASE WHEN w.key LIKE 'label:%' THEN 'label' ELSE 'capability_version' END AS practice
FROM latest, jsonb_each(latest.parameters -> 'weights') AS w
WHERE w.key LIKE 'label:%=%' OR w.key LIKE 'version:%=%';
