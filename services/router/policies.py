"""Routing policies to compare: ours and the usual baselines.

Every policy answers with the same decision event, propensities included, so the
simulator and offline evaluation treat them alike.
"""

from __future__ import annotations

import random
from typing import Callable

from events.tasks import TaskQueued, TaskRouted, TaskSubmitted
from events.values import Candidate
from services.router.logic import RouterState, Weights, capable, route

Policy = Callable[..., TaskRouted | TaskQueued]


def _baseline(
    name: str, task: TaskSubmitted, state: RouterState, rng: random.Random, exclude: frozenset[str], pick_from
) -> TaskRouted | TaskQueued:
    agents, _ = capable(task, state, exclude)
    if not agents:
        return TaskQueued(
            task_id=task.task_id,
            capability=task.requirements[0].name,
            reason=f"no routable agent has {', '.join(r.name for r in task.requirements)}",
        )
    agents = sorted(agents, key=lambda a: a.agent_id)
    chosen, propensities = pick_from(agents)
    return TaskRouted(
        task_id=task.task_id,
        policy=name,
        chosen_agent_id=chosen.agent_id,
        propensity=propensities[chosen.agent_id],
        reason=f"{name}: {chosen.agent_id} of {len(agents)} capable",
        candidates=tuple(
            Candidate(
                agent_id=a.agent_id,
                score=0.0,
                propensity=propensities[a.agent_id],
                features={"load": a.in_flight / a.capacity},
            )
            for a in agents
        ),
    )


def random_policy(task, state, weights, rng, exclude=frozenset()):
    def pick(agents):
        return rng.choice(agents), {a.agent_id: 1.0 / len(agents) for a in agents}

    return _baseline("random", task, state, rng, exclude, pick)


def round_robin_policy(task, state, weights, rng, exclude=frozenset()):
    def pick(agents):
        capability = task.requirements[0].name
        turn = state.round_robin.get(capability, 0)
        state.round_robin[capability] = turn + 1
        chosen = agents[turn % len(agents)]
        return chosen, {a.agent_id: float(a is chosen) for a in agents}

    return _baseline("round_robin", task, state, rng, exclude, pick)


def least_loaded_policy(task, state, weights, rng, exclude=frozenset()):
    def pick(agents):
        chosen = min(agents, key=lambda a: (a.in_flight / a.capacity, a.agent_id))
        return chosen, {a.agent_id: float(a is chosen) for a in agents}

    return _baseline("least_loaded", task, state, rng, exclude, pick)


POLICIES: dict[str, Policy] = {
    "orchestrator": route,
    "random": random_policy,
    "round_robin": round_robin_policy,
    "least_loaded": least_loaded_policy,
}


def policy(name: str) -> Policy:
    try:
        return POLICIES[name]
    except KeyError:
        raise ValueError(f"unknown routing policy {name!r}; choose from {', '.join(POLICIES)}") from None


__all__ = ["POLICIES", "policy", "Weights"]
