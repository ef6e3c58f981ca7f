-- Indexes behind the analyst queries of the README and the dashboard
-- (tests/integration/test_query_plans.py checks their plans).

-- A capability's history across agents: "who changed python, when".
CREATE INDEX agent_capability_history_name ON agent_capability_history (name, occurred_at);
