"""Dense outcome logs drawn from a fleet whose true skills are known, in the shape of a real log.

`LARGE_FLEET` is the shape routing finds hardest to start in: two dozen agents, a few hundred
tasks, a dozen capabilities of very different sizes, and agents that differ mostly across the
board (a strong agent is strong everywhere, `agent_spread`), less on one capability alone
(`pair_spread`). An agent's true success rate on a capability is
sigmoid(capability base + agent effect + pair effect), each effect normal on the logit scale.

Every agent has an outcome for every task, as in the shared log, so any routing policy can be
scored exactly against it (`LoggedTask`, as `bench.evaluation.bandit_ceiling` and `bench.evaluation.offline` read).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from bench.evaluation.outcome_log import LoggedTask


@dataclass(frozen=True)
class Regime:
    name: str
    agents: int
    tasks: int
    capabilities: int
    base: float  # the mean capability base rate, on the logit scale
    capability_spread: float
    agent_spread: float  # how much agents differ across the board
    pair_spread: float  # how much an agent differs on one capability from its own level
    skew: float  # capability k's share of tasks goes as 1 / k ** skew


LARGE_FLEET = Regime(
    "large fleet, few tasks",
    agents=24,
    tasks=500,
    capabilities=12,
    base=-0.3,
    capability_spread=0.5,
    agent_spread=1.0,
    pair_spread=0.3,
    skew=1.3,
)


@dataclass(frozen=True)
class SimulatedLog:
    regime: Regime
    tasks: list[LoggedTask]
    truth: dict[tuple[str, str], float]  # (agent, capability) -> its true success rate


def sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z))


def simulated_log(regime: Regime = LARGE_FLEET, seed: int = 1) -> SimulatedLog:
    rng = np.random.default_rng(seed)
    agents = [f"fleet/agent-{a + 1:02}" for a in range(regime.agents)]
    capabilities = [f"capability-{c + 1:02}" for c in range(regime.capabilities)]
    base = rng.normal(regime.base, regime.capability_spread, regime.capabilities)
    effect = rng.normal(0.0, regime.agent_spread, regime.agents)
    pair = rng.normal(0.0, regime.pair_spread, (regime.capabilities, regime.agents))
    truth = {
        (agents[a], capabilities[c]): sigmoid(base[c] + effect[a] + pair[c, a])
        for c in range(regime.capabilities)
        for a in range(regime.agents)
    }
    sizes = 1.0 / np.arange(1, regime.capabilities + 1) ** regime.skew
    drawn = rng.choice(regime.capabilities, size=regime.tasks, p=sizes / sizes.sum())
    tasks = []
    for n, c in enumerate(drawn):
        capability = capabilities[int(c)]
        outcomes = {agent: bool(rng.random() < truth[(agent, capability)]) for agent in agents}
        tasks.append(LoggedTask(f"simulated-{n + 1:05}", capability, {}, outcomes))
    return SimulatedLog(regime, tasks, truth)
