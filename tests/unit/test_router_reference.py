"""The router's decision equals a plain computation of its definition on a random fleet: every
candidate scored from scratch, the model asked on the learner's whole feature vector, nothing kept
between decisions. Checked again after the changes that make the router rework what it keeps."""

from __future__ import annotations

import math
import random
from dataclasses import replace

import pytest

from events.learning import SkillEstimated
from events.tasks import TaskRouted, TaskSubmitted
from events.values import CapabilityRequirement
from services.router.logic import (
    AgentState,
    Record,
    RouterState,
    Scored,
    Weights,
    capable,
    learn_outcome,
    route,
    softmax,
    take_estimate,
    thompson,
)
from services.success_model.beta import Beta
from services.success_model.features import Running, features
from services.success_model.logistic import LinearPredictor, SuccessModel

CAPABILITIES = ("python", "sql", "go", "rust")
TEAMS = ("red", "blue", "green")
TAGS = ("gpu", "fast", "eu")
WEIGHTINGS = (
    Weights(),
    Weights(top_k=5, temperature=0.5, logged_candidates=4),
    Weights(top_k=1),
    Weights(exploration="thompson", top_k=4, sharpness=2.0),
)


# --- the reference: the definition, computed plainly ---------------------------------------------


def reference_scored(task: TaskSubmitted, agent: AgentState, state: RouterState, weights: Weights) -> Scored:
    predicted, confidence, durations, posteriors = [], [], [], []
    for requirement in task.requirements:
        record = state.records.get((agent.agent_id, requirement.name), Record())
        a, b = record.posterior(agent.capabilities[requirement.name])
        posteriors.append((a, b))
        if state.predictor is None:
            predicted.append(a / (a + b))
        else:
            version = dict(agent.versions).get(requirement.name)
            x = features(
                requirement.name,
                agent.agent_id,
                dict(agent.labels),
                Beta(a, b, a / (a + b), a + b),
                max(record.seen, record.estimate_attempts),
                task.features,
                state.predictor.scaling,
                version,
            )
            predicted.append(state.predictor.probability(x))
        confidence.append(1.0 - 2.0 * math.sqrt(a * b / ((a + b) ** 2 * (a + b + 1))))
        if record.durations:
            durations.append(record.total_duration_ms / record.durations)
    success = math.prod(predicted)
    load = agent.in_flight / agent.capacity
    duration_s = sum(durations) / 1000.0
    team = (state.job_members.get(task.job_id, frozenset()) if task.job_id else frozenset()) - {agent.agent_id}
    relationship = (
        sum(state.relationships.get((agent.agent_id, o), 1.0) - 1.0 for o in team) / len(team) if team else 0.0
    )
    preference = 0.0
    if task.preferred_agents or task.preferred_tags:
        preference = float(agent.agent_id in task.preferred_agents)
        if task.preferred_tags:
            preference += len(agent.tags & set(task.preferred_tags)) / len(task.preferred_tags)
    value = (
        weights.success * success
        - weights.load * load
        - weights.duration * math.log1p(duration_s)
        - weights.cost * agent.cost_per_task
        + weights.relationship * relationship
        + weights.preference * preference
    )
    return Scored(
        agent,
        value,
        success,
        max(0.0, min(1.0, *confidence)),
        {
            "predicted_success": success,
            "load": load,
            "expected_duration_s": duration_s,
            "cost": agent.cost_per_task,
            "relationship": relationship,
            "preference": preference,
        },
        tuple(posteriors),
    )


def reference_decision(
    task: TaskSubmitted, state: RouterState, weights: Weights, seed: int, exclude: frozenset[str]
) -> tuple[list[Scored], list[float], str]:
    # Who is capable and how the pick is drawn are the router's own functions: what this checks is the scoring.
    agents, _ = capable(task, state, exclude)
    every = sorted(
        (reference_scored(task, a, state, weights) for a in agents), key=lambda s: (-s.score, s.agent.agent_id)
    )
    ranked = every[: max(weights.logged_candidates, weights.top_k, 1)]
    top, rng = ranked[: max(1, weights.top_k)], random.Random(seed)
    if weights.exploration == "thompson":
        pick, drawn = thompson(top, weights, rng)
    else:
        drawn = softmax([s.score for s in top], weights.temperature)
        pick = rng.choices(range(len(top)), weights=drawn)[0]
    return ranked, drawn + [0.0] * (len(ranked) - len(top)), ranked[pick].agent.agent_id


# --- a random fleet, fixed by its seed ---------------------------------------------------------


def random_fleet(rng: random.Random, agents: int = 120) -> RouterState:
    state = RouterState()
    for i in range(agents):
        agent_id = f"agent-{i:03}"
        skills = {c: round(rng.uniform(0.1, 0.95), 2) for c in rng.sample(CAPABILITIES, k=rng.randint(1, 3))}
        state.agents[agent_id] = AgentState(
            agent_id=agent_id,
            capabilities=skills,
            capacity=rng.randint(1, 6),
            in_flight=rng.randint(0, 3),
            cost_per_task=rng.choice([0.0, 0.5, 2.0]),
            tags=frozenset(rng.sample(TAGS, k=rng.randint(0, 2))),
            labels=(("team", rng.choice(TEAMS)),) if rng.random() < 0.7 else (),
            versions=tuple(sorted((c, rng.choice("12")) for c in skills if rng.random() < 0.5)),
            health=rng.choice(["healthy", "healthy", "unknown", "unhealthy"]),
        )
        for capability in skills:
            some_outcomes(state, rng, agent_id, capability, rng.randint(0, 12))
            if rng.random() < 0.3:
                take_estimate(
                    state,
                    SkillEstimated(
                        agent_id=agent_id,
                        capability=capability,
                        proficiency=rng.uniform(0.05, 0.95),
                        confidence=rng.random(),
                        successes=0,
                        attempts=rng.randint(0, 30),
                        model_version="m",
                        outcomes_read=rng.choice([None, rng.randint(0, 10)]),
                    ),
                )
    ids = sorted(state.agents)
    for _ in range(agents):
        one, other = rng.sample(ids, 2)
        state.relationships[(one, other)] = state.relationships[(other, one)] = rng.uniform(0.5, 1.6)
    for j in range(5):
        state.job_members[f"job-{j}"] = frozenset(rng.sample(ids, k=rng.randint(0, 3)))
    return state


def some_outcomes(state: RouterState, rng: random.Random, agent_id: str, capability: str, n: int) -> None:
    for _ in range(n):
        learn_outcome(state, agent_id, capability, rng.random() < 0.6, rng.choice([None, rng.uniform(10, 9000)]))


def random_model(rng: random.Random, state: RouterState) -> LinearPredictor:
    parameters = SuccessModel().parameters()
    weights = {**parameters["weights"], "skill_logit": rng.uniform(0.5, 1.5), "evidence": rng.uniform(-1, 1)}
    for capability in CAPABILITIES:
        weights.update(
            {
                f"capability:{capability}": rng.uniform(-1, 1),
                f"task:{capability}:size": rng.uniform(-1, 1),
                f"version:{capability}=2": rng.uniform(-1, 1),
            }
        )
    weights.update({f"agent:{a}": rng.uniform(-1, 1) for a in state.agents if rng.random() < 0.5})
    weights.update({f"label:team={t}": rng.uniform(-1, 1) for t in TEAMS})
    scaling = {}
    for capability in CAPABILITIES:
        sizes = Running()
        for _ in range(5):
            sizes.add(rng.uniform(0, 8))
        scaling[capability] = {"size": [sizes.count, sizes.mean, sizes.m2]}
    return LinearPredictor.from_parameters({**parameters, "weights": weights, "scaling": scaling})


def random_task(rng: random.Random, n: int, state: RouterState) -> TaskSubmitted:
    return TaskSubmitted(
        task_id=f"t{n}",
        submitter="c",
        features=rng.choice([{}, {"size": rng.uniform(1, 5000)}]),
        requirements=tuple(
            CapabilityRequirement(name=c, min_proficiency=round(rng.uniform(0, 0.5), 2))
            for c in rng.sample(CAPABILITIES, k=rng.choice([1, 1, 2]))
        ),
        job_id=rng.choice([None, None, f"job-{rng.randint(0, 6)}"]),
        preferred_agents=tuple(rng.sample(sorted(state.agents), k=rng.choice([0, 0, 2]))),
        preferred_tags=tuple(rng.sample(TAGS + ("gpu",), k=rng.choice([0, 0, 1, 3]))),
    )


def assert_same_decisions(state: RouterState, rng: random.Random, tasks: int = 40) -> None:
    for n in range(tasks):
        task, weights = random_task(rng, n, state), rng.choice(WEIGHTINGS)
        exclude = frozenset(rng.sample(sorted(state.agents), k=rng.choice([0, 10])))
        decision = route(task, state, weights, random.Random(n), exclude=exclude)
        if not isinstance(decision, TaskRouted):
            assert not capable(task, state, exclude)[0]
            continue
        ranked, propensities, chosen = reference_decision(task, state, weights, n, exclude)
        assert decision.chosen_agent_id == chosen
        assert [c.agent_id for c in decision.candidates] == [s.agent.agent_id for s in ranked]
        for logged, expected, propensity in zip(decision.candidates, ranked, propensities):
            # Logged values are rounded to 6 places.
            assert (logged.score, logged.predicted_success, logged.confidence, logged.propensity) == pytest.approx(
                (expected.score, expected.predicted, expected.confidence, propensity), abs=2e-6
            )
            assert logged.features == pytest.approx(expected.features, abs=2e-6)


def test_decisions_equal_the_plain_computation_with_and_without_a_model_and_as_the_fleet_changes():
    # Given a random fleet, routed without a model and then with one
    rng = random.Random(11)
    state = random_fleet(rng)
    assert_same_decisions(state, rng)
    state.predictor, state.model_version = random_model(rng, state), "v1"
    assert_same_decisions(state, rng)

    # When agents change load, labels, versions and capabilities, outcomes arrive and a record is replaced
    ids = sorted(state.agents)
    for agent_id in rng.sample(ids, 40):
        agent = state.agents[agent_id]
        state.agents[agent_id] = rng.choice(
            [
                replace(agent, in_flight=agent.in_flight + 1),
                replace(agent, labels=(("team", "blue"),)),
                replace(agent, versions=tuple((c, "2") for c in sorted(agent.capabilities))),
                replace(agent, capabilities={**agent.capabilities, "python": 0.9}),
            ]
        )
    for agent_id in rng.sample(ids, 30):
        for capability in state.agents[agent_id].capabilities:
            some_outcomes(state, rng, agent_id, capability, 2)
    state.records[(ids[0], next(iter(state.agents[ids[0]].capabilities)))] = Record(estimate=0.1)

    # Then the decisions still equal the plain computation, and again once a new model is published
    assert_same_decisions(state, rng)
    state.predictor, state.model_version = random_model(rng, state), "v2"
    assert_same_decisions(state, rng)
