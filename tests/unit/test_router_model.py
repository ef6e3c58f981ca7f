"""The router predicts with the learner's published model once there is one, and with nothing it cannot validate."""

from __future__ import annotations

import math
import random

import pytest

from events.agents import AgentRegistered
from events.learning import ModelPublished
from events.tasks import TaskSubmitted
from events.values import Capability, CapabilityRequirement
from services.router.logic import Weights, route
from services.success_model.features import Running
from services.success_model.logistic import SuccessModel
from tests.unit.test_router_state import given

GREEDY = Weights(temperature=1e-6)


def registered(agent_id: str, proficiency: float = 0.6, labels=None) -> AgentRegistered:
    return AgentRegistered(
        agent_id=agent_id,
        display_name=agent_id,
        capacity=2,
        labels=labels or {},
        capabilities=(Capability(name="python", proficiency=proficiency),),
    )


def submitted(task_id: str, prompt_chars: float) -> TaskSubmitted:
    return TaskSubmitted(
        task_id=task_id,
        submitter="c",
        features={"prompt_chars": prompt_chars},
        requirements=(CapabilityRequirement(name="python"),),
    )


def published(version: str, parameters: dict) -> ModelPublished:
    return ModelPublished(
        model_id="success",
        model_version=version,
        kind="logistic-regression",
        parameters=parameters,
        trained_on_events=100,
    )


def long_prompts_fail(**agent_weights: float) -> dict:
    """A model that has learned that long python prompts go badly, and what it thinks of some agents."""
    parameters = SuccessModel().parameters()
    # Prompt lengths seen so far: log1p(100) … log1p(10000), so 100 chars is short and 10,000 long.
    scaling = Running()
    for chars in (100, 1000, 10000):
        scaling.add(math.log1p(chars))
    parameters["scaling"] = {"python": {"prompt_chars": [scaling.count, scaling.mean, scaling.m2]}}
    parameters["weights"] = {
        **parameters["weights"],
        "task:python:prompt_chars": -1.5,
        **{f"agent:{agent}": weight for agent, weight in agent_weights.items()},
    }
    return parameters


def test_without_a_model_the_prediction_is_the_posterior_mean():
    view = given(registered("a1", proficiency=0.6))
    decision = route(submitted("t1", 100), view.state, GREEDY, random.Random(1))
    assert decision.predicted_success == 0.6 and decision.model_version is None


def test_an_untrained_model_predicts_what_the_posterior_says():
    view = given(registered("a1", proficiency=0.6), published("v1", SuccessModel().parameters()))
    decision = route(submitted("t1", 100), view.state, GREEDY, random.Random(1))
    assert abs(decision.predicted_success - 0.6) < 1e-6 and decision.model_version == "v1"


def test_the_model_predicts_each_task_from_its_features():
    view = given(registered("a1"), published("v2", long_prompts_fail(a1=0.2)))
    short = route(submitted("short", 100), view.state, GREEDY, random.Random(1))
    long = route(submitted("long", 10000), view.state, GREEDY, random.Random(1))
    assert long.predicted_success < 0.4 < 0.7 < short.predicted_success
    assert short.model_version == long.model_version == "v2"


def test_the_model_changes_the_choice_where_the_posteriors_alone_would_not():
    # b is registered better on python, but the model has learned that b does worse than its record says.
    a_and_b = (registered("a", proficiency=0.6), registered("b", proficiency=0.65))
    assert route(submitted("t1", 100), given(*a_and_b).state, GREEDY, random.Random(1)).chosen_agent_id == "b"
    view = given(*a_and_b, published("v3", long_prompts_fail(b=-0.5)))
    assert route(submitted("t1", 100), view.state, GREEDY, random.Random(1)).chosen_agent_id == "a"


def test_a_model_that_does_not_validate_is_refused_and_the_last_good_one_stays():
    good = long_prompts_fail(a1=0.2)
    view = given(
        registered("a1"),
        published("v4", good),
        published("v5", {**good, "weights": {"agent:a1": "0.2"}}),  # a string that looks like a number
        published("v6", {**good, "format": "pickle"}),
    )
    assert view.state.model_version == "v4"
    assert route(submitted("t1", 10000), view.state, GREEDY, random.Random(1)).model_version == "v4"


def test_the_agents_labels_reach_the_model():
    parameters = {**SuccessModel().parameters()}
    parameters["weights"] = {**parameters["weights"], "label:team=experts": 2.0}
    view = given(registered("plain"), registered("expert", labels={"team": "experts"}), published("v7", parameters))
    decision = route(submitted("t1", 100), view.state, GREEDY, random.Random(1))
    assert decision.chosen_agent_id == "expert" and decision.predicted_success > 0.9


def test_the_router_s_sum_in_parts_predicts_what_the_learner_s_model_predicts_on_the_whole_vector():
    # Given a model trained on tasks with features, agents with labels, and two capabilities
    from services.success_model.beta import Beta
    from services.success_model.features import features
    from services.success_model.logistic import LinearPredictor

    model, rng = SuccessModel(learning_rate=0.1), random.Random(3)
    for n in range(300):
        capability, agent = rng.choice(["python", "sql"]), rng.choice(["a1", "a2", "a3"])
        task = {"prompt_chars": rng.uniform(10, 5000), "files": rng.randint(0, 9)}
        skill = Beta(2.0 + n % 5, 3.0, (2.0 + n % 5) / (5.0 + n % 5), 5.0 + n % 5)
        x = features(capability, agent, {"team": agent[-1]}, skill, n % 40, task, model.scaling)
        model.learn(x, rng.random() < 0.4 + 0.1 * len(agent) * (capability == "sql"), capability, task)
    predictor = LinearPredictor.from_parameters(model.parameters())

    # When it predicts a fresh task for each agent both ways
    task = {"prompt_chars": 1234.0, "files": 3}
    for agent in ["a1", "a2", "a3", "newcomer"]:
        for capability in ["python", "sql"]:
            skill = Beta(4.0, 2.0, 4.0 / 6.0, 6.0)
            whole = model.probability(features(capability, agent, {"team": agent[-1]}, skill, 12, task, model.scaling))
            parts = predictor.probability_from(
                predictor.task_term(capability, task), predictor.agent_term(agent, (("team", agent[-1]),)), skill, 12
            )

            # Then the two agree to rounding, and the model did learn something to disagree on
            assert abs(whole - parts) < 1e-12
    assert len(predictor.weights) > 5


def on_version(agent_id: str, version: str | None) -> AgentRegistered:
    return AgentRegistered(
        agent_id=agent_id,
        display_name=agent_id,
        capacity=2,
        capabilities=(Capability(name="python", proficiency=0.6, version=version),),
    )


def test_the_model_s_weight_on_a_capability_version_moves_the_choice_and_follows_an_upgrade():
    # Given a model that has learned that python 2 goes with success, and two agents alike but for the version
    from events.agents import AgentCapabilitiesChanged

    parameters = SuccessModel().parameters()
    parameters["weights"] = {**parameters["weights"], "version:python=2": 1.0}
    view = given(on_version("a1", "1"), on_version("a2", "2"), published("v1", parameters))

    # When it routes, then the agent on version 2 is chosen and predicted to succeed more often
    before = route(submitted("t1", 100), view.state, GREEDY, random.Random(1))
    assert before.chosen_agent_id == "a2"
    predicted = {c.agent_id: c.predicted_success for c in before.candidates}
    assert predicted["a2"] > predicted["a1"] + 0.15

    # When a1 upgrades, then the two are predicted alike; when a2 re-declares python without a version, it loses it
    view.apply(
        AgentCapabilitiesChanged(
            agent_id="a1", changed=(Capability(name="python", proficiency=0.6, version="2"),), changed_by="ops"
        )
    )
    view.apply(
        AgentCapabilitiesChanged(agent_id="a2", changed=(Capability(name="python", proficiency=0.6),), changed_by="ops")
    )
    after = {
        c.agent_id: c.predicted_success
        for c in route(submitted("t2", 100), view.state, GREEDY, random.Random(1)).candidates
    }
    assert after["a1"] == pytest.approx(predicted["a2"]) and after["a2"] == pytest.approx(predicted["a1"])
