"""How close standard bandit policies come to the best agent per capability chosen in hindsight.

    python -m bench.bandit_ceiling --data ../shared/data/routerdc_7llm.csv.gz [--orders 8]

Each policy routes every task of the log to one agent and learns only that agent's logged
outcome (bandit feedback), as the running system does, over the log's order and reshuffles.
This is not the product's router: it is a yardstick for what the data allows. Whatever a
policy loses to the hindsight choice is the price of finding out which agent is best, and
the gaps between agents on one capability are small (0.6 to 8 points on this log).

Policies, each per capability over its agents' Beta posteriors (prior: the capability's rate
so far, worth two outcomes):
- thompson xS: one draw from each posterior with S times its evidence, the best draw wins
  (S = 1 is plain Thompson sampling; larger S explores less);
- ucb1: the mean plus sqrt(2 ln n / n_agent);
- greedy: the best posterior mean.
"""
from __future__ import annotations

import argparse
import json
import math
import time

import numpy as np

from bench.machine import describe
from services.learner.evaluate import load

SHARPENINGS = (1.0, 2.0, 4.0, 8.0)


def matrix(path: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Capability index, prompt-length quartile within the capability, and outcomes (task x agent)."""
    tasks = load(path)
    agents = sorted({a for t in tasks for a in t.outcomes})
    capabilities = sorted({t.capability for t in tasks})
    capability = np.array([capabilities.index(t.capability) for t in tasks])
    outcomes = np.array([[t.outcomes[a] for a in agents] for t in tasks], dtype=np.int64)
    chars = np.array([t.prompt_chars for t in tasks], dtype=float)
    quartile = np.zeros(len(tasks), dtype=np.int64)
    for c in range(len(capabilities)):
        mine = capability == c
        edges = np.quantile(chars[mine], [0.25, 0.5, 0.75])
        quartile[mine] = np.searchsorted(edges, chars[mine], side="right")
    return capability, quartile, outcomes


def hindsight(groups: np.ndarray, outcomes: np.ndarray) -> float:
    """Success rate of the best agent of each group, chosen knowing every outcome."""
    return sum(outcomes[groups == g].sum(axis=0).max() for g in np.unique(groups)) / len(outcomes)


def route(policy: str, sharpen: float, capability: np.ndarray, outcomes: np.ndarray, order: np.ndarray,
          rng: np.random.Generator) -> float:
    agents, capabilities = outcomes.shape[1], capability.max() + 1
    wins, tries = np.zeros((capabilities, agents)), np.zeros((capabilities, agents))
    total = 0
    for i in order:
        c = capability[i]
        w, n = wins[c], tries[c]
        prior = (w.sum() + 1.0) / (n.sum() + 2.0)
        alpha, beta = 2.0 * prior + w, 2.0 * (1.0 - prior) + n - w
        if policy == "thompson":
            pick = int(np.argmax(rng.beta(alpha * sharpen, beta * sharpen)))
        elif policy == "ucb1":
            untried = np.flatnonzero(n == 0)
            pick = int(untried[0]) if untried.size else int(np.argmax(w / n + np.sqrt(2 * math.log(n.sum()) / n)))
        else:
            pick = int(np.argmax(alpha / (alpha + beta)))
        success = outcomes[i, pick]
        total += success
        wins[c, pick] += success
        tries[c, pick] += 1
    return total / len(order)


def run(path: str, orders: int, seed: int) -> dict:
    started = time.perf_counter()
    capability, quartile, outcomes = matrix(path)
    n = len(outcomes)
    shuffles = [np.arange(n)] + [np.random.default_rng(seed + k).permutation(n) for k in range(1, orders)]
    policies = [("thompson", s) for s in SHARPENINGS] + [("ucb1", 1.0), ("greedy", 1.0)]
    rates = {}
    for policy, sharpen in policies:
        name = f"thompson x{sharpen:g}" if policy == "thompson" else policy
        rates[name] = [route(policy, sharpen, capability, outcomes, order, np.random.default_rng(seed + k))
                       for k, order in enumerate(shuffles)]
    best = hindsight(capability, outcomes)
    return {
        "tasks": n, "agents": outcomes.shape[1], "orders": orders,
        "hindsight": {"best_agent_per_capability": round(best, 4),
                      "best_agent_per_capability_and_prompt_quartile":
                          round(hindsight(capability * 4 + quartile, outcomes), 4),
                      "random": round(outcomes.mean(), 4)},
        "policies": {name: {"mean": round(float(np.mean(r)), 4), "min": round(min(r), 4), "max": round(max(r), 4),
                            "share_of_random_to_hindsight": round((np.mean(r) - outcomes.mean())
                                                                  / (best - outcomes.mean()), 3)}
                     for name, r in rates.items()},
        "seconds": round(time.perf_counter() - started, 1), "machine": describe(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="the outcome log (csv or csv.gz)")
    parser.add_argument("--orders", type=int, default=8, help="the log's order and this many minus one reshuffles")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    print(json.dumps(run(args.data, max(1, args.orders), args.seed), indent=2))


if __name__ == "__main__":
    main()
