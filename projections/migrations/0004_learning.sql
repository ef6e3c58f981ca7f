-- What the learner believes: skills per agent and capability over time, changes in them,
-- published models with their prequential metrics, and how pairs of agents work together.

CREATE TABLE skill_estimates (
    agent_id       text NOT NULL,
    capability     text NOT NULL,
    proficiency    float8 NOT NULL,
    confidence     float8 NOT NULL,
    successes      int NOT NULL,
    attempts       int NOT NULL,
    model_version  text,
    estimated_at   timestamptz NOT NULL,
    PRIMARY KEY (agent_id, capability)
);
CREATE INDEX skill_estimates_capability ON skill_estimates (capability, proficiency DESC);

CREATE TABLE skill_trajectory (
    event_id       text PRIMARY KEY,
    agent_id       text NOT NULL,
    capability     text NOT NULL,
    proficiency    float8 NOT NULL,
    confidence     float8 NOT NULL,
    successes      int NOT NULL,
    attempts       int NOT NULL,
    model_version  text,
    estimated_at   timestamptz NOT NULL
);
CREATE INDEX skill_trajectory_series ON skill_trajectory (agent_id, capability, estimated_at);

CREATE TABLE skill_shifts (
    event_id       text PRIMARY KEY,
    agent_id       text NOT NULL,
    capability     text NOT NULL,
    direction      text NOT NULL,
    before         float8 NOT NULL,
    after          float8 NOT NULL,
    attempts       int NOT NULL,
    model_version  text,
    detected_at    timestamptz NOT NULL
);
CREATE INDEX skill_shifts_agent ON skill_shifts (agent_id, capability, detected_at);

CREATE TABLE model_versions (
    model_id           text NOT NULL,
    model_version      text NOT NULL,
    kind               text NOT NULL,
    trained_on_events  bigint NOT NULL,
    metrics            jsonb NOT NULL,
    parameters         jsonb NOT NULL,
    published_at       timestamptz NOT NULL,
    PRIMARY KEY (model_id, model_version)
);
CREATE INDEX model_versions_published ON model_versions (model_id, published_at);

CREATE TABLE agent_relationships (
    agent_id            text NOT NULL,
    other_agent_id      text NOT NULL,
    joint_tasks         int NOT NULL,
    joint_success_rate  float8 NOT NULL,
    lift                float8 NOT NULL,
    confidence          float8 NOT NULL,
    model_version       text,
    scored_at           timestamptz NOT NULL,
    PRIMARY KEY (agent_id, other_agent_id)
);

-- The agents to send each capability to, best current estimate first. Confidence says how
-- much of that estimate is the agent's own record rather than its prior.
CREATE VIEW insights_best_agents AS
SELECT capability, rank() OVER (PARTITION BY capability ORDER BY proficiency DESC, confidence DESC) AS rank,
       agent_id, proficiency, confidence, successes, attempts, model_version, estimated_at
FROM skill_estimates;
