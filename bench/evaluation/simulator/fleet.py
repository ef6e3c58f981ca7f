"""Simulated agents with hidden skills: what each attempt's outcome and duration will be.

The orchestrator never sees these numbers; it only sees the outcomes they produce.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

CAPABILITIES = ("python", "sql", "summarize", "translate", "review")


@dataclass
class SimulatedAgent:
    agent_id: str
    capacity: int
    skill: dict[str, float]  # hidden P(success) per capability
    declared: dict[str, float]  # what the agent claims at registration (noisy)
    duration_ms: dict[str, float]  # mean duration per capability
    drift_per_task: dict[str, float] = field(default_factory=dict)  # skill change per attempt
    attempts: int = 0

    def attempt(self, capability: str, rng: random.Random) -> tuple[bool, float]:
        self.attempts += 1
        p = self.skill[capability]
        self.skill[capability] = min(0.98, max(0.02, p + self.drift_per_task.get(capability, 0.0)))
        return rng.random() < p, rng.expovariate(1.0 / self.duration_ms[capability])


def make_fleet(size: int, seed: int = 7) -> list[SimulatedAgent]:
    rng = random.Random(seed)
    fleet = []
    for i in range(size):
        capabilities = rng.sample(CAPABILITIES, k=rng.randint(2, 4))
        skill = {c: rng.uniform(0.35, 0.95) for c in capabilities}
        fleet.append(
            SimulatedAgent(
                agent_id=f"sim-{i + 1:02}",
                capacity=rng.randint(1, 4),
                skill=skill,
                declared={c: round(min(0.99, max(0.05, p + rng.gauss(0, 0.2))), 2) for c, p in skill.items()},
                duration_ms={c: rng.uniform(40, 250) for c in capabilities},
                drift_per_task={c: rng.choice((0.0, 0.0, 0.002, -0.002)) for c in capabilities},
            )
        )
    for capability in CAPABILITIES:  # every capability has someone
        if not any(capability in a.skill for a in fleet):
            agent = rng.choice(fleet)
            agent.skill[capability], agent.declared[capability] = 0.6, 0.6
            agent.duration_ms[capability] = 120.0
    return fleet


def task_stream(count: int, seed: int = 11) -> list[tuple[str, str, int, str]]:
    """(task id, capability, priority, submitter) in submission order."""
    rng = random.Random(seed)
    weights = [5, 3, 3, 2, 1]
    return [
        (
            f"sim-task-{n + 1:05}",
            rng.choices(CAPABILITIES, weights)[0],
            rng.randint(0, 9),
            f"client-{rng.randint(1, 4)}",
        )
        for n in range(count)
    ]
