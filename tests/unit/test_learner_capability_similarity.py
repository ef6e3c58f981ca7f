"""Priors from related capabilities: an agent better than the fleet at one is likely better at a related one."""

import pytest

from services.learner.capability_similarity import LARGEST_SHIFT, correlation, learn_related
from services.success_model.beta import Counts

AGENTS = ("a", "b", "c", "d")


def records(rates: dict[str, dict[str, float]], attempts: int = 100) -> dict[tuple[str, str], Counts]:
    """capability -> agent -> success rate, as records of `attempts` outcomes each."""
    return {
        (agent, capability): Counts(round(rate * attempts), attempts)
        for capability, by_agent in rates.items()
        for agent, rate in by_agent.items()
    }


KNOWLEDGE = {
    "mmlu": {"a": 0.7, "b": 0.5, "c": 0.45, "d": 0.4},
    "cmmlu": {"a": 0.6, "b": 0.45, "c": 0.4, "d": 0.35},
    "code": {"a": 0.2, "b": 0.3, "c": 0.6, "d": 0.5},
}


def test_capabilities_the_same_agents_are_good_at_are_similar_and_opposite_ones_are_not():
    related = learn_related(records(KNOWLEDGE), AGENTS)
    assert related.similarity["mmlu"]["cmmlu"] > 0.9
    assert "code" not in related.similarity.get("mmlu", {})


def test_an_agent_strong_on_a_related_capability_carries_its_advantage_into_an_untried_one():
    given = records(KNOWLEDGE)
    related = learn_related(given, AGENTS)
    del given[("a", "cmmlu")]  # a newcomer to cmmlu, known to be strong at mmlu

    assert related.advantage("a", "cmmlu", given) > 0.1
    assert related.advantage("d", "cmmlu", given) < 0.0


def test_nothing_is_carried_over_without_a_record_on_related_capabilities():
    related = learn_related(records(KNOWLEDGE), AGENTS)
    assert related.advantage("stranger", "cmmlu", records(KNOWLEDGE)) == 0.0


def test_agents_that_do_not_share_teach_no_similarity():
    assert learn_related(records(KNOWLEDGE), ("a", "b")).similarity == {}


def test_the_advantage_carried_over_is_bounded():
    extreme = {"x": {"a": 1.0, "b": 0.0, "c": 0.0, "d": 0.0}, "y": {"a": 1.0, "b": 0.0, "c": 0.0, "d": 0.0}}
    given = records(extreme, attempts=1000)
    related = learn_related(given, AGENTS)
    del given[("a", "y")]
    assert related.advantage("a", "y", given) == pytest.approx(LARGEST_SHIFT)


def test_correlation_needs_three_agents_and_some_spread():
    assert correlation({"a": 0.1, "b": 0.2}, {"a": 0.1, "b": 0.2}) == 0.0
    assert correlation({"a": 0.1, "b": 0.1, "c": 0.1}, {"a": 0.1, "b": 0.2, "c": 0.3}) == 0.0
    assert correlation({"a": 0.1, "b": 0.2, "c": 0.3}, {"a": 0.3, "b": 0.2, "c": 0.1}) == pytest.approx(-1.0)
