"""What an agent's record on related capabilities says about a capability it has tried little.

Capabilities are related when the same agents are better than the rest at both: the
similarity of two capabilities is the correlation, across the sharing agents, of each agent's
advantage over the fleet's rate on each. It is learned from the records, not declared, and
refreshed every `REFRESH_EVERY` outcomes so that the learner stays a deterministic fold.

The advantage an agent carries into a capability is its evidence-weighted advantage on the
related ones: an agent better than the fleet at mmlu is probably better at cmmlu too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable, Mapping

from services.success_model.beta import Counts

REFRESH_EVERY = 100  # outcomes between two re-estimates of the similarities
SMOOTHING = 2.0  # pseudo-outcomes at the fleet's rate in an agent's rate: a short record says little
FEWEST_AGENTS = 3  # a correlation across fewer agents is noise
LARGEST_SHIFT = 0.3  # an advantage carried over never moves a prior by more than this
FLAT = 1e-12  # spread below this is rounding, not a difference between agents


@dataclass(frozen=True)
class Related:
    """A snapshot: the fleet's rate per capability and the similarity of capability pairs."""

    fleet_rate: Mapping[str, float] = field(default_factory=dict)
    similarity: Mapping[str, Mapping[str, float]] = field(default_factory=dict)  # capability -> others -> weight

    def advantage(self, agent_id: str, capability: str, records: Mapping[tuple[str, str], Counts]) -> float:
        """The agent's advantage over the fleet on `capability`, judged from its related capabilities."""
        weighted = evidence = 0.0
        for other, weight in self.similarity.get(capability, {}).items():
            counts = records.get((agent_id, other))
            if counts and counts.attempts:
                weighted += weight * counts.attempts * (rate(counts, self.fleet_rate[other]) - self.fleet_rate[other])
                evidence += weight * counts.attempts
        return max(-LARGEST_SHIFT, min(LARGEST_SHIFT, weighted / evidence)) if evidence else 0.0


def rate(counts: Counts, fleet_rate: float) -> float:
    return (counts.successes + SMOOTHING * fleet_rate) / (counts.attempts + SMOOTHING)


def learn_related(records: Mapping[tuple[str, str], Counts], sharing: Iterable[str]) -> Related:
    """Fleet rates and capability similarities from the records of the agents that share."""
    sharing = set(sharing)
    totals: dict[str, Counts] = {}
    for (agent_id, capability), counts in records.items():
        if agent_id in sharing and counts.attempts:
            total = totals.get(capability, Counts())
            totals[capability] = Counts(total.successes + counts.successes, total.attempts + counts.attempts)
    fleet_rate = {c: (t.successes + 1.0) / (t.attempts + 2.0) for c, t in totals.items()}
    advantages: dict[str, dict[str, float]] = {}  # capability -> agent -> advantage
    for (agent_id, capability), counts in sorted(records.items()):
        if agent_id in sharing and counts.attempts:
            fleet = fleet_rate[capability]
            advantages.setdefault(capability, {})[agent_id] = rate(counts, fleet) - fleet
    similarity: dict[str, dict[str, float]] = {}
    for one in sorted(advantages):
        for other in sorted(advantages):
            if one != other and (weight := correlation(advantages[one], advantages[other])) > 0.0:
                similarity.setdefault(one, {})[other] = weight
    return Related(fleet_rate, similarity)


def correlation(one: Mapping[str, float], other: Mapping[str, float]) -> float:
    """Pearson correlation over the agents both have a record for; 0 when too few or flat."""
    agents = sorted(set(one) & set(other))
    if len(agents) < FEWEST_AGENTS:
        return 0.0
    xs, ys = [one[a] for a in agents], [other[a] for a in agents]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys))
    sxx, syy = sum((x - mx) ** 2 for x in xs), sum((y - my) ** 2 for y in ys)
    return sxy / math.sqrt(sxx * syy) if min(sxx, syy) > FLAT else 0.0
