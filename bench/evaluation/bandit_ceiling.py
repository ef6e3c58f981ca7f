"""How close standard bandit policies come to the best agent per capability chosen in hindsight.

    python -m bench.evaluation.bandit_ceiling --data ../shared/data/routerdc_7llm.csv.gz [--orders 8] [--seeds 16]

Each policy routes every task of the log to one agent and learns only that agent's logged
outcome (bandit feedback), as the running system does. This is not the product's router: it is
a yardstick for what the data allows. Whatever a policy loses to the hindsight choice is the
price of finding out which agent is best, and the gaps between agents on one capability are
small (0.6 to 8 points on this log).

Two spreads are reported for each policy: over reshuffles of the log (how much of a figure is
the order's luck), and over the policy's own random seeds on the log's order, which is the order
`orchestrator evaluate` submits in (how much is the draws' luck).

Policies, each per capability over its agents' Beta posteriors (prior: the capability's rate
so far, worth two outcomes):
- thompson xS: one draw from each posterior with S times its evidence, the best draw wins
  (S = 1 is plain Thompson sampling; larger S explores less);
- thompson x4, empirical-Bayes prior: the prior's strength set from how far apart the agents'
  rates on the capability are (close agents, strong prior), by the method of moments;
- thompson x4, told the related capabilities: an agent's record on the capabilities of the same
  benchmark family (`FAMILIES`: Chinese exams, mathematics, code) counts at half weight as
  evidence of its advantage, which no learner could know better than being told;
- kl-ucb: the largest rate whose KL divergence from the agent's mean is within log(n) / n_agent
  (and a quarter of that bound, which explores less);
- ucb1: the mean plus sqrt(2 ln n / n_agent);
- greedy: the best posterior mean.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import asdict, dataclass

import numpy as np

from bench.evaluation.outcome_log import LoggedTask, load
from bench.evaluation.simulator.regimes import LARGE_FLEET, simulated_log
from bench.machine import describe

PRIOR_STRENGTH = 2.0  # outcomes the capability's rate so far is worth in each agent's prior
HIERARCHY_STRENGTH = 20.0  # hierarchical sampler: outcomes an agent's level is worth on a capability
LEVEL_PRIOR = 2.0  # hierarchical sampler: outcomes at the fleet's rate in an agent's level
FAMILIES = (("ceval", "cmmlu"), ("gsm8k", "math_prealgebra"), ("humaneval", "humanevalx_js", "mbpp"))
FAMILY_WEIGHT = 0.5  # what one outcome on a related capability is worth as evidence
EMPIRICAL_BAYES_AFTER = 50  # outcomes on a capability before its agents' spread is estimated


@dataclass(frozen=True)
class Policy:
    name: str
    rule: str  # thompson, kl-ucb, ucb1 or greedy
    sharpen: float = 1.0  # thompson: the evidence multiplier
    scale: float = 1.0  # kl-ucb: the share of log(n) allowed
    empirical_bayes: bool = False
    families: bool = False


POLICIES = tuple(
    [Policy(f"thompson x{s:g}", "thompson", sharpen=s) for s in (1.0, 2.0, 4.0, 8.0)]
    + [
        Policy("thompson x4, empirical-Bayes prior", "thompson", sharpen=4.0, empirical_bayes=True),
        Policy("thompson x4, told the related capabilities", "thompson", sharpen=4.0, families=True),
        Policy("kl-ucb", "kl-ucb"),
        Policy("kl-ucb, a quarter of the bound", "kl-ucb", scale=0.25),
        Policy("ucb1", "ucb1"),
        Policy("greedy", "greedy"),
        Policy("hierarchical thompson", "hierarchical"),
    ]
)


def matrix(tasks: list[LoggedTask]) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """Capability index, prompt-length quartile within the capability, outcomes (task x agent), capability names."""
    agents = sorted({a for t in tasks for a in t.outcomes})
    capabilities = sorted({t.capability for t in tasks})
    capability = np.array([capabilities.index(t.capability) for t in tasks])
    outcomes = np.array([[t.outcomes[a] for a in agents] for t in tasks], dtype=np.int64)
    chars = np.array([t.features.get("prompt_chars", 0.0) for t in tasks], dtype=float)  # a log may lack it
    quartile = np.zeros(len(tasks), dtype=np.int64)
    for c in range(len(capabilities)):
        mine = capability == c
        edges = np.quantile(chars[mine], [0.25, 0.5, 0.75])
        quartile[mine] = np.searchsorted(edges, chars[mine], side="right")
    return capability, quartile, outcomes, capabilities


def hindsight(groups: np.ndarray, outcomes: np.ndarray) -> float:
    """Success rate of the best agent of each group, chosen knowing every outcome."""
    return sum(outcomes[groups == g].sum(axis=0).max() for g in np.unique(groups)) / len(outcomes)


def family_weights(names: list[str]) -> np.ndarray:
    """capability x capability: FAMILY_WEIGHT between two capabilities of one family, else 0."""
    weights = np.zeros((len(names), len(names)))
    for family in FAMILIES:
        members = [names.index(c) for c in family if c in names]
        for one in members:
            for other in members:
                if one != other:
                    weights[one, other] = FAMILY_WEIGHT
    return weights


def kl_bernoulli(p: float, q: float) -> float:
    p, q = min(max(p, 1e-12), 1 - 1e-12), min(max(q, 1e-12), 1 - 1e-12)
    return p * math.log(p / q) + (1 - p) * math.log((1 - p) / (1 - q))


def kl_upper(mean: float, tries: float, level: float) -> float:
    """The largest q >= mean with tries * KL(mean, q) <= level (bisection)."""
    low, high = mean, 1.0
    for _ in range(25):
        middle = (low + high) / 2
        low, high = (middle, high) if tries * kl_bernoulli(mean, middle) <= level else (low, middle)
    return low


def prior_strength(wins: np.ndarray, tries: np.ndarray, prior: float) -> float:
    """Empirical Bayes: the Beta prior whose spread matches the spread of the agents' rates,
    less the part of it that is sampling noise (method of moments), within [1, 200]."""
    rates = (wins + 1.0) / (tries + 2.0)
    between = max(float(np.var(rates) - np.mean(rates * (1 - rates) / (tries + 2.0))), 1e-4)
    return min(max(prior * (1 - prior) / between - 1.0, 1.0), 200.0)


def route(
    policy: Policy,
    capability: np.ndarray,
    outcomes: np.ndarray,
    order: np.ndarray,
    rng: np.random.Generator,
    related: np.ndarray | None = None,
) -> float:
    """The policy's success rate over the tasks in `order`, learning only from its picks."""
    return float(outcomes[order, picks(policy, capability, outcomes, order, rng, related)].mean())


def picks(
    policy: Policy,
    capability: np.ndarray,
    outcomes: np.ndarray,
    order: np.ndarray,
    rng: np.random.Generator,
    related: np.ndarray | None = None,
) -> np.ndarray:
    """The agent the policy picks for each task in `order`, learning only from its picks."""
    agents, capabilities = outcomes.shape[1], capability.max() + 1
    wins, tries = np.zeros((capabilities, agents)), np.zeros((capabilities, agents))
    chosen = np.zeros(len(order), dtype=np.int64)
    for k, i in enumerate(order):
        c = capability[i]
        w, n = wins[c].copy(), tries[c].copy()
        prior = (w.sum() + 1.0) / (n.sum() + 2.0)
        strength = (
            prior_strength(w, n, prior)
            if policy.empirical_bayes and n.sum() > EMPIRICAL_BAYES_AFTER
            else PRIOR_STRENGTH
        )
        if policy.families and related is not None:
            for other in np.flatnonzero(related[c]):
                # the agent's advantage on the related capability, carried over at the family weight
                overall = (wins[other].sum() + 1.0) / (tries[other].sum() + 2.0)
                there = (wins[other] + 1.0) / (tries[other] + 2.0) - overall
                evidence = related[c, other] * tries[other]
                w, n = w + evidence * np.clip(prior + there, 0.01, 0.99), n + evidence
        alpha, beta = strength * prior + w, strength * (1.0 - prior) + n - w
        if policy.rule == "hierarchical":
            pick = hierarchical_pick(wins, tries, c, rng)
        elif policy.rule == "thompson":
            pick = int(np.argmax(rng.beta(alpha * policy.sharpen, beta * policy.sharpen)))
        elif policy.rule in ("ucb1", "kl-ucb"):
            untried = np.flatnonzero(n == 0)
            if untried.size:
                pick = int(untried[0])
            elif policy.rule == "ucb1":
                pick = int(np.argmax(w / n + np.sqrt(2 * math.log(n.sum()) / n)))
            else:
                level = policy.scale * math.log(n.sum())
                pick = int(np.argmax([kl_upper(w[a] / n[a], n[a], level) for a in range(agents)]))
        else:
            pick = int(np.argmax(alpha / (alpha + beta)))
        chosen[k] = pick
        wins[c, pick] += outcomes[i, pick]
        tries[c, pick] += 1
    return chosen


def hierarchical_pick(wins: np.ndarray, tries: np.ndarray, c: int, rng: np.random.Generator) -> int:
    """Hierarchical Thompson sampling: an agent's level across capabilities (its advantage over each
    capability's rate, pooled over all its outcomes) is drawn from its evidence, and the agent's rate
    on capability `c` from a Beta whose prior is that level on top of the capability's rate."""
    fleet = (wins.sum(axis=1) + 1.0) / (tries.sum(axis=1) + 2.0)  # per capability
    attempts = tries.sum(axis=0)  # per agent, over every capability
    level = (wins.sum(axis=0) - (tries * fleet[:, None]).sum(axis=0)) / (attempts + LEVEL_PRIOR)
    drawn = rng.normal(level, np.sqrt(fleet[c] * (1.0 - fleet[c]) / (attempts + LEVEL_PRIOR)))
    prior = np.clip(fleet[c] + drawn, 0.02, 0.98)
    w, n = wins[c], tries[c]
    return int(np.argmax(rng.beta(HIERARCHY_STRENGTH * prior + w, HIERARCHY_STRENGTH * (1.0 - prior) + n - w)))


def spread(rates: list[float]) -> dict:
    return {"mean": round(float(np.mean(rates)), 4), "min": round(min(rates), 4), "max": round(max(rates), 4)}


def run(
    tasks: list[LoggedTask],
    orders: int,
    seeds: int,
    seed: int,
    policies: tuple[Policy, ...] = POLICIES,
    router_seeds: int = 0,
) -> dict:
    started = time.perf_counter()
    capability, quartile, outcomes, names = matrix(tasks)
    related = family_weights(names)
    n = len(outcomes)
    log_order = np.arange(n)
    shuffles = [log_order] + [np.random.default_rng(seed + k).permutation(n) for k in range(1, orders)]
    best, random = hindsight(capability, outcomes), outcomes.mean()
    figures = {}
    for policy in policies:
        over_orders = [
            route(policy, capability, outcomes, order, np.random.default_rng(seed + k), related)
            for k, order in enumerate(shuffles)
        ]
        over_seeds = (
            [route(policy, capability, outcomes, log_order, np.random.default_rng(s), related) for s in range(seeds)]
            if policy.rule in ("thompson", "hierarchical")
            else []
        )
        figures[policy.name] = (
            {"orders": spread(over_orders)}
            | ({"seeds_on_the_log_order": spread(over_seeds)} if over_seeds else {})
            | {"share_of_random_to_hindsight": round((np.mean(over_orders) - random) / (best - random), 3)}
        )
        print(f"bandit ceiling: {policy.name}: {figures[policy.name]}", file=sys.stderr, flush=True)
    if router_seeds:
        figures["the router (offline, as orchestrator evaluate routes)"] = router_figures(tasks, router_seeds)
    return {
        "tasks": n,
        "agents": outcomes.shape[1],
        "capabilities": len(names),
        "orders": orders,
        "seeds": seeds,
        "hindsight": {
            "best_agent_per_capability": round(best, 4),
            "best_agent_per_capability_and_prompt_quartile": round(hindsight(capability * 4 + quartile, outcomes), 4),
            "best_single_agent": round(float(outcomes.mean(axis=0).max()), 4),
            "random": round(random, 4),
        },
        "policies": figures,
        "seconds": round(time.perf_counter() - started, 1),
        "machine": describe(),
    }


def router_figures(tasks: list[LoggedTask], seeds: int) -> dict:
    """The product's router and learner (`bench.evaluation.offline`) on the log's order, over its own seeds:
    success, and its predicted success on its own decisions against the running mean's on the same."""
    from bench.evaluation.offline import EVALUATE_WEIGHTS, run_routing

    runs = [run_routing(tasks, EVALUATE_WEIGHTS, s) for s in range(seeds)]
    figures = {"seeds_on_the_log_order": spread([r.success_rate for r in runs])}
    for name in ("router", "running_mean"):
        summaries = [getattr(r, name).summary() for r in runs]
        figures[f"{name}_log_loss"] = round(float(np.mean([m["log_loss"] for m in summaries])), 4)
        figures[f"{name}_accuracy"] = round(float(np.mean([m["accuracy"] for m in summaries])), 4)
    print(f"bandit ceiling: the router: {figures}", file=sys.stderr, flush=True)
    return figures


def simulated(draws: int, seeds: int, router_seeds: int, policies: tuple[Policy, ...] = POLICIES) -> dict:
    """Each policy on `draws` fleets of the large-fleet regime, each fleet on its log's order."""
    results = [
        run(simulated_log(LARGE_FLEET, draw).tasks, 1, seeds, draw, policies, router_seeds)
        for draw in range(1, draws + 1)
    ]

    def mean_of(*path) -> float:
        values = []
        for result in results:
            value = result
            for key in path:
                value = value[key]
            values.append(value)
        return round(float(np.mean(values)), 4)

    names = list(results[0]["policies"])
    return {
        "regime": asdict(LARGE_FLEET),
        "draws": draws,
        "seeds": seeds,
        "router_seeds": router_seeds,
        "hindsight": {k: mean_of("hindsight", k) for k in results[0]["hindsight"]},
        "policies": {
            name: {
                "mean_over_draws": mean_of("policies", name, "orders", "mean")
                if "orders" in results[0]["policies"][name]
                else mean_of("policies", name, "seeds_on_the_log_order", "mean")
            }
            | (
                {
                    k: mean_of("policies", name, k)
                    for k in ("router_log_loss", "running_mean_log_loss", "router_accuracy", "running_mean_accuracy")
                }
                if "router_log_loss" in results[0]["policies"][name]
                else {}
            )
            for name in names
        },
        "per_draw": results,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", help="the outcome log (csv or csv.gz)")
    source.add_argument(
        "--simulated",
        type=int,
        metavar="DRAWS",
        help="instead: this many simulated fleets of the large-fleet regime (24 agents, 500 tasks)",
    )
    parser.add_argument("--orders", type=int, default=8, help="the log's order and this many minus one reshuffles")
    parser.add_argument(
        "--seeds", type=int, default=16, help="random seeds for each Thompson policy on the log's order (0: skip)"
    )
    parser.add_argument(
        "--router-seeds",
        type=int,
        default=0,
        help="also route with the product's router and learner over this many seeds (offline)",
    )
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    if args.simulated:
        result = simulated(args.simulated, max(0, args.seeds), max(0, args.router_seeds))
    else:
        result = run(
            load(args.data), max(1, args.orders), max(0, args.seeds), args.seed, router_seeds=max(0, args.router_seeds)
        )
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
