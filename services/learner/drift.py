"""Skill trajectories: a change detector and a short-term trend per (agent, capability)."""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Literal

from river import drift

RECENT_WEIGHT = 0.05  # exponential weight of the newest outcome in the short-term rate (half-life ~14)
DETECTOR_CLOCK = 8  # outcomes between checks for a change: faster detection for a little more work
REMEMBERED = 256  # latest outcomes kept to locate a change once one is detected
SHORTEST_REGIME = 5


@dataclass(frozen=True)
class SkillShift:
    """A detected change in an agent's success rate on one capability."""

    agent_id: str
    capability: str
    direction: Literal["improved", "degraded"]
    before: float  # proficiency estimate just before the change was detected
    after: float  # estimate from the outcomes since the change
    attempts: int  # the agent's attempts on the capability when it was detected


class Trajectory:
    def __init__(self, delta: float = 0.002) -> None:
        self.detector = drift.ADWIN(delta=delta, clock=DETECTOR_CLOCK)
        self.latest: deque[bool] = deque(maxlen=REMEMBERED)
        self.recent_rate: float | None = None

    def update(self, success: bool) -> tuple[int, int] | None:
        """When a change is detected: the outcomes since it began, as (successes, attempts)."""
        value = float(success)
        self.latest.append(bool(success))
        self.recent_rate = (
            value if self.recent_rate is None else (self.recent_rate + RECENT_WEIGHT * (value - self.recent_rate))
        )
        self.detector.update(value)
        if not self.detector.drift_detected:
            return None
        # ADWIN says that the rate changed, not where: its remaining window still holds old outcomes.
        since = change_point(list(self.latest))
        return sum(since), len(since)

    @property
    def trend(self) -> float:
        """Short-term rate minus the rate over the detector's window: positive while improving."""
        if self.recent_rate is None:
            return 0.0
        return self.recent_rate - float(self.detector.estimation)


def change_point(outcomes: list[bool]) -> list[bool]:
    """The outcomes after the split that best separates two success rates (largest z statistic)."""
    n, total = len(outcomes), sum(outcomes)
    best, best_score, before = max(0, n - SHORTEST_REGIME), -1.0, 0
    for split in range(1, n):
        before += outcomes[split - 1]
        if split < SHORTEST_REGIME or n - split < SHORTEST_REGIME:
            continue
        gap = abs(before / split - (total - before) / (n - split))
        score = gap * math.sqrt(split * (n - split) / n)
        if score > best_score:
            best, best_score = split, score
    return outcomes[best:]
