"""Thompson sampling in the router: each candidate's success drawn from its posterior."""

import random

import pytest

from events.tasks import TaskSubmitted
from events.values import CapabilityRequirement
from services.router.logic import AgentState, Record, RouterState, Weights, route

THOMPSON = Weights(exploration="thompson", top_k=10, load=0.0)


def task(task_id="t1"):
    return TaskSubmitted(task_id=task_id, submitter="c", requirements=(CapabilityRequirement(name="python"),))


def given(**records: tuple[int, int]) -> RouterState:
    """Agents by name with (successes, failures) on python, all declared at 0.5."""
    state = RouterState(agents={a: AgentState(agent_id=a, capabilities={"python": 0.5}, capacity=4) for a in records})
    for agent_id, (successes, failures) in records.items():
        state.records[(agent_id, "python")] = Record(successes=successes, failures=failures)
    return state


def picks(state: RouterState, weights: Weights, n: int = 400) -> dict[str, int]:
    chosen: dict[str, int] = {}
    for k in range(n):
        decision = route(task(f"t{k}"), state, weights, random.Random(k))
        chosen[decision.chosen_agent_id] = chosen.get(decision.chosen_agent_id, 0) + 1
    return chosen


def test_a_clearly_better_record_is_almost_always_chosen():
    chosen = picks(given(good=(90, 10), poor=(40, 60)), THOMPSON)
    assert chosen.get("good", 0) >= 395


def test_an_untried_agent_is_still_explored_against_a_mediocre_one():
    chosen = picks(given(known=(55, 45), new=(0, 0)), THOMPSON)
    assert 20 < chosen.get("new", 0) < 380


def test_sharpness_explores_less():
    state = given(a=(12, 8), b=(10, 10))
    plain, sharp = (
        picks(state, THOMPSON),
        picks(state, Weights(exploration="thompson", top_k=10, load=0.0, sharpness=16.0)),
    )
    assert sharp.get("b", 0) < plain.get("b", 0)


def test_propensities_are_a_distribution_and_the_pick_never_has_propensity_zero():
    decision = route(task(), given(a=(30, 10), b=(20, 20), c=(1, 1)), THOMPSON, random.Random(3))
    assert sum(c.propensity for c in decision.candidates) == pytest.approx(1.0)
    assert decision.propensity > 0.0
    chosen = next(c for c in decision.candidates if c.agent_id == decision.chosen_agent_id)
    assert chosen.propensity == decision.propensity


def test_the_same_seed_and_task_give_the_same_decision():
    state = given(a=(5, 5), b=(5, 5), c=(5, 5))
    one, two = (route(task("same"), state, THOMPSON, random.Random("0:same")) for _ in range(2))
    assert one == two


def test_load_still_counts_against_an_agent():
    state = given(busy=(50, 50), idle=(50, 50))
    state.agents["busy"] = AgentState(agent_id="busy", capabilities={"python": 0.5}, capacity=1, in_flight=1)
    chosen = picks(state, Weights(exploration="thompson", top_k=10, load=0.3), n=200)
    assert chosen.get("idle", 0) > 190


def test_the_settings_choose_thompson_sampling_and_its_sharpness():
    from services.router.bootstrap import weights_from
    from services.settings import Settings

    weights = weights_from(Settings.from_env({"ROUTER_EXPLORATION": "thompson", "ROUTER_THOMPSON_SHARPNESS": "4"}))

    assert (weights.exploration, weights.sharpness) == ("thompson", 4.0)


@pytest.mark.parametrize("variable, value", [("ROUTER_EXPLORATION", "greedy"), ("ROUTER_THOMPSON_SHARPNESS", "0")])
def test_a_bad_exploration_setting_is_refused_with_its_name(variable, value):
    from services.settings import ConfigError, Settings

    with pytest.raises(ConfigError, match=variable):
        Settings.from_env({variable: value})
