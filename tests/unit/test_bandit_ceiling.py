"""The yardstick for routing on a logged outcome matrix: hindsight figures, and policies that learn from their picks."""
from __future__ import annotations

import numpy as np
import pytest

from bench.bandit_ceiling import hindsight, route


def test_hindsight_takes_the_best_agent_of_each_group():
    groups = np.array([0, 0, 1, 1])
    outcomes = np.array([[1, 0], [1, 0], [0, 1], [0, 0]])
    assert hindsight(groups, outcomes) == pytest.approx(3 / 4)  # agent 0 on group 0, agent 1 on group 1
    assert hindsight(np.zeros(4, dtype=int), outcomes) == pytest.approx(2 / 4)  # one agent for all


@pytest.mark.parametrize("policy,sharpen", [("thompson", 1.0), ("thompson", 4.0), ("ucb1", 1.0), ("greedy", 1.0)])
def test_each_policy_finds_the_agent_that_succeeds_on_each_capability(policy, sharpen):
    rng = np.random.default_rng(3)
    capability = rng.integers(0, 2, size=2000)
    # agent 2 succeeds 90% of the time on capability 0, agent 0 on capability 1; the others 30%
    good = np.where(capability == 0, 2, 0)
    chance = np.full((2000, 3), 0.3)
    chance[np.arange(2000), good] = 0.9
    outcomes = (rng.random((2000, 3)) < chance).astype(np.int64)

    rate = route(policy, sharpen, capability, outcomes, np.arange(2000), np.random.default_rng(1))

    assert rate > 0.85 > hindsight(np.zeros(2000, dtype=int), outcomes)  # beats any one agent for all
