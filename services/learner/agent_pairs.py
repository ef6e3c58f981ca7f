"""How pairs of agents do together, from tasks of the same job or passed from one to the other.

Each outcome an agent has in a job counts for its pairs with every agent already in that job;
what was expected is the agent's own predicted success, so lift says whether working
alongside the other agent went better than the agent alone would have done.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass

LIFT_SMOOTHING = 1.0  # pseudo-outcomes at exactly the expected rate: few joint tasks say little


@dataclass(frozen=True)
class PairRecord:
    joint_tasks: int = 0
    joint_successes: int = 0
    expected_successes: float = 0.0

    def plus(self, success: bool, expected: float) -> PairRecord:
        return PairRecord(
            self.joint_tasks + 1, self.joint_successes + bool(success), self.expected_successes + expected
        )

    @property
    def success_rate(self) -> float:
        return self.joint_successes / self.joint_tasks if self.joint_tasks else 0.0

    @property
    def lift(self) -> float:
        return (self.joint_successes + LIFT_SMOOTHING) / (self.expected_successes + LIFT_SMOOTHING)

    @property
    def confidence(self) -> float:
        return 1.0 - 1.0 / math.sqrt(self.joint_tasks + 1.0)


def pair(one: str, other: str) -> tuple[str, str]:
    return (one, other) if one < other else (other, one)


class Relationships:
    def __init__(self, remembered_groups: int = 10_000) -> None:
        self.pairs: dict[tuple[str, str], PairRecord] = {}
        self.groups: OrderedDict[str, list[str]] = OrderedDict()  # group -> agents, in order of arrival
        self.remembered_groups = remembered_groups

    def observe(self, group_id: str, agent_id: str, success: bool, expected: float) -> list[tuple[str, str]]:
        """Counts the outcome for each pair it forms; returns the pairs that changed."""
        members = self.groups.setdefault(group_id, [])
        self.groups.move_to_end(group_id)
        changed = []
        for other in members:
            if other != agent_id:
                key = pair(agent_id, other)
                self.pairs[key] = self.pairs.get(key, PairRecord()).plus(success, expected)
                changed.append(key)
        if agent_id not in members:
            members.append(agent_id)
        while len(self.groups) > self.remembered_groups:  # old jobs are finished; keep memory bounded
            self.groups.popitem(last=False)
        return changed
