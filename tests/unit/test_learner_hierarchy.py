"""Partial pooling across capabilities: an agent's level, learned spreads, a prior that fades with evidence."""

import pytest

from services.learner.cohort import AgentProfile, Cohorts
from services.learner.hierarchy import Hierarchy, between_spread, learn_hierarchy, refresh_due
from services.learner.logic import LearnerState, Outcome, learn, posterior, register
from services.success_model.beta import Counts

CAPABILITIES = ("a", "b", "c", "d")


def records_of(rates: dict[str, float], attempts: int = 200) -> dict[tuple[str, str], Counts]:
    """Each agent at its rate on every capability."""
    return {(agent, c): Counts(round(rate * attempts), attempts) for agent, rate in rates.items() for c in CAPABILITIES}


def test_agents_that_differ_across_the_board_keep_their_own_level_after_few_outcomes():
    apart = learn_hierarchy(records_of({"x": 0.9, "y": 0.5, "z": 0.2, "w": 0.6}), "xyzw")
    alike = learn_hierarchy(records_of({"x": 0.52, "y": 0.5, "z": 0.49, "w": 0.5}), "xyzw")

    assert apart.learned and alike.learned
    assert apart.level_strength < 5 < 100 < alike.level_strength  # alike agents are pulled together


def test_a_level_is_read_from_the_other_capabilities_against_the_other_agents():
    records = records_of({"x": 0.9, "y": 0.5, "z": 0.5, "w": 0.5})
    hierarchy = learn_hierarchy(records, "xyzw")
    records[("x", "a")] = Counts(0, 0)  # x has never tried a

    level, evidence = hierarchy.level("x", "a", records, CAPABILITIES)

    assert evidence == 600  # b, c and d
    assert level == pytest.approx(0.4, abs=0.05)  # 0.9 against the others' 0.5, barely shrunk


def test_the_pair_prior_is_strong_where_pairs_keep_to_capability_rate_plus_level_and_weak_where_they_stray():
    steady = learn_hierarchy(records_of({"x": 0.8, "y": 0.5, "z": 0.3, "w": 0.6}, 400), "xyzw")
    scattered = {
        (agent, c): Counts(round(rate * 400), 400)
        for agent in "xyzw"
        for c, rate in zip(CAPABILITIES, (0.9, 0.2, 0.6, 0.4) if agent in "xz" else (0.2, 0.9, 0.4, 0.6))
    }
    stray = learn_hierarchy(scattered, "xyzw")

    assert steady.prior(0.5, 0.1, 1200)[1] > 20 > 5 > stray.prior(0.5, 0.0, 1200)[1]


def test_fewer_than_three_sharing_agents_learn_no_hierarchy():
    assert not learn_hierarchy(records_of({"x": 0.9, "y": 0.5}), "xy").learned
    assert not learn_hierarchy(records_of({"x": 0.9, "y": 0.5, "z": 0.2}), "xy").learned  # z does not share


def test_the_spread_between_units_discounts_their_sampling_noise():
    # four units, each with noise variance 0.01 (precision 100): Q = sum of 100 * deviation², 3 degrees of freedom
    assert between_spread([0.05, -0.05, 0.05, -0.05], [0.01] * 4) == 0.0  # less spread than the noise alone
    assert between_spread([0.3, -0.3, 0.3, -0.3], [0.01] * 4) == pytest.approx((36 - 3) / (400 - 100))


def test_spreads_are_refreshed_often_while_records_are_short():
    assert all(refresh_due(n, 100) for n in range(1, 20))
    assert [n for n in range(1000, 1300) if refresh_due(n, 100)] == [1000, 1100, 1200]


def given_a_fleet_where_one_agent_is_strong_everywhere() -> LearnerState:
    state = LearnerState()
    for agent in ("strong", "p", "q", "r"):
        register(state, AgentProfile(agent, {c: 0.5 for c in CAPABILITIES}, share_experience=True))
    n = 0
    for c in CAPABILITIES[1:]:
        for k in range(30):
            for agent in ("strong", "p", "q", "r"):
                n += 1
                success = k % 10 < (9 if agent == "strong" else 4)
                learn(state, Outcome(f"t{n}", agent, c, success))
    return state


def test_an_agent_strong_everywhere_starts_a_new_capability_above_the_rest():
    state = given_a_fleet_where_one_agent_is_strong_everywhere()

    strong, other = posterior(state, "strong", "a"), posterior(state, "p", "a")

    assert state.hierarchy.learned
    assert strong.mean > other.mean + 0.2


def test_the_prior_fades_as_the_agents_own_record_on_the_capability_grows():
    state = given_a_fleet_where_one_agent_is_strong_everywhere()
    before = posterior(state, "strong", "a")
    for k in range(200):  # on "a", the strong agent turns out poor
        learn(state, Outcome(f"a{k}", "strong", "a", k % 10 < 3))

    after = posterior(state, "strong", "a")

    assert before.mean > 0.7
    assert after.mean == pytest.approx(0.3, abs=0.06)


def test_the_hierarchy_prior_is_kept_within_bounds():
    hierarchy = Hierarchy(learned=True)
    mean, strength = hierarchy.prior(0.95, 0.4, 10)
    assert mean == 0.98 and 2.0 <= strength <= 50.0


def specialists() -> dict[tuple[str, str], Counts]:
    """Agent a always right on math and tried on it most, b on code; c never right; b never tried on math."""
    return {
        ("a", "math"): Counts(32, 32),
        ("a", "code"): Counts(0, 2),
        ("b", "code"): Counts(30, 30),
        ("c", "math"): Counts(0, 3),
        ("c", "code"): Counts(0, 3),
    }


def cohort_of(*agents: str) -> Cohorts:
    cohorts = Cohorts()
    for agent in agents:
        cohorts.register(AgentProfile(agent, {"math": 0.5, "code": 0.5}, share_experience=True))
    return cohorts


def test_the_rate_of_the_agent_routing_favours_is_not_promised_to_an_agent_not_tried_yet():
    records = specialists()

    prior = cohort_of("a", "b", "c").prior("b", "math", records)

    pooled_over_outcomes = (0.5 * 2 + 32) / (2 + 35)
    assert pooled_over_outcomes > 0.89
    assert 0.35 < prior < 0.6  # near one agent one vote: a's 1.0 and c's 0.0


def test_agents_whose_rates_differ_by_no_more_than_noise_are_pooled_over_outcomes():
    records = {("x", "math"): Counts(55, 100), ("y", "math"): Counts(5, 10)}

    prior = cohort_of("x", "y", "z").prior("z", "math", records)

    assert prior == pytest.approx((0.5 * 2 + 60) / (2 + 110))
