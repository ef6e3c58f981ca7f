"""Policies over logged decisions, and the fold that finds those decisions in the log."""

import random
from dataclasses import fields, replace
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from bench.evaluation.whatif.decisions import DecisionLog, LoggedDecision
from bench.evaluation.whatif.policies import TUNABLE, AgentPolicy, PolicyError, RandomPolicy, RouterPolicy, parse
from bench.evaluation.whatif.report import best_single, evaluate
from events.envelope import make_event
from events.tasks import TaskAssigned, TaskCompleted, TaskFailed, TaskRouted, TaskSubmitted
from events.values import Candidate, CapabilityRequirement
from services.router.logic import AgentState, Record, RouterState, Weights, route

T0 = datetime(2026, 12, 1, tzinfo=timezone.utc)


def fleet() -> RouterState:
    state = RouterState()
    for name, skill, in_flight in (("a1", 0.9, 0), ("a2", 0.6, 1), ("a3", 0.4, 0), ("a4", 0.7, 2)):
        state.agents[name] = AgentState(
            agent_id=name,
            capabilities={"python": skill},
            capacity=4,
            in_flight=in_flight,
            cost_per_task=0.1 * in_flight,
        )
        state.records[(name, "python")] = Record(successes=10 * skill, failures=10 * (1 - skill))
    return state


def routed(weights: Weights, task_id: str = "t1") -> TaskRouted:
    task = TaskSubmitted(task_id=task_id, submitter="s", requirements=(CapabilityRequirement(name="python"),))
    return route(task, fleet(), weights, random.Random(3))


def decision_of(event: TaskRouted, reward: float = 1.0) -> LoggedDecision:
    return LoggedDecision(event.task_id, T0, event.candidates, event.chosen_agent_id, event.propensity, reward)


@pytest.mark.parametrize(
    "weights", [Weights(), Weights(temperature=0.2, top_k=4, load=0.6), Weights(top_k=1, cost=0.3)]
)
def test_the_router_policy_gives_the_routers_own_propensities(weights):
    event = routed(weights)
    chances = RouterPolicy("router", weights).probabilities(decision_of(event))
    assert chances == pytest.approx([c.propensity for c in event.candidates], abs=1e-5)


def test_other_settings_move_the_chances_as_the_router_would():
    decision = decision_of(routed(Weights()))
    cold = RouterPolicy("cold", Weights(temperature=0.01)).probabilities(decision)
    warm = RouterPolicy("warm", Weights(temperature=1.0, top_k=4)).probabilities(decision)
    assert cold.max() > 0.99 and np.count_nonzero(warm) == 4 and warm.max() < 0.35


def test_specs_name_policies_and_bad_ones_say_why(tmp_path):
    today = Weights()
    assert parse("greedy", today).weights.top_k == 1
    assert parse("router:temperature=0.2,load=0.6,top_k=2", today).weights == replace(
        today, temperature=0.2, load=0.6, top_k=2
    )
    assert isinstance(parse("random", today), RandomPolicy)
    assert parse("agent:a3", today).agent_id == "a3"
    assert parse("best-single", today) == "best-single"
    with pytest.raises(PolicyError, match="'speed' is not a setting"):
        parse("router:speed=2", today)
    with pytest.raises(PolicyError, match="temperature must be above 0"):
        parse("router:temperature=0", today)
    with pytest.raises(PolicyError, match="unknown policy 'smart'"):
        parse("smart", today)
    assert set(TUNABLE) <= {f.name for f in fields(Weights)}


def test_a_policy_described_in_a_file(tmp_path):
    toml = tmp_path / "cautious.toml"
    toml.write_text('name = "cautious"\ntemperature = 0.02\ntop_k = 2\n[weights]\nload = 0.8\n')
    policy = parse(f"file:{toml}", Weights())
    assert policy.name == "cautious" and policy.weights == replace(Weights(), temperature=0.02, top_k=2, load=0.8)
    as_json = tmp_path / "one.json"
    as_json.write_text('{"name": "only-a2", "kind": "agent", "agent": "a2"}')
    assert parse(str(as_json), Weights()).agent_id == "a2"
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\nkind = "clever"\n[weights]\nspeed = 1\n')
    with pytest.raises(PolicyError, match="kind: .*weights.speed"):
        parse(f"file:{bad}", Weights())


def test_a_single_agent_policy_falls_back_when_its_agent_is_no_candidate():
    decision = decision_of(routed(Weights()))
    policy = parse("agent:nobody", Weights())
    assert policy.probabilities(decision) == pytest.approx(RouterPolicy("g", Weights(top_k=1)).probabilities(decision))
    assert (
        AgentPolicy("a3", "a3", policy.otherwise).probabilities(decision)[
            [c.agent_id for c in decision.candidates].index("a3")
        ]
        == 1.0
    )


def uniform(task_id: str, agent: str, reward: float) -> LoggedDecision:
    candidates = tuple(
        Candidate(agent_id=a, score=0.0, propensity=0.5, predicted_success=p) for a, p in (("a1", 0.4), ("a2", 0.7))
    )
    return LoggedDecision(task_id, T0, candidates, agent, 0.5, reward)


def test_best_single_is_the_agent_the_reward_model_rates_highest():
    decisions = [uniform("t1", "a1", 0.0), uniform("t2", "a2", 1.0), uniform("t3", "a1", 1.0), uniform("t4", "a2", 1.0)]
    assert best_single(decisions, Weights()).agent_id == "a2"
    [result] = evaluate(decisions, ["best-single"], Weights(), resamples=20)
    assert result.policy == "best-single (a2)" and result.estimates.snips.value == pytest.approx(1.0)


# --- the decision log ------------------------------------------------------------------


def events_of_one_task(task_id="t1", *, override_to=None, propensity=0.8, success=True):
    event = routed(Weights(), task_id)
    agent = override_to or event.chosen_agent_id
    at = T0
    out = []
    for body in (
        event,
        TaskAssigned(agent_id=agent, task_id=task_id, attempt=1, capability="python", propensity=propensity),
        TaskCompleted(task_id=task_id, agent_id=agent, attempt=1, success=success),
    ):
        at += timedelta(seconds=1)
        out.append(make_event(body, producer="test", occurred_at=at))
    return out


def test_a_decision_carries_the_assignments_probability_and_its_outcome():
    log = DecisionLog()
    for e in events_of_one_task(override_to="a3", propensity=0.8, success=False):
        log.apply(e)
    [decision] = log.decisions()
    assert (decision.agent_id, decision.propensity, decision.reward) == ("a3", 0.8, 0.0)


def test_duplicates_count_once():
    first, second = events_of_one_task("t1"), events_of_one_task("t1")
    log = DecisionLog()
    for e in first + first + second[:2]:  # redelivered events, then a second routing and assignment
        log.apply(e)
    [decision] = log.decisions()
    assert decision.candidates == first[0].body.candidates
    assert log.counts["events delivered twice"] == 3 and log.counts["routings after the first"] == 1


def test_a_later_attempt_is_not_the_decisions_outcome_and_the_window_holds():
    log = DecisionLog(since=T0 + timedelta(seconds=1), until=T0 + timedelta(seconds=2))
    routing, assignment, _ = events_of_one_task("t1")
    for e in (
        routing,
        assignment,
        make_event(
            TaskFailed(task_id="t1", agent_id=assignment.body.agent_id, attempt=2, error="x", retryable=False),
            producer="test",
        ),
    ):
        log.apply(e)
    assert log.decisions() == [] and log.counts["assignments without an outcome yet"] == 1
    outside = DecisionLog(since=T0 + timedelta(seconds=5))
    for e in events_of_one_task("t2"):
        outside.apply(e)
    assert outside.decisions() == []


def test_an_assignment_from_before_it_carried_a_propensity_takes_the_routers_when_it_is_the_routers_choice():
    routing, assignment, outcome = events_of_one_task("t1", propensity=None)
    log = DecisionLog()
    for e in (routing, assignment, outcome):
        log.apply(e)
    assert log.decisions()[0].propensity == routing.body.propensity
    overridden = DecisionLog()
    for e in events_of_one_task("t2", override_to="a3", propensity=None):
        overridden.apply(e)
    assert overridden.decisions() == [] and overridden.counts["assignments of unknown probability"] == 1


def test_the_command_refuses_a_bad_policy_before_reading_anything(capsys):
    from services.cli import main

    assert main(["whatif", "--policy", "greedy", "--policy", "router:speed=2"]) == 2
    assert "'speed' is not a setting" in capsys.readouterr().err
