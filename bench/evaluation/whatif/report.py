"""Every policy's estimates on the logged decisions, as a table or JSON."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from bench.evaluation.whatif.decisions import LoggedDecision
from bench.evaluation.whatif.estimators import Estimates, Logged, estimate
from bench.evaluation.whatif.policies import BEST_SINGLE, AgentPolicy, Policy, RouterPolicy
from services.router.logic import Weights


@dataclass(frozen=True)
class PolicyResult:
    policy: str
    estimates: Estimates
    unsupported: float  # mean probability the policy puts on candidates the log never takes at that decision

    def as_json(self) -> dict:
        e = self.estimates
        return {
            "policy": self.policy,
            "decisions": e.decisions,
            "effective_sample_size": _finite(e.effective_sample_size),
            "unsupported": _finite(self.unsupported),
            **{
                name: {"value": _finite(i.value), "low": _finite(i.low), "high": _finite(i.high)}
                for name, i in (("ips", e.ips), ("snips", e.snips), ("dr", e.dr))
            },
        }


def logged_for(decisions: list[LoggedDecision], policy: Policy) -> tuple[Logged, float]:
    """The estimators' inputs for one policy, and its mass outside the log's support."""
    n = len(decisions)
    reward, logged, target, predicted, expected = (np.zeros(n) for _ in range(5))
    unsupported = 0.0
    for i, d in enumerate(decisions):
        chances = policy.probabilities(d)
        ids = [c.agent_id for c in d.candidates]
        q = np.array([d.predicted(c) for c in d.candidates])
        taken = ids.index(d.agent_id) if d.agent_id in ids else None
        reward[i], logged[i] = d.reward, d.propensity
        # An agent beyond the candidates (the balancer's fallback) is one no evaluated policy picks.
        target[i] = chances[taken] if taken is not None else 0.0
        predicted[i] = q[taken] if taken is not None else 0.5
        expected[i] = float(chances @ q)
        unsupported += sum(p for c, p in zip(d.candidates, chances) if c.propensity == 0 and c.agent_id != d.agent_id)
    return Logged(reward, logged, target, predicted, expected), unsupported / n if n else 0.0


def best_single(decisions: list[LoggedDecision], today: Weights) -> AgentPolicy:
    """The agent the reward model rates highest over the log. Picking it by its own importance-weighted
    estimate instead would pick the luckiest agent and overstate its value (the winner's curse)."""
    rated: dict[str, list[float]] = {}
    for d in decisions:
        for c in d.candidates:
            rated.setdefault(c.agent_id, []).append(d.predicted(c))
    if not rated:
        raise ValueError("no logged decisions to find the best single agent in")
    best = max(sorted(rated), key=lambda a: sum(rated[a]) / len(rated[a]))
    return AgentPolicy(f"{BEST_SINGLE} ({best})", best, RouterPolicy("greedy", replace(today, top_k=1)))


def evaluate(
    decisions: list[LoggedDecision],
    policies: list[Policy | str],
    today: Weights,
    *,
    resamples: int = 1000,
    seed: int = 0,
) -> list[PolicyResult]:
    results = []
    for policy in policies:
        if policy == BEST_SINGLE:
            policy = best_single(decisions, today)
        data, unsupported = logged_for(decisions, policy)
        results.append(PolicyResult(policy.name, estimate(data, resamples=resamples, seed=seed), unsupported))
    return results


def logged_value(decisions: list[LoggedDecision]) -> float:
    return sum(d.reward for d in decisions) / len(decisions) if decisions else math.nan


def table(results: list[PolicyResult], decisions: list[LoggedDecision], skipped: dict[str, int]) -> str:
    lines = [
        f"{len(decisions)} logged decisions, success {logged_value(decisions):.3f} as logged"
        + "".join(f"; {count} {why}" for why, count in sorted(skipped.items()) if count),
        f"{'policy':<32} {'IPS [95% CI]':>22} {'SNIPS [95% CI]':>22} {'DR [95% CI]':>22} {'ESS':>8} {'off-log':>7}",
    ]
    for r in results:
        e = r.estimates
        cells = [f"{i.value:.3f} [{i.low:.3f}, {i.high:.3f}]" for i in (e.ips, e.snips, e.dr)]
        lines.append(
            f"{r.policy:<32} {cells[0]:>22} {cells[1]:>22} {cells[2]:>22} {e.effective_sample_size:>8.1f} "
            f"{r.unsupported:>7.1%}"
        )
    lines.append(
        "ESS: effective sample size of the importance weights; off-log: the policy's mean probability "
        "on candidates the log never took there (estimates miss that part)"
    )
    return "\n".join(lines)


def _finite(value: float) -> float | None:
    return None if value is None or math.isnan(value) else round(value, 6)
