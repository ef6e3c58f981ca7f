"""What the router keeps to make a decision cheap gives the same answers as working it out afresh:
the capability index's order, and a one-capability task's terms taken whole from the standing."""

from __future__ import annotations

import random
from dataclasses import replace

from events.tasks import TaskSubmitted
from events.values import CapabilityRequirement
from services.router.logic import (
    AgentRegistry,
    AgentState,
    RouterState,
    Shared,
    Weights,
    combined,
    learn_outcome,
    measure,
)
from services.success_model.logistic import LinearPredictor, SuccessModel


def agent(agent_id: str, **skills: float) -> AgentState:
    return AgentState(agent_id=agent_id, capabilities=skills, capacity=2)


def test_the_agents_declaring_a_capability_stay_in_id_order_as_the_fleet_changes():
    # Given a registry that has answered once, so that it keeps the order
    registry = AgentRegistry({i: agent(i, python=0.5) for i in ("c", "a", "b")})
    assert [a.agent_id for a in registry.declaring(["python"])] == ["a", "b", "c"]

    # When an agent's load changes
    registry["b"] = replace(registry["b"], in_flight=1)

    # Then it is the agent as it is now that is answered, in its place
    assert registry.declaring(["python"]) == [registry["a"], registry["b"], registry["c"]]
    assert registry.declaring(["python"])[1].in_flight == 1

    # And when one joins, one drops the capability and one leaves
    registry["aa"] = agent("aa", python=0.7)
    registry["c"] = agent("c", sql=0.9)
    del registry["a"]

    # Then the answer is the agents there now, in order
    assert registry.declaring(["python"]) == [registry["aa"], registry["b"]]
    assert registry.declaring(["sql"]) == [registry["c"]]
    registry.pop("c")
    assert registry.declaring(["sql"]) == [] and registry.declaring(["python", "sql"]) == []


def test_a_one_capability_task_measures_each_agent_as_the_general_combination_does():
    rng = random.Random(3)
    state = RouterState(agents={f"a{i}": agent(f"a{i}", python=rng.uniform(0.2, 0.9)) for i in range(20)})
    for i in range(20):
        for _ in range(rng.randint(0, 6)):
            learn_outcome(state, f"a{i}", "python", rng.random() < 0.6, rng.choice([None, rng.uniform(10, 900)]))
    task = TaskSubmitted(
        task_id="t", submitter="c", requirements=(CapabilityRequirement(name="python", min_proficiency=0.0),)
    )
    agents = state.agents.declaring(["python"])
    for predictor in (None, LinearPredictor.from_parameters(SuccessModel().parameters())):
        state.predictor = predictor
        shared = Shared.of(task, state, Weights())
        for measured, one in zip(measure(agents, shared, state), agents):
            success, confidence, duration_s, posteriors = combined(one, shared, state)
            assert measured[3:5] == (success, confidence)
            assert measured[6] == duration_s and measured[9] == posteriors
