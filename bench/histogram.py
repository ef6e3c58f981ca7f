"""A latency histogram with buckets of constant relative width, for percentiles without keeping samples.

Every bucket is `precision` wider than the one before, so any percentile is known to within
that fraction of its value, from microseconds to minutes, in a few thousand counters at most.
A percentile reads the upper bound of its bucket (capped at the largest value seen): it can
overstate a latency by `precision`, never understate it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

PERCENTILES = {"p50": 0.50, "p95": 0.95, "p99": 0.99, "p999": 0.999}


@dataclass
class Histogram:
    lowest: float = 0.01  # values at or below share the first bucket (ms: 10 µs)
    precision: float = 0.01
    counts: dict[int, int] = field(default_factory=dict)
    count: int = 0
    largest: float = 0.0

    def record(self, value: float) -> None:
        index = 0 if value <= self.lowest else math.ceil(math.log(value / self.lowest, 1 + self.precision))
        self.counts[index] = self.counts.get(index, 0) + 1
        self.count += 1
        self.largest = max(self.largest, value)

    def upper_bound(self, index: int) -> float:
        return self.lowest * (1 + self.precision) ** index

    def percentile(self, q: float) -> float:
        if not 0 < q <= 1:
            raise ValueError(f"a percentile is in (0, 1], got {q}")
        if not self.count:
            return 0.0
        rank = math.ceil(q * self.count)  # the value below which q of all values lie
        seen = 0
        for index in sorted(self.counts):
            seen += self.counts[index]
            if seen >= rank:
                return min(self.upper_bound(index), self.largest)
        return self.largest

    def summary(self, digits: int = 2) -> dict[str, float]:
        return {name: round(self.percentile(q), digits) for name, q in PERCENTILES.items()}
