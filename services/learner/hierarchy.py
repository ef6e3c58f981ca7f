"""Partial pooling of an agent's skill across capabilities, beside the pooling across agents.

An agent's rate on a capability is modelled as the capability's rate (what the cohort prior
pools across agents), plus the agent's *level* (how much better or worse than the fleet it does
across the board), plus what is particular to the pair. Both spreads are learned from the
records by the method of moments, and set how much is pooled:

- `level_strength`: outcomes of fleet-rate evidence an agent's level starts from, the sampling
  noise over the spread of levels: agents that differ little are pulled together, agents that
  differ across the board keep their own level after a few outcomes;
- `pair_spread`: how far a pair's rate strays from capability rate + level. The prior of a pair
  is worth p(1 - p) / (pair spread + the level's own uncertainty) - 1 outcomes, so it is strong
  where the agent's level is well known and pairs keep to it, weak where it is not, and it fades
  as the agent's own record on the capability grows (the Beta posterior adds that record).

An agent's level for one capability is read from its records on the *other* capabilities, so
that its record on this one, which the posterior adds, is not counted twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Mapping

from services.success_model.beta import Counts

FEWEST_AGENTS = 3  # spreads across fewer agents are noise
STRENGTH_RANGE = (2.0, 50.0)  # the pair prior's worth in outcomes, whatever the spreads say
LEVEL_STRENGTH_RANGE = (1.0, 200.0)
UNKNOWN_LEVEL_STRENGTH = 20.0  # before levels can be compared: a level needs some outcomes to count
UNKNOWN_PAIR_SPREAD = 0.04  # before pairs can be compared: a standard deviation of 0.2, a prior worth ~4 outcomes
FLOOR_SPREAD = 1e-4
LARGEST_LEVEL = 0.4  # a level never moves a prior by more than this
EDGE = 0.02  # a prior mean stays within [EDGE, 1 - EDGE]


@dataclass(frozen=True)
class Hierarchy:
    """A snapshot of the learned spreads and each capability's outcomes; not `learned` until
    FEWEST_AGENTS sharing agents have a record, and until then not used."""

    totals: Mapping[str, Counts] = field(default_factory=dict)  # capability -> the sharing agents' outcomes
    level_strength: float = UNKNOWN_LEVEL_STRENGTH
    pair_spread: float = UNKNOWN_PAIR_SPREAD
    learned: bool = False

    def level(
        self, agent_id: str, capability: str, records: Mapping[tuple[str, str], Counts], capabilities: Iterable[str]
    ) -> tuple[float, float]:
        """The agent's advantage over the fleet from its records on the other capabilities, shrunk
        towards 0 by `level_strength`, and the outcomes it rests on."""
        excess = evidence = 0.0
        for other in capabilities:
            if other != capability and (counts := records.get((agent_id, other))) and counts.attempts:
                excess += counts.successes - counts.attempts * self.others_rate(counts, other)
                evidence += counts.attempts
        level = excess / (evidence + self.level_strength)
        return max(-LARGEST_LEVEL, min(LARGEST_LEVEL, level)), evidence

    def others_rate(self, own: Counts, capability: str) -> float:
        """The capability's rate without the agent's own outcomes: an agent routing favours is most of
        the fleet's record, and measured against itself it would seem no better than the rest."""
        total = self.totals.get(capability, Counts())
        successes = max(0, total.successes - own.successes)
        return (successes + 1.0) / (max(successes, total.attempts - own.attempts) + 2.0)

    def prior(self, base: float, level: float, evidence: float) -> tuple[float, float]:
        """The pair's prior mean and its worth in outcomes, from the capability's rate and the agent's level."""
        mean = min(max(base + level, EDGE), 1.0 - EDGE)
        # The level is itself uncertain: its sampling variance over the outcomes it rests on.
        level_variance = mean * (1.0 - mean) / (evidence + self.level_strength)
        strength = mean * (1.0 - mean) / (self.pair_spread + level_variance) - 1.0
        return mean, min(max(strength, STRENGTH_RANGE[0]), STRENGTH_RANGE[1])


def refresh_due(outcomes: int, every: int) -> bool:
    """Often while records are short and each outcome moves the spreads, then every `every` outcomes."""
    return outcomes % max(1, min(every, outcomes // 10)) == 0


def learn_hierarchy(records: Mapping[tuple[str, str], Counts], sharing: Iterable[str]) -> Hierarchy:
    """Fleet rates, and the spreads of levels and of pairs, from the records of the agents that share."""
    sharing = set(sharing)
    mine = {key: c for key, c in records.items() if key[0] in sharing and c.attempts}
    totals: dict[str, Counts] = {}
    for (_, capability), counts in mine.items():
        total = totals.get(capability, Counts())
        totals[capability] = Counts(total.successes + counts.successes, total.attempts + counts.attempts)
    by_agent: dict[str, list[tuple[str, Counts]]] = {}
    for (agent_id, capability), counts in sorted(mine.items()):
        by_agent.setdefault(agent_id, []).append((capability, counts))
    if len(by_agent) < FEWEST_AGENTS:
        return Hierarchy(totals)
    level_strength = _level_strength(by_agent, Hierarchy(totals))
    snapshot = Hierarchy(totals, level_strength)
    return Hierarchy(totals, level_strength, _pair_spread(by_agent, snapshot, mine), learned=True)


def _level_strength(by_agent: Mapping[str, list[tuple[str, Counts]]], hierarchy: Hierarchy) -> float:
    """Noise over signal in the agents' levels: the outcomes at which a level is half its own, half the fleet's."""
    raw, noise = [], []
    for pairs in by_agent.values():
        attempts = sum(c.attempts for _, c in pairs)
        expected = sum(c.attempts * hierarchy.others_rate(c, capability) for capability, c in pairs)
        raw.append((sum(c.successes for _, c in pairs) - expected) / attempts)
        noise.append(sampling_variance(sum(c.successes for _, c in pairs), attempts))
    spread = between_spread(raw, noise)
    if spread <= FLOOR_SPREAD:
        return LEVEL_STRENGTH_RANGE[1]
    return min(max(0.25 / spread, LEVEL_STRENGTH_RANGE[0]), LEVEL_STRENGTH_RANGE[1])


def _pair_spread(
    by_agent: Mapping[str, list[tuple[str, Counts]]], hierarchy: Hierarchy, records: Mapping[tuple[str, str], Counts]
) -> float:
    """How far pairs' rates stray from capability rate + the agent's level, less sampling noise."""
    deviations, noise = [], []
    for agent_id, pairs in by_agent.items():
        capabilities = [c for c, _ in pairs]
        for capability, counts in pairs:
            level, evidence = hierarchy.level(agent_id, capability, records, capabilities)
            expected = min(max(hierarchy.others_rate(counts, capability) + level, EDGE), 1.0 - EDGE)
            deviations.append(counts.successes / counts.attempts - expected)
            level_noise = expected * (1.0 - expected) / (evidence + hierarchy.level_strength)
            noise.append(sampling_variance(counts.successes, counts.attempts) + level_noise)
    if len(deviations) < FEWEST_AGENTS:
        return UNKNOWN_PAIR_SPREAD
    return max(between_spread(deviations, noise, centred=True), FLOOR_SPREAD)


def smoothed(successes: float, attempts: float) -> float:
    return (successes + 1.0) / (attempts + 2.0)


def sampling_variance(successes: float, attempts: float) -> float:
    """The sampling variance of a record's rate, from its Laplace-smoothed rate (never 0)."""
    p = smoothed(successes, attempts)
    return p * (1.0 - p) / attempts


def between_spread(values: list[float], noise: list[float], centred: bool = False) -> float:
    """The variance between units beyond each one's sampling noise (DerSimonian-Laird): precision
    weights, so that a unit routing tried often does not stand for all, nor one tried once."""
    weights = [1.0 / v for v in noise]
    total = sum(weights)
    mean = 0.0 if centred else sum(w * y for w, y in zip(weights, values)) / total
    q = sum(w * (y - mean) ** 2 for w, y in zip(weights, values))
    freedom = len(values) - (0 if centred else 1)
    return max(0.0, (q - freedom) / (total - sum(w * w for w in weights) / total))
