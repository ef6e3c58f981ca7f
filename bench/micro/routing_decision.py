"""Time of one routing decision (the pure function) with a large fleet.

    python -m bench.micro.routing_decision --agents 1000 --decisions 5000 [--with-model]

With `--with-model` the router predicts with a published success model, as it does once the
learner has published one. Between decisions, untimed, the chosen agent's outcome is learned, so
that what the router keeps of an agent between decisions goes stale as often as in service.
"""

from __future__ import annotations

import argparse
import json
import random
import time

from bench.machine import describe
from events.tasks import TaskRouted, TaskSubmitted
from events.values import CapabilityRequirement
from services.router.logic import AgentState, RouterState, Weights, learn_outcome, route
from services.success_model.logistic import LinearPredictor, SuccessModel

CAPABILITIES = [f"skill-{i}" for i in range(20)]


def fleet(agents: int, rng: random.Random) -> RouterState:
    state = RouterState()
    for i in range(agents):
        skills = {c: round(rng.uniform(0.2, 0.95), 2) for c in rng.sample(CAPABILITIES, k=rng.randint(2, 5))}
        state.agents[f"agent-{i}"] = AgentState(
            agent_id=f"agent-{i}", capabilities=skills, capacity=rng.randint(1, 8), in_flight=rng.randint(0, 2)
        )
        for capability in skills:
            for _ in range(rng.randint(0, 20)):
                learn_outcome(state, f"agent-{i}", capability, rng.random() < 0.6, rng.uniform(100, 5000))
    return state


def percentile(sorted_values: list[float], q: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def run(agents: int, decisions: int, seed: int = 1, with_model: bool = False) -> dict:
    rng = random.Random(seed)
    state, weights = fleet(agents, rng), Weights()
    if with_model:
        state.predictor = LinearPredictor.from_parameters(SuccessModel().parameters())
    tasks = [
        TaskSubmitted(
            task_id=f"t{n}",
            submitter="bench",
            requirements=(CapabilityRequirement(name=rng.choice(CAPABILITIES), min_proficiency=0.3),),
        )
        for n in range(decisions)
    ]
    for task in tasks[:200]:  # warm-up
        route(task, state, weights, rng)
    timings = []
    for task in tasks:
        started = time.perf_counter_ns()
        decision = route(task, state, weights, rng)
        timings.append((time.perf_counter_ns() - started) / 1e6)
        # Untimed, as the live router reads it: the chosen agent's outcome replaces its record, so
        # what the router keeps of an agent between decisions is rebuilt as often as in service.
        if isinstance(decision, TaskRouted):
            learn_outcome(
                state, decision.chosen_agent_id, task.requirements[0].name, rng.random() < 0.6, rng.uniform(100, 5000)
            )
    timings.sort()
    return {
        "agents": agents,
        "decisions": decisions,
        "with_model": with_model,
        "p50_ms": round(percentile(timings, 0.50), 4),
        "p95_ms": round(percentile(timings, 0.95), 4),
        "p99_ms": round(percentile(timings, 0.99), 4),
        "max_ms": round(timings[-1], 4),
        "machine": describe(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agents", type=int, default=1000)
    parser.add_argument("--decisions", type=int, default=5000)
    parser.add_argument("--with-model", action="store_true", help="predict with a published success model")
    args = parser.parse_args()
    print(json.dumps(run(args.agents, args.decisions, with_model=args.with_model), indent=2))


if __name__ == "__main__":
    main()
