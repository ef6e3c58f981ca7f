"""Cross-agent priors: what agents with a similar profile achieved, for an agent with little record.

Only agents whose memory profile allows sharing contribute. An agent that forbids it still
receives a prior from the others; its own outcomes stay its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from events.agents import AgentRegistered
from services.learner.hierarchy import between_spread, sampling_variance
from services.success_model.beta import Counts

DECLARED_WEIGHT = 2.0  # pseudo-outcomes the declared proficiency is worth in a cohort prior


@dataclass(frozen=True)
class AgentProfile:
    agent_id: str
    declared: Mapping[str, float] = field(default_factory=dict)  # capability -> declared proficiency
    labels: Mapping[str, str] = field(default_factory=dict)
    share_experience: bool = False
    versions: Mapping[str, str] = field(default_factory=dict)  # capability -> declared version, where given

    @classmethod
    def from_registration(cls, event: AgentRegistered) -> AgentProfile:
        return cls(
            agent_id=event.agent_id,
            declared={c.name: c.proficiency for c in event.capabilities},
            labels=dict(event.labels),
            versions={c.name: c.version for c in event.capabilities if c.version},
            share_experience=bool(event.memory_profile and event.memory_profile.share_experience),
        )


def similarity(one: AgentProfile, other: AgentProfile) -> float:
    """In (0, 1]: how much `other`'s record should count towards `one`'s prior."""
    mine, theirs = set(one.declared), set(other.declared)
    skills = len(mine & theirs) / len(mine | theirs) if mine | theirs else 1.0
    keys = set(one.labels) | set(other.labels)
    labels = sum(one.labels.get(k) == other.labels.get(k) for k in keys) / len(keys) if keys else 1.0
    # Differing labels halve the weight rather than zero it: the capability itself is still shared.
    return skills * (0.5 + 0.5 * labels)


class Cohorts:
    """Sharing agents by capability, and the similarity between profiles (cached: profiles change rarely)."""

    def __init__(self) -> None:
        self.profiles: dict[str, AgentProfile] = {}
        self.sharing: dict[str, list[str]] = {}  # capability -> sharing agents declaring it, sorted
        self._similarity: dict[tuple[str, str], float] = {}

    def register(self, profile: AgentProfile) -> None:
        self.profiles[profile.agent_id] = profile
        self._similarity = {pair: w for pair, w in self._similarity.items() if profile.agent_id not in pair}
        for members in self.sharing.values():
            if profile.agent_id in members:
                members.remove(profile.agent_id)
        if profile.share_experience:
            for capability in profile.declared:
                members = self.sharing.setdefault(capability, [])
                members.append(profile.agent_id)
                members.sort()

    def sharing_agents(self) -> list[str]:
        return sorted(a for a, p in self.profiles.items() if p.share_experience)

    def declaring(self, capability: str) -> list[str]:
        return sorted(a for a, p in self.profiles.items() if capability in p.declared)

    def profile(self, agent_id: str) -> AgentProfile:
        # An agent never registered shares nothing: sharing is opt-in.
        return self.profiles.get(agent_id) or AgentProfile(agent_id=agent_id)

    def weight(self, one: str, other: str) -> float:
        if (one, other) not in self._similarity:
            self._similarity[(one, other)] = similarity(self.profile(one), self.profile(other))
        return self._similarity[(one, other)]

    def prior(self, agent_id: str, capability: str, records: Mapping[tuple[str, str], Counts]) -> float:
        """The similarity-weighted success rate of the other sharing agents, starting from the declared proficiency.

        Pooled over outcomes while the agents' rates differ by little more than their sampling noise:
        routing stops trying an agent after a bad start, so short records are biased low and a plain
        average of agents would be too. Where the rates differ more than that, each record is worth
        fewer outcomes the more they differ (a random-effects mean), towards one agent one vote, and
        the fleet as a whole says less against the agent's own declaration: routing tries the best
        agent most, and pooled over outcomes, its rate would be promised to any agent not tried yet."""
        others = [
            (self.weight(agent_id, other), counts)
            for other in self.sharing.get(capability, ())
            if other != agent_id and (counts := records.get((other, capability))) and counts.attempts
        ]
        noise = [sampling_variance(counts.successes, counts.attempts) for _, counts in others]
        spread = between_spread([c.successes / c.attempts for _, c in others], noise) if len(others) > 1 else 0.0
        successes = attempts = 0.0
        for (w, counts), variance in zip(others, noise):
            # The outcomes the record is worth: all of them without a spread, fewer the larger it is.
            worth = w * counts.attempts * variance / (variance + spread)
            successes += worth * counts.successes / counts.attempts
            attempts += worth
        declared = self.profile(agent_id).declared.get(capability, 0.5)
        return (declared * DECLARED_WEIGHT + successes) / (DECLARED_WEIGHT + attempts)
