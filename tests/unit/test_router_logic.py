import random

import pytest

from events.tasks import TaskQueued, TaskRouted, TaskSubmitted
from events.values import CapabilityRequirement
from services.router.logic import AgentState, Record, RouterState, Weights, learn_outcome, route, softmax


def task(*requirements, preferred_agents=(), job_id=None, task_id="t1"):
    return TaskSubmitted(
        task_id=task_id,
        submitter="c",
        job_id=job_id,
        preferred_agents=preferred_agents,
        requirements=tuple(CapabilityRequirement(name=n, min_proficiency=m) for n, m in requirements),
    )


def fleet(*agents: AgentState) -> RouterState:
    return RouterState(agents={a.agent_id: a for a in agents})


def agent(agent_id, capacity=2, in_flight=0, **skills):
    return AgentState(agent_id=agent_id, capabilities=skills, capacity=capacity, in_flight=in_flight)


GREEDY = Weights(temperature=1e-6)


def test_hard_requirements_exclude_agents_below_the_minimum():
    state = fleet(agent("weak", python=0.4), agent("strong", python=0.9), agent("sql-only", sql=0.9))
    decision = route(task(("python", 0.5)), state, GREEDY, random.Random(1))
    assert [c.agent_id for c in decision.candidates] == ["strong"]


def test_every_required_capability_must_be_met():
    state = fleet(agent("both", python=0.7, sql=0.7), agent("one", python=0.9))
    decision = route(task(("python", 0.5), ("sql", 0.5)), state, GREEDY, random.Random(1))
    assert decision.chosen_agent_id == "both"


def test_unhealthy_and_draining_agents_and_those_already_tried_are_excluded():
    state = fleet(
        agent("sick", python=0.9), agent("leaving", python=0.9), agent("tried", python=0.9), agent("ok", python=0.5)
    )
    state.agents["sick"] = AgentState(**{**state.agents["sick"].__dict__, "health": "unhealthy"})
    state.agents["leaving"] = AgentState(**{**state.agents["leaving"].__dict__, "status": "draining"})
    decision = route(task(("python", 0.0)), state, GREEDY, random.Random(1), exclude=frozenset({"tried"}))
    assert [c.agent_id for c in decision.candidates] == ["ok"]


def test_no_capable_agent_queues_the_task_with_the_reason():
    decision = route(task(("rust", 0.5)), fleet(agent("a", python=0.9)), GREEDY, random.Random(1))
    assert isinstance(decision, TaskQueued)
    assert "rust>=0.5" in decision.reason and "a: lacks rust" in decision.reason


def test_load_lowers_the_score():
    state = fleet(agent("busy", python=0.8, in_flight=2), agent("idle", python=0.8))
    assert route(task(("python", 0)), state, GREEDY, random.Random(1)).chosen_agent_id == "idle"


def test_outcomes_move_predicted_success_away_from_the_declared_prior():
    state = fleet(agent("claims-high", python=0.9), agent("modest", python=0.6))
    for _ in range(20):
        learn_outcome(state, "claims-high", "python", False)
        learn_outcome(state, "modest", "python", True)
    decision = route(task(("python", 0)), state, GREEDY, random.Random(1))
    assert decision.chosen_agent_id == "modest"
    assert decision.candidates[0].predicted_success > 0.85 > 0.3 > decision.candidates[1].predicted_success


def test_a_learned_estimate_replaces_the_declared_proficiency_as_prior():
    state = fleet(agent("a", python=0.9), agent("b", python=0.5))
    state.records[("a", "python")] = Record(estimate=0.2, estimate_confidence=0.9)
    assert route(task(("python", 0)), state, GREEDY, random.Random(1)).chosen_agent_id == "b"


def test_preferred_agents_get_a_bonus():
    state = fleet(agent("a", python=0.8), agent("b", python=0.8))
    assert route(task(("python", 0), preferred_agents=("b",)), state, GREEDY, random.Random(1)).chosen_agent_id == "b"


def test_relationship_lift_with_agents_already_on_the_job_counts():
    state = fleet(agent("a", python=0.8), agent("b", python=0.8))
    state.job_members["job-1"] = frozenset({"partner"})
    state.relationships[("b", "partner")] = 2.0
    assert route(task(("python", 0), job_id="job-1"), state, GREEDY, random.Random(1)).chosen_agent_id == "b"


def test_the_decision_explains_itself_and_logs_propensities():
    state = fleet(agent("a", python=0.9), agent("b", python=0.7), agent("c", python=0.5), agent("d", python=0.3))
    decision = route(task(("python", 0)), state, Weights(temperature=0.2, top_k=3), random.Random(4))
    assert isinstance(decision, TaskRouted)
    assert sum(c.propensity for c in decision.candidates) == pytest.approx(1.0, abs=1e-5)
    assert decision.candidates[-1].propensity == 0.0  # outside the top k: never picked
    chosen = next(c for c in decision.candidates if c.agent_id == decision.chosen_agent_id)
    assert decision.propensity == chosen.propensity
    assert {"predicted_success", "load", "cost", "relationship", "preference"} <= set(chosen.features)
    assert decision.reason.startswith(decision.chosen_agent_id) and decision.policy


def test_exploration_follows_the_logged_propensities():
    state = fleet(agent("a", python=0.8), agent("b", python=0.7))
    weights = Weights(temperature=0.1)
    picks = [route(task(("python", 0)), state, weights, random.Random(seed)) for seed in range(2000)]
    share_b = sum(p.chosen_agent_id == "b" for p in picks) / len(picks)
    expected_b = next(c.propensity for c in picks[0].candidates if c.agent_id == "b")
    assert 0.0 < expected_b < 0.5
    assert share_b == pytest.approx(expected_b, abs=0.03)


def test_softmax_is_a_distribution():
    assert sum(softmax([3.0, 1.0, -2.0], 0.5)) == pytest.approx(1.0)


def test_the_capability_index_follows_registrations_and_removals():
    state = fleet(agent("a", python=0.9), agent("b", sql=0.9))
    state.agents["a"] = agent("a", sql=0.8)  # re-registered without python
    del state.agents["b"]
    decision = route(task(("sql", 0.5)), state, GREEDY, random.Random(1))
    assert [c.agent_id for c in decision.candidates] == ["a"]
    assert isinstance(route(task(("python", 0.5)), state, GREEDY, random.Random(1)), TaskQueued)


def test_a_big_fleet_logs_only_the_best_candidates_but_says_how_many_were_capable():
    state = fleet(*(agent(f"a{i:02}", python=0.5 + i / 100) for i in range(30)))
    decision = route(task(("python", 0)), state, Weights(logged_candidates=5), random.Random(1))
    assert len(decision.candidates) == 5 and decision.candidates[0].agent_id == "a29"
    assert "of 30 capable" in decision.reason


def test_baseline_policies_decide_with_their_own_propensities():
    from services.router.policies import policy

    state = fleet(agent("a", python=0.9, in_flight=1), agent("b", python=0.2), agent("c", sql=0.9))
    rr = policy("round_robin")
    chosen = [rr(task(("python", 0)), state, Weights(), random.Random(1)).chosen_agent_id for _ in range(3)]
    assert chosen == ["a", "b", "a"]
    assert policy("least_loaded")(task(("python", 0)), state, Weights(), random.Random(1)).chosen_agent_id == "b"
    decision = policy("random")(task(("python", 0)), state, Weights(), random.Random(1))
    assert {c.propensity for c in decision.candidates} == {0.5} and decision.policy == "random"
    assert isinstance(policy("random")(task(("go", 0)), state, Weights(), random.Random(1)), TaskQueued)
    with pytest.raises(ValueError, match="unknown routing policy"):
        policy("psychic")


def estimated(prior_strength: float | None, successes: int = 3, attempts: int = 4, proficiency: float = 0.6):
    from events.learning import SkillEstimated
    from services.router.logic import take_estimate

    state = RouterState()
    take_estimate(
        state,
        SkillEstimated(
            agent_id="a",
            capability="python",
            proficiency=proficiency,
            confidence=0.2,
            successes=successes,
            attempts=attempts,
            outcomes_read=attempts,
            prior_strength=prior_strength,
        ),
    )
    return state.records[("a", "python")]


def test_the_learners_prior_strength_rebuilds_its_posterior_exactly():
    a, b = estimated(prior_strength=16.0).posterior(0.5)
    assert a + b == pytest.approx(20.0) and a / (a + b) == pytest.approx(0.6)


def test_an_estimate_without_a_prior_strength_is_read_as_before():
    a, b = estimated(prior_strength=None).posterior(0.5)
    assert a + b == pytest.approx(4.0 + 4)


def test_exploration_weighs_a_strong_pooled_prior_as_at_most_a_few_outcomes_around_its_own_mean():
    # the learner: prior mean 0.55 worth 16 outcomes, plus 3 of 4 successes -> (0.55 * 16 + 3) / 20 = 0.59
    record = estimated(prior_strength=16.0, proficiency=0.59)

    a, b = record.posterior(0.5, strongest_prior=4.0)

    assert a + b == pytest.approx(8.0)  # 4 for the prior, 4 of the agent's own
    assert a / (a + b) == pytest.approx((0.55 * 4 + 3) / 8)  # the record counts for more than in the estimate
    assert record.posterior(0.5, strongest_prior=32.0) == pytest.approx(record.posterior(0.5))  # weaker: unchanged
