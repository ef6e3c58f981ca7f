"""`--rate max`: which rate to try next, and whether a trial at a rate kept up.

A trial is sustained when the pipeline completed (nearly) what was offered and no stage's
backlog grew without bound. The search multiplies the rate while trials are sustained, then
bisects (geometrically) between the best sustained and the lowest failed rate until they are
within `precision` of each other.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Trial:
    rate: float
    sustained: bool


@dataclass(frozen=True)
class Verdict:
    sustained: bool
    reasons: tuple[str, ...] = ()


def judge(
    *, offered_per_s: float, completed_per_s: float, backlog: list[float], lag_bound: float, keep_up: float = 0.95
) -> Verdict:
    """`backlog`: samples over the trial of the largest backlog of any stage (records behind)."""
    reasons = []
    if completed_per_s < keep_up * offered_per_s:
        reasons.append(f"completed {completed_per_s:.0f}/s of {offered_per_s:.0f}/s offered")
    if backlog and backlog[-1] > lag_bound:
        reasons.append(f"backlog {backlog[-1]:.0f} over the bound {lag_bound:.0f}")
    third = len(backlog) // 3
    if third:
        early, late = sum(backlog[:third]) / third, sum(backlog[-third:]) / third
        if late - early > lag_bound / 2:
            reasons.append(f"backlog growing: {early:.0f} -> {late:.0f}")
    return Verdict(not reasons, tuple(reasons))


def next_rate(
    trials: list[Trial],
    *,
    start: float,
    factor: float = 1.5,
    precision: float = 0.1,
    lowest: float = 1.0,
    highest: float = 100_000.0,
) -> float | None:
    """The rate of the next trial, or None when the search is done."""
    if not trials:
        return start
    good = max((t.rate for t in trials if t.sustained), default=None)
    bad = min((t.rate for t in trials if not t.sustained and (good is None or t.rate > good)), default=None)
    if bad is None:
        return None if good >= highest else min(highest, good * factor)
    if good is None:
        return None if bad / factor < lowest else bad / factor
    if bad / good <= 1 + precision:
        return None
    return math.sqrt(good * bad)


def best(trials: list[Trial]) -> float | None:
    return max((t.rate for t in trials if t.sustained), default=None)
