"""What-if intervals checked where the truth is known: a dense log, every agent's outcome on every task.

    python -m bench.evaluation.whatif.validate --data ../shared/data/routerdc_7llm.csv.gz \
        [--limit 2000] [--seeds 5] [--json]

Per seed, the tasks in a shuffled order are routed by one stochastic policy (the router, learning
as it goes, drawing among all agents); only the chosen agent's outcome is revealed and learned from,
and the decisions are logged as the running system logs them. Other policies are estimated from that
log alone. Their truth is known twice over: on the same decisions (each candidate's recorded outcome
weighted by the policy's chances — the quantity the estimators estimate), and by replaying the policy
for real on the same tasks, learning from its own choices. An interval covers when the truth lies in it.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from dataclasses import replace

import numpy as np

from bench.evaluation.offline import apply_estimate, fleet_of, new_learner, router_fleet, run_routing, shuffled
from bench.evaluation.online import PUBLISH_EVERY, LoggedTask, load
from bench.evaluation.whatif.decisions import LoggedDecision
from bench.evaluation.whatif.policies import AgentPolicy, Policy, RandomPolicy, RouterPolicy, parse
from bench.evaluation.whatif.report import evaluate
from events.tasks import TaskRouted
from services.learner.logic import Outcome, estimates, learn, publish_model
from services.router.logic import Weights, learn_outcome, route
from services.router.state import RouterFold

LOGGING = Weights(temperature=0.1, top_k=10)  # stochastic over every agent, so each policy is in the log's support
POLICIES = ("router", "greedy", "router:temperature=0.02,top_k=2", "router:temperature=0.3", "random", "best-single")
ESTIMATORS = ("ips", "snips", "dr")


def logged_run(tasks: list[LoggedTask], weights: Weights, seed: int) -> list[LoggedDecision]:
    """The router with its learner over the tasks, as `run_routing` does, keeping every decision."""
    agents, capabilities = fleet_of(tasks)
    state, learner, rng = router_fleet(agents, capabilities), new_learner(agents, capabilities), random.Random(seed)
    for capability in capabilities:
        for skill in estimates(learner, capability):
            apply_estimate(state, skill)
    logged = []
    for n, task in enumerate(tasks, 1):
        decision = route(task.submitted("whatif-validation"), state, weights, rng)
        assert isinstance(decision, TaskRouted)
        agent = decision.chosen_agent_id
        success = task.outcomes[agent]
        logged.append(
            LoggedDecision(task.task_id, None, decision.candidates, agent, decision.propensity, float(success))
        )
        learn_outcome(state, agent, task.capability, success)
        learn(learner, Outcome(task.task_id, agent, task.capability, success, task.features))
        for skill in estimates(learner, task.capability):
            apply_estimate(state, skill)
        if n % PUBLISH_EVERY == 0:
            RouterFold(state=state).apply(publish_model(learner))
    return logged


def truth_on_the_log(policy: Policy, decisions: list[LoggedDecision], tasks: list[LoggedTask]) -> float:
    total = 0.0
    for decision, task in zip(decisions, tasks):
        chances = policy.probabilities(decision)
        total += float(chances @ np.array([task.outcomes[c.agent_id] for c in decision.candidates], dtype=float))
    return total / len(decisions)


def replayed(policy: Policy, tasks: list[LoggedTask], seed: int) -> float:
    """The policy's success run for real on the tasks (in expectation where that is exact)."""
    if isinstance(policy, RandomPolicy):
        return float(np.mean([np.mean(list(t.outcomes.values())) for t in tasks]))
    if isinstance(policy, AgentPolicy):
        return float(np.mean([t.outcomes[policy.agent_id] for t in tasks]))
    assert isinstance(policy, RouterPolicy)
    return run_routing(tasks, policy.weights, seed).success_rate


def validate(tasks: list[LoggedTask], seeds: int, resamples: int, log=print) -> dict:
    today = Weights()
    specs = [parse(spec, today) for spec in POLICIES]
    rows = []
    for seed in range(seeds):
        order = shuffled(tasks, seed)
        decisions = logged_run(order, LOGGING, seed)
        results = evaluate(decisions, specs, today, resamples=resamples, seed=seed)
        for spec, result in zip(specs, results):
            policy = (
                spec
                if not isinstance(spec, str)
                else AgentPolicy(
                    result.policy,
                    result.policy.split("(")[1].rstrip(")"),
                    RouterPolicy("greedy", replace(today, top_k=1)),
                )
            )
            e = result.estimates
            row = {
                "policy": result.policy,
                "seed": seed,
                "on_log": truth_on_the_log(policy, decisions, order),
                "replayed": replayed(policy, order, seed + 1000),
                "ess": e.effective_sample_size,
                **{name: getattr(e, name).__dict__ for name in ESTIMATORS},
            }
            rows.append(row)
            log(
                f"seed {seed} {row['policy']}: on the log {row['on_log']:.3f}, replayed {row['replayed']:.3f}, "
                f"SNIPS {e.snips.value:.3f} [{e.snips.low:.3f}, {e.snips.high:.3f}]"
            )
    coverage = {
        truth: {
            name: float(np.mean([r[name]["low"] <= r[truth] <= r[name]["high"] for r in rows])) for name in ESTIMATORS
        }
        for truth in ("on_log", "replayed")
    }
    return {"tasks": len(tasks), "seeds": seeds, "logging": LOGGING.__dict__, "rows": rows, "coverage": coverage}


def table(result: dict) -> str:
    lines = [
        f"{result['tasks']} tasks, {result['seeds']} seeds, logged by the router at temperature "
        f"{result['logging']['temperature']} over every agent",
        "| policy | seed | truth on the log | replayed | IPS [95% CI] | SNIPS [95% CI] | DR [95% CI] | ESS |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        cells = " | ".join(f"{r[n]['value']:.3f} [{r[n]['low']:.3f}, {r[n]['high']:.3f}]" for n in ESTIMATORS)
        lines.append(
            f"| {r['policy']} | {r['seed']} | {r['on_log']:.3f} | {r['replayed']:.3f} | {cells} | {r['ess']:.0f} |"
        )
    lines.append("")
    lines.append("| coverage of | IPS | SNIPS | DR |")
    lines.append("|---|---|---|---|")
    for truth, label in (("on_log", "truth on the logged decisions"), ("replayed", "value replayed for real")):
        c = result["coverage"][truth]
        lines.append(f"| {label} | " + " | ".join(f"{c[n]:.0%}" for n in ESTIMATORS) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.evaluation.whatif.validate", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--data", required=True, help="the dense outcome log (csv or csv.gz)")
    parser.add_argument("--limit", type=int, default=2000, help="the first N tasks (default 2000)")
    parser.add_argument("--seeds", type=int, default=5, help="orders and logging runs (default 5)")
    parser.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples (default 1000)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = parser.parse_args(argv)
    result = validate(
        load(args.data, args.limit),
        args.seeds,
        args.resamples,
        log=lambda line: print(line, file=sys.stderr, flush=True),
    )
    print(json.dumps(result, indent=2) if args.json else table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
