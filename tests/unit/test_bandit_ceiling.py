"""The yardstick for routing on a logged outcome matrix: hindsight figures, and policies that learn from their picks."""

from __future__ import annotations

import numpy as np
import pytest

from bench.evaluation.bandit_ceiling import (
    FAMILY_WEIGHT,
    POLICIES,
    family_weights,
    hindsight,
    kl_bernoulli,
    kl_upper,
    picks,
    prior_strength,
    route,
)


def test_hindsight_takes_the_best_agent_of_each_group():
    groups = np.array([0, 0, 1, 1])
    outcomes = np.array([[1, 0], [1, 0], [0, 1], [0, 0]])
    assert hindsight(groups, outcomes) == pytest.approx(3 / 4)  # agent 0 on group 0, agent 1 on group 1
    assert hindsight(np.zeros(4, dtype=int), outcomes) == pytest.approx(2 / 4)  # one agent for all


@pytest.mark.parametrize("policy", POLICIES, ids=[p.name for p in POLICIES])
def test_each_policy_finds_the_agent_that_succeeds_on_each_capability(policy):
    # given agent 2 succeeds 90% of the time on capability 0, agent 0 on capability 1, the others 30%
    rng = np.random.default_rng(3)
    capability = rng.integers(0, 2, size=2000)
    good = np.where(capability == 0, 2, 0)
    chance = np.full((2000, 3), 0.3)
    chance[np.arange(2000), good] = 0.9
    outcomes = (rng.random((2000, 3)) < chance).astype(np.int64)

    # when the policy routes every task, learning only from its picks
    rate = route(policy, capability, outcomes, np.arange(2000), np.random.default_rng(1), np.zeros((2, 2)))

    # then it beats any one agent for all
    assert rate > 0.85 > hindsight(np.zeros(2000, dtype=int), outcomes)


def test_the_kl_upper_bound_is_where_the_divergence_reaches_the_level():
    q = kl_upper(0.4, 100, 2.0)
    assert q > 0.4
    assert 100 * kl_bernoulli(0.4, q) == pytest.approx(2.0, rel=1e-3)
    assert kl_upper(0.4, 10_000, 2.0) < q  # more evidence, a tighter bound


def test_close_agents_make_a_strong_prior_and_distant_ones_a_weak_one():
    tries = np.full(4, 400.0)
    close = prior_strength(np.array([200.0, 204.0, 196.0, 202.0]), tries, 0.5)
    distant = prior_strength(np.array([80.0, 320.0, 160.0, 240.0]), tries, 0.5)
    assert close > 50 > 5 > distant


def test_related_capabilities_are_the_members_of_one_family():
    weights = family_weights(["ceval", "cmmlu", "mmlu", "gsm8k", "math_prealgebra"])
    assert weights[0, 1] == weights[1, 0] == weights[3, 4] == FAMILY_WEIGHT
    assert weights[0, 2] == weights[2, 1] == weights[0, 0] == weights[1, 3] == 0.0


def test_told_the_related_capabilities_a_policy_starts_a_new_one_with_the_agent_best_at_its_relative():
    # given agent 1 is the best at two related capabilities (70% against 40%),
    # and the first 3,000 tasks are all of capability 0
    rng = np.random.default_rng(5)
    capability = np.array([0] * 3000 + [1] * 300)
    chance = np.full((3300, 3), 0.4)
    chance[:, 1] = 0.7
    outcomes = (rng.random((3300, 3)) < chance).astype(np.int64)
    related = np.array([[0.0, FAMILY_WEIGHT], [FAMILY_WEIGHT, 0.0]])
    told, untold = (next(p for p in POLICIES if p.families), next(p for p in POLICIES if p.name == "thompson x4"))

    # when each routes the tasks of capability 1 after those of capability 0
    def share_to_the_best_on_the_new_capability(policy) -> float:
        return float(
            np.mean(
                [
                    (
                        picks(policy, capability, outcomes, np.arange(3300), np.random.default_rng(s), related)[3000:]
                        == 1
                    ).mean()
                    for s in range(5)
                ]
            )
        )

    # then the told one wastes fewer of the new capability's tasks on the others
    assert share_to_the_best_on_the_new_capability(told) > share_to_the_best_on_the_new_capability(untold) + 0.1


def test_the_hierarchical_sampler_tries_an_agent_strong_elsewhere_first_on_a_new_capability():
    from bench.evaluation.bandit_ceiling import hierarchical_pick

    # agent 1 succeeded 90 of 100 times on capabilities 0 and 1, the others 30 of 100; nobody tried capability 2
    tries = np.array([[100.0] * 3, [100.0] * 3, [0.0] * 3])
    wins = np.array([[30.0, 90.0, 30.0], [30.0, 90.0, 30.0], [0.0] * 3])
    rng = np.random.default_rng(0)

    picked = [hierarchical_pick(wins, tries, 2, rng) for _ in range(200)]

    assert picked.count(1) > 180
