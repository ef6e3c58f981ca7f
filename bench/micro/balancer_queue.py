"""Cost of the balancer's decisions while tasks wait for room, by queue length.

    python -m bench.micro.balancer_queue --waiting 1000 4000 16000 [--events 2000]

A fleet of full agents is given `--waiting` queued tasks (several submitters, priorities and
capabilities, so fairness and priority both matter). Then, alternately, one more task is
routed and queued, and one running task completes, which frees a slot and places the most
urgent waiting task. The time of each `decide` call is the balancer's cost per event; if it
grows with the queue, an overloaded balancer slows down just when it must keep up.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from datetime import datetime, timedelta, timezone

from bench.machine import describe
from events.agents import AgentRegistered
from events.tasks import TaskAssigned, TaskCompleted, TaskQueued, TaskRouted, TaskSubmitted
from events.values import Candidate, Capability, CapabilityRequirement
from services.balancer.logic import BalancerState, decide

CAPABILITIES = ("python", "sql", "review", "search")
SUBMITTERS = ("team-a", "team-b", "team-c", "team-d")
T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def percentile(sorted_values: list[float], q: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


class Storm:
    """A fleet kept full, and a stream of tasks that must wait."""

    def __init__(self, agents: int, capacity: int, seed: int) -> None:
        self.rng = random.Random(seed)
        self.state = BalancerState()
        self.now = T0
        self.next_id = 0
        self.running: list[tuple[str, str, int]] = []  # (task, agent, attempt)
        self.agents = [f"agent-{i:03}" for i in range(agents)]
        for agent_id in self.agents:
            self.apply(
                AgentRegistered(
                    agent_id=agent_id,
                    display_name=agent_id,
                    capacity=capacity,
                    capabilities=tuple(Capability(name=c, proficiency=0.8) for c in CAPABILITIES),
                )
            )

    def apply(self, event) -> list:
        self.now += timedelta(milliseconds=1)
        out = decide(self.state, event, self.now)
        self.running += [(e.task_id, e.agent_id, e.attempt) for e in out if isinstance(e, TaskAssigned)]
        return out

    def submit_and_route(self) -> tuple[TaskSubmitted, TaskRouted]:
        task_id, self.next_id = f"t{self.next_id:07}", self.next_id + 1
        ranked = self.rng.sample(self.agents, k=min(5, len(self.agents)))
        submitted = TaskSubmitted(
            task_id=task_id,
            submitter=self.rng.choice(SUBMITTERS),
            priority=self.rng.choice((1, 5, 5, 5, 9)),
            requirements=(CapabilityRequirement(name=self.rng.choice(CAPABILITIES)),),
        )
        routed = TaskRouted(
            task_id=task_id,
            chosen_agent_id=ranked[0],
            policy="bench",
            reason="bench",
            candidates=tuple(
                Candidate(agent_id=a, score=1.0, predicted_success=0.7, propensity=1.0 if n == 0 else 0.0)
                for n, a in enumerate(ranked)
            ),
        )
        return submitted, routed

    def completion(self) -> TaskCompleted:
        task_id, agent_id, attempt = self.running.pop(self.rng.randrange(len(self.running)))
        return TaskCompleted(task_id=task_id, agent_id=agent_id, attempt=attempt, duration_ms=10)


def run(waiting: int, events: int, agents: int = 20, capacity: int = 4, seed: int = 1) -> dict:
    storm = Storm(agents, capacity, seed)
    queued = 0
    while queued < waiting:
        for event in storm.submit_and_route():
            queued += sum(isinstance(e, TaskQueued) for e in storm.apply(event))
    queue_ms, completion_ms = [], []
    for _ in range(events):
        submitted, routed = storm.submit_and_route()
        storm.apply(submitted)
        started = time.perf_counter_ns()
        storm.apply(routed)
        queue_ms.append((time.perf_counter_ns() - started) / 1e6)
        completed = storm.completion()
        started = time.perf_counter_ns()
        storm.apply(completed)
        completion_ms.append((time.perf_counter_ns() - started) / 1e6)
    queue_ms.sort()
    completion_ms.sort()
    return {
        "waiting": waiting,
        "events": events,
        "agents": agents,
        "capacity": capacity,
        "queue_one_ms": {"p50": round(percentile(queue_ms, 0.5), 4), "p99": round(percentile(queue_ms, 0.99), 4)},
        "complete_one_ms": {
            "p50": round(percentile(completion_ms, 0.5), 4),
            "p99": round(percentile(completion_ms, 0.99), 4),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--waiting", type=int, nargs="+", default=[1000, 4000, 16000])
    parser.add_argument("--events", type=int, default=2000, help="queued tasks and completions timed at each length")
    args = parser.parse_args()
    print(json.dumps({"runs": [run(w, args.events) for w in args.waiting], "machine": describe()}, indent=2))


if __name__ == "__main__":
    main()
