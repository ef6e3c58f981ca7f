"""Agent identity: records that speak for an agent are signed by that agent's enrolled key,
and an outcome counts only from the agent its attempt was assigned to."""
