"""What an agent's own record says about one capability: a Beta posterior over its success rate."""

from __future__ import annotations

import math
from dataclasses import dataclass

EDGE = 1e-6  # keeps a prior mean of exactly 0 or 1 from making the posterior degenerate


@dataclass(frozen=True)
class Counts:
    successes: int = 0
    attempts: int = 0

    def plus(self, success: bool) -> Counts:
        return Counts(self.successes + bool(success), self.attempts + 1)

    @property
    def failures(self) -> int:
        return self.attempts - self.successes


@dataclass(frozen=True)
class Beta:
    alpha: float
    beta: float
    prior_mean: float
    prior_strength: float

    @classmethod
    def posterior(cls, prior_mean: float, prior_strength: float, counts: Counts) -> Beta:
        prior_mean = min(max(prior_mean, EDGE), 1.0 - EDGE)
        return cls(
            prior_mean * prior_strength + counts.successes,
            (1.0 - prior_mean) * prior_strength + counts.failures,
            prior_mean,
            prior_strength,
        )

    @property
    def mean(self) -> float:
        return self.alpha / (self.alpha + self.beta)

    @property
    def variance(self) -> float:
        n = self.alpha + self.beta
        return self.alpha * self.beta / (n * n * (n + 1.0))

    @property
    def confidence(self) -> float:
        # The share of the prior's spread the agent's own outcomes have removed: 0 before its first
        # outcome however informed the prior is, towards 1 as its record grows.
        m, s = self.prior_mean, self.prior_strength
        prior_variance = m * (1.0 - m) / (s + 1.0)
        return min(1.0, max(0.0, 1.0 - math.sqrt(self.variance / prior_variance)))
