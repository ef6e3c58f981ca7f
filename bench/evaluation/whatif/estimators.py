"""Off-policy estimators over logged decisions, written out: inverse propensity scoring (IPS),
self-normalised IPS (SNIPS) and doubly robust (DR), each with a percentile bootstrap interval, and
the effective sample size of the importance weights.

With w = target probability / logged probability of the action taken, r its reward, q̂ the reward
model's prediction for it and q̄ = Σ_a target(a)·q̂(a):
  IPS = mean(w·r)    SNIPS = Σ w·r / Σ w    DR = mean(q̄ + w·(r − q̂))    ESS = (Σ w)² / Σ w²
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

RESAMPLES = 1000
LEVEL = 0.95
CHUNK = 50  # resamples drawn at once: bounded memory on a long log


@dataclass(frozen=True)
class Interval:
    value: float
    low: float
    high: float

    def covers(self, truth: float) -> bool:
        return self.low <= truth <= self.high


@dataclass(frozen=True)
class Estimates:
    ips: Interval
    snips: Interval
    dr: Interval
    effective_sample_size: float
    decisions: int


@dataclass(frozen=True)
class Logged:
    """Per logged decision: reward, logged probability, target probability of the action taken,
    reward model's prediction for it, and the target's expected prediction over all candidates."""

    reward: np.ndarray
    logged: np.ndarray
    target: np.ndarray
    predicted: np.ndarray
    expected: np.ndarray

    def __post_init__(self) -> None:
        if len({len(a) for a in (self.reward, self.logged, self.target, self.predicted, self.expected)}) != 1:
            raise ValueError("every per-decision array must have one value per decision")
        if len(self.logged) and (self.logged <= 0).any():
            raise ValueError("a logged probability must be above 0: the action was taken")


def point_estimates(data: Logged, rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """IPS, SNIPS and DR for each row of indices into the decisions (all of them when none)."""
    rows = np.arange(len(data.reward))[None, :] if rows is None else rows
    w = data.target[rows] / data.logged[rows]
    weighted = w * data.reward[rows]
    ips = weighted.mean(axis=1)
    total = w.sum(axis=1)
    snips = np.divide(weighted.sum(axis=1), total, out=np.full(len(rows), np.nan), where=total > 0)
    dr = (data.expected[rows] + w * (data.reward[rows] - data.predicted[rows])).mean(axis=1)
    return ips, snips, dr


def effective_sample_size(data: Logged) -> float:
    w = data.target / data.logged
    squares = float((w**2).sum())
    return float(w.sum()) ** 2 / squares if squares else 0.0


def estimate(data: Logged, *, resamples: int = RESAMPLES, level: float = LEVEL, seed: int = 0) -> Estimates:
    n = len(data.reward)
    if n == 0:
        nothing = Interval(math.nan, math.nan, math.nan)
        return Estimates(nothing, nothing, nothing, 0.0, 0)
    rng = np.random.default_rng(seed)
    points = point_estimates(data)
    drawn = [[], [], []]
    for start in range(0, resamples, CHUNK):
        rows = rng.integers(0, n, size=(min(CHUNK, resamples - start), n))
        for kept, values in zip(drawn, point_estimates(data, rows)):
            kept.append(values)
    tail = (1.0 - level) / 2 * 100
    intervals = []
    for point, values in zip(points, drawn):
        values = np.concatenate(values)
        values = values[~np.isnan(values)]
        low, high = np.percentile(values, [tail, 100 - tail]) if len(values) else (math.nan, math.nan)
        intervals.append(Interval(float(point[0]), float(low), float(high)))
    return Estimates(*intervals, effective_sample_size=effective_sample_size(data), decisions=n)
