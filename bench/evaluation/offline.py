"""Offline evaluation of the learner and the router on a real, dense outcome log.

    python -m bench.evaluation.offline --data ../shared/data/routerdc_7llm.csv.gz [--limit N] [--json]

Every agent attempted every task, so a routing policy is scored exactly: the log reveals the
chosen agent's recorded outcome, and only that outcome is learned from (bandit feedback).
Prediction is scored prequentially: each prediction is made before its outcome is learned.
"""

from __future__ import annotations

import argparse
import copy
import json
import random
import statistics
import time
from collections import Counter, deque
from dataclasses import dataclass, replace

import numpy as np

from bench.evaluation.online import PUBLISH_EVERY, SHARPNESS
from bench.evaluation.outcome_log import LoggedTask, load
from bench.machine import describe
from events.learning import SkillEstimated
from events.tasks import TaskRouted
from services.learner.cohort import AgentProfile
from services.learner.logic import (
    LearnerState,
    Outcome,
    assess,
    estimates,
    estimates_after,
    learn,
    posterior,
    predict,
    publish_model,
    register,
)
from services.learner.metrics import PrequentialMetrics
from services.router.logic import EXPLORATIONS, AgentState, RouterState, Weights, capable, learn_outcome, route
from services.router.policies import round_robin_policy
from services.router.state import RouterFold
from services.success_model.beta import Counts
from services.success_model.logistic import LinearPredictor, SuccessModel

DECLARED = 0.5  # nothing is known about any agent at registration
LEARNER_PACE = 0.4  # a learner reading outcomes at 40% of the router's pace, as one starved of CPU did
ROUTING_TARGET = 0.60  # 80% of the way from random to the best agent per capability in hindsight
# As `orchestrator evaluate` routes: Thompson sampling at its sharpness among every agent, no agent ever loaded.
EVALUATE_WEIGHTS = Weights(exploration="thompson", sharpness=SHARPNESS, top_k=10_000, load=0.0)


Task = LoggedTask  # one task of the log and every agent's recorded outcome on it


def fleet_of(tasks: list[Task]) -> tuple[list[str], list[str]]:
    return sorted({a for t in tasks for a in t.outcomes}), sorted({t.capability for t in tasks})


def rounded(metrics: dict[str, float]) -> dict[str, float]:
    return {k: round(v, 4) for k, v in metrics.items() if k not in ("count", "calibration_error")} | (
        {"count": int(metrics["count"])} if "count" in metrics else {}
    )


class RunningMean:
    """The baseline predictor: each (agent, capability)'s success rate so far, Laplace-smoothed."""

    def __init__(self) -> None:
        self.counts: dict[tuple[str, str], Counts] = {}

    def predict(self, agent: str, capability: str) -> float:
        c = self.counts.get((agent, capability), Counts())
        return (c.successes + 1.0) / (c.attempts + 2.0)

    def learn(self, agent: str, capability: str, success: bool) -> None:
        self.counts[(agent, capability)] = self.counts.get((agent, capability), Counts()).plus(success)


def new_learner(agents: list[str], capabilities: list[str], share: bool = True) -> LearnerState:
    state = LearnerState()
    for agent in agents:
        register(state, AgentProfile(agent, {c: DECLARED for c in capabilities}, share_experience=share))
    return state


# --- prediction, full information ---------------------------------------------------


def evaluate_prediction(tasks: list[Task]) -> dict:
    """Every (task, agent) outcome in order. All of a task's predictions are made before any of its
    outcomes is learned: otherwise one agent's outcome would give away the task's difficulty to
    the predictions for the others, which no router ever has."""
    agents, capabilities = fleet_of(tasks)
    learner, baseline = new_learner(agents, capabilities), RunningMean()
    ours, theirs = PrequentialMetrics(window=None), PrequentialMetrics(window=None)
    for task in tasks:
        predicted = [
            (a, predict(learner, a, task.capability, task.features).probability, baseline.predict(a, task.capability))
            for a in sorted(task.outcomes)
        ]
        for agent, p, q in predicted:
            success = task.outcomes[agent]
            ours.add(p, success)
            theirs.add(q, success)
            learn(learner, Outcome(task.task_id, agent, task.capability, success, task.features))
            baseline.learn(agent, task.capability, success)
    published = publish_model(learner)
    return {
        "learner": ours.summary(),
        "running_mean": theirs.summary(),
        "calibration": [b.__dict__ for b in ours.calibration()],
        "export_check": export_check(learner, published.parameters, tasks[-50:]),
        "model_weights": len(published.parameters["weights"]),
        "model_json_bytes": len(json.dumps(published.parameters)),
    }


def export_check(learner: LearnerState, parameters: dict, tasks: list[Task]) -> float:
    """Largest difference between the live model and one rebuilt from its published JSON."""
    rebuilt = LinearPredictor.from_parameters(json.loads(json.dumps(parameters)))
    worst = 0.0
    for task in tasks:
        for agent in task.outcomes:
            prediction, x = assess(learner, agent, task.capability, task.features)
            worst = max(worst, abs(prediction.probability - rebuilt.probability(x)))
    return worst


# --- routing, bandit feedback ---------------------------------------------------------


def router_fleet(agents: list[str], capabilities: list[str]) -> RouterState:
    state = RouterState()
    for agent in agents:
        state.agents[agent] = AgentState(agent_id=agent, capabilities={c: DECLARED for c in capabilities}, capacity=1)
    return state


def apply_estimate(state: RouterState, skill: SkillEstimated) -> None:
    # Exactly as the running router reads a SkillEstimated.
    RouterFold(state=state).apply(skill)


class Thompson:
    """The proposed router policy: one draw from each capable agent's Beta posterior as the learner
    holds it (its own record counted once), the best draw wins. Each candidate's propensity is
    estimated from further draws, so decisions stay evaluable offline."""

    def __init__(self, seed: int, draws: int = 256, sharpen: float = 1.0) -> None:
        self.rng, self.draws, self.sharpen = np.random.default_rng(seed), draws, sharpen

    def choose(self, task: Task, state: RouterState, learner: LearnerState) -> tuple[str, float]:
        agents = [a.agent_id for a in capable(task.submitted("offline-evaluation"), state)[0]]
        beliefs = [posterior(learner, agent, task.capability) for agent in agents]
        alpha = np.array([b.alpha for b in beliefs])[:, None] * self.sharpen
        beta = np.array([b.beta for b in beliefs])[:, None] * self.sharpen
        draws = self.rng.beta(alpha, beta, size=(len(agents), self.draws + 1))
        pick = int(draws[:, 0].argmax())
        wins = np.bincount(draws[:, 1:].argmax(axis=0), minlength=len(agents))
        return agents[pick], float(wins[pick]) / self.draws


@dataclass
class RoutingRun:
    successes: int
    decisions: int
    propensity: float  # mean probability with which the chosen agent was picked
    learner: PrequentialMetrics
    running_mean: PrequentialMetrics
    router: PrequentialMetrics  # the router's own predicted success for its choice
    by_agent: Counter

    @property
    def success_rate(self) -> float:
        return self.successes / self.decisions if self.decisions else 0.0


def run_routing(
    tasks: list[Task],
    weights: Weights,
    seed: int,
    *,
    use_learner: bool = True,
    thompson: Thompson | None = None,
    state: RouterState | None = None,
    learner: LearnerState | None = None,
    learner_pace: float = 1.0,
    watch: str | None = None,
    watch_first: int = 0,
) -> RoutingRun:
    """Tasks in order; the router picks one agent, only its outcome is revealed and learned.

    The learner's estimates reach the router as `SkillEstimated` would: the agent's own, and every
    agent's on the capability, since others' outcomes move each agent's cohort prior; its model as
    `ModelPublished` would, every `PUBLISH_EVERY` outcomes. With `learner_pace` below 1 the learner
    reads outcomes that much slower than the router does, as a learner starved of CPU would."""
    agents, capabilities = fleet_of(tasks)
    state = router_fleet(agents, capabilities) if state is None else state
    learner = new_learner(agents, capabilities) if learner is None else learner
    if use_learner:
        for capability in capabilities:
            for skill in estimates(learner, capability):
                apply_estimate(state, skill)
    rng, baseline = random.Random(seed), RunningMean()
    run = RoutingRun(0, 0, 0.0, PrequentialMetrics(None), PrequentialMetrics(None), PrequentialMetrics(None), Counter())
    unread: deque[tuple[Task, str, bool, float | None]] = deque()  # outcomes the learner has yet to read
    read = 0
    for task in tasks:
        if thompson:
            chosen, propensity = thompson.choose(task, state, learner)
            routed_prediction = None
        else:
            decision = route(task.submitted("offline-evaluation"), state, weights, rng)
            assert isinstance(decision, TaskRouted)
            chosen, propensity, routed_prediction = (
                decision.chosen_agent_id,
                decision.propensity,
                decision.predicted_success,
            )
        success = task.outcomes[chosen]
        run.decisions += 1
        run.successes += success
        run.propensity += propensity
        run.by_agent[chosen] += 1
        learn_outcome(state, chosen, task.capability, success)
        unread.append((task, chosen, success, routed_prediction))
        while unread and read < learner_pace * run.decisions:
            read += 1
            told, agent, outcome, predicted = unread.popleft()
            learned = learn(learner, Outcome(told.task_id, agent, told.capability, outcome, told.features))
            if watch is None or (agent == watch and run.by_agent[agent] <= watch_first):
                run.learner.add(learned.prediction.probability, outcome)
                run.running_mean.add(baseline.predict(agent, told.capability), outcome)
                if predicted is not None:
                    run.router.add(predicted, outcome)
            baseline.learn(agent, told.capability, outcome)
            if use_learner:
                for skill in estimates_after(learner, agent, told.capability):
                    apply_estimate(state, skill)
                if read % PUBLISH_EVERY == 0:  # as often as the running learner publishes its model
                    RouterFold(state=state).apply(publish_model(learner))
    run.propensity /= max(1, run.decisions)
    return run


def baselines(tasks: list[Task]) -> dict[str, float]:
    agents, capabilities = fleet_of(tasks)
    n = len(tasks)
    per_agent = Counter()
    per_capability: dict[str, Counter] = {c: Counter() for c in capabilities}
    for task in tasks:
        for agent, success in task.outcomes.items():
            per_agent[agent] += success
            per_capability[task.capability][agent] += success
    state, rng, round_robin = router_fleet(agents, capabilities), random.Random(0), 0
    for task in tasks:
        turn = round_robin_policy(task.submitted("offline-evaluation"), state, Weights(), rng)
        round_robin += task.outcomes[turn.chosen_agent_id]
    return {
        "random": sum(sum(t.outcomes.values()) / len(t.outcomes) for t in tasks) / n,  # its expectation
        "round_robin": round_robin / n,
        "best_single": max(per_agent.values()) / n,
        "best_per_capability": sum(max(c.values()) for c in per_capability.values()) / n,
        "oracle": sum(any(t.outcomes.values()) for t in tasks) / n,
    }


def shuffled(tasks: list[Task], seed: int) -> list[Task]:
    return random.Random(seed).sample(tasks, len(tasks))


def evaluate_routing(
    tasks: list[Task], weights: Weights, orders: int, seed: int, learner_pace: float = LEARNER_PACE
) -> dict:
    def figures(run: RoutingRun) -> dict:
        result = {
            "success_rate": round(run.success_rate, 4),
            "mean_propensity": round(run.propensity, 4),
            "prediction": {
                "learner": rounded(run.learner.summary()),
                "running_mean": rounded(run.running_mean.summary()),
            },
        }
        if run.router.pairs:
            result["prediction"]["router"] = rounded(run.router.summary())
        return result

    def across(make_run) -> dict:
        # The log's order is one draw; other orders show how much of a figure is luck.
        rates = [make_run(shuffled(tasks, seed + k), seed + k).success_rate for k in range(1, orders)]
        return (
            {
                "other_orders": orders - 1,
                "mean": round(statistics.mean(rates), 4),
                "min": round(min(rates), 4),
                "max": round(max(rates), 4),
            }
            if rates
            else {}
        )

    with_learner = run_routing(tasks, weights, seed)
    alone = run_routing(tasks, weights, seed, use_learner=False)
    behind = run_routing(tasks, weights, seed, learner_pace=learner_pace)
    proposed = run_routing(tasks, weights, seed, thompson=Thompson(seed))
    return {
        "with_learner": figures(with_learner) | {"reshuffled": across(lambda t, s: run_routing(t, weights, s))},
        "router_alone": {"success_rate": round(alone.success_rate, 4)},
        "learner_behind": {"learner_pace": learner_pace, "success_rate": round(behind.success_rate, 4)},
        "proposed_thompson": figures(proposed)
        | {"reshuffled": across(lambda t, s: run_routing(t, weights, s, thompson=Thompson(s)))},
        "tasks_per_agent": dict(sorted(with_learner.by_agent.items())),
    }


# --- cold start -------------------------------------------------------------------------


def evaluate_cold_start(
    tasks: list[Task], weights: Weights, newcomers: list[str], first: int, window: int, seed: int
) -> dict:
    """Each newcomer registers halfway, once into a fleet that shares its experience and once into
    the same fleet (same history) that does not; its first `first` routed tasks are compared."""
    agents, capabilities = fleet_of(tasks)
    half = len(tasks) // 2
    after = tasks[half : half + window]
    watched = {variant: (PrequentialMetrics(None), Counter()) for variant in ("with_sharing", "without_sharing")}
    per_newcomer = {}
    for newcomer in newcomers:
        incumbents = [a for a in agents if a != newcomer]
        state, learner = router_fleet(incumbents, capabilities), new_learner(incumbents, capabilities)
        before = [replace(t, outcomes={a: s for a, s in t.outcomes.items() if a != newcomer}) for t in tasks[:half]]
        run_routing(before, weights, seed, state=state, learner=learner)
        for variant, (metrics, counts) in watched.items():
            joined, knowing = copy.deepcopy(state), copy.deepcopy(learner)
            share = variant == "with_sharing"
            if not share:  # nothing learned from the others reaches the newcomer, not even the shared model
                knowing.model = SuccessModel()
                for agent in incumbents:
                    register(knowing, replace(knowing.cohorts.profile(agent), share_experience=False))
            joined.agents[newcomer] = AgentState(
                agent_id=newcomer, capacity=1, capabilities={c: DECLARED for c in capabilities}
            )
            register(knowing, AgentProfile(newcomer, {c: DECLARED for c in capabilities}, share_experience=share))
            run = run_routing(after, weights, seed, state=joined, learner=knowing, watch=newcomer, watch_first=first)
            for p, success in run.learner.pairs:
                metrics.add(p, success)
            counts["fleet_successes"] += run.successes
            counts["decisions"] += run.decisions
            counts["newcomer_tasks"] += run.by_agent[newcomer]
            per_newcomer.setdefault(newcomer, {})[variant] = round(run.learner.summary().get("base_rate", 0.0), 4)
    result = {
        "newcomers": len(newcomers),
        "joins_after_tasks": half,
        "window_tasks": len(after),
        "first_tasks": first,
        "newcomer_success_rate_by_agent": per_newcomer,
    }
    for variant, (metrics, counts) in watched.items():
        summary = metrics.summary()
        result[variant] = {
            "newcomer_tasks_watched": int(summary["count"]),
            "newcomer_success_rate": round(summary.get("base_rate", 0.0), 4),
            "newcomer_prediction_log_loss": round(summary.get("log_loss", 0.0), 4),
            "newcomer_prediction_brier": round(summary.get("brier", 0.0), 4),
            "newcomer_share_of_tasks": round(counts["newcomer_tasks"] / max(1, counts["decisions"]), 4),
            "fleet_success_rate": round(counts["fleet_successes"] / max(1, counts["decisions"]), 4),
        }
    return result


# --- report -----------------------------------------------------------------------------


def evaluate(
    path: str,
    limit: int | None,
    weights: Weights,
    orders: int,
    newcomer: str | None,
    first: int,
    window: int,
    seed: int,
    learner_pace: float = LEARNER_PACE,
) -> dict:
    started = time.perf_counter()
    tasks = load(path, limit)
    agents, capabilities = fleet_of(tasks)
    prediction = evaluate_prediction(tasks)
    routing = evaluate_routing(tasks, weights, orders, seed, learner_pace)
    reference = baselines(tasks)
    cold_start = evaluate_cold_start(tasks, weights, [newcomer] if newcomer else agents, first, window, seed)
    learner = prediction["learner"]
    return {
        "data": {
            "path": path,
            "tasks": len(tasks),
            "rows": sum(len(t.outcomes) for t in tasks),
            "agents": len(agents),
            "capabilities": len(capabilities),
        },
        "routing_success_rate": routing["with_learner"]["success_rate"],
        "routing_target": {
            "success_rate": ROUTING_TARGET,
            "met": routing["with_learner"]["success_rate"] >= ROUTING_TARGET,
        },
        "prediction_accuracy": round(learner["accuracy"], 4),
        "log_loss": round(learner["log_loss"], 4),
        "roc_auc": round(learner.get("roc_auc", 0.0), 4),
        "brier": round(learner["brier"], 4),
        "prediction": {
            "learner": rounded(learner),
            "running_mean": rounded(prediction["running_mean"]),
            "learner_calibration_error": round(learner["calibration_error"], 4),
            "calibration": [
                {k: round(v, 4) if isinstance(v, float) else v for k, v in b.items()} for b in prediction["calibration"]
            ],
            "exported_model": {
                "weights": prediction["model_weights"],
                "json_bytes": prediction["model_json_bytes"],
                "max_difference_after_reload": prediction["export_check"],
            },
        },
        "routing": routing
        | {
            "weights": {
                "exploration": weights.exploration,
                "sharpness": weights.sharpness,
                "temperature": weights.temperature,
                "top_k": weights.top_k,
            },
            "seed": seed,
        },
        "baselines": {k: round(v, 4) for k, v in reference.items()},
        "cold_start": cold_start,
        "seconds": round(time.perf_counter() - started, 1),
        "machine": describe(),
    }


def report(result: dict) -> str:
    data, prediction, routing = result["data"], result["prediction"], result["routing"]
    ours, theirs, exported = prediction["learner"], prediction["running_mean"], prediction["exported_model"]

    def row(name: str, m: dict) -> str:
        return (
            f"  {name:38} {m.get('accuracy', 0):8.4f} {m.get('log_loss', 0):8.4f} "
            f"{m.get('brier', 0):8.4f} {m.get('roc_auc', 0):8.4f}"
        )

    head = f"  {'':38} {'accuracy':>8} {'log loss':>8} {'brier':>8} {'roc auc':>8}"
    lines = [
        f"Offline evaluation: {data['tasks']} tasks, {data['rows']} outcomes, {data['agents']} agents, "
        f"{data['capabilities']} capabilities ({result['seconds']}s)",
        "",
        "Prediction, full information (all of a task's predictions before any of its outcomes):",
        head,
        row("learner", ours),
        row("per-(agent, capability) running mean", theirs),
        f"  calibration error {prediction['learner_calibration_error']:.4f}; exported model: "
        f"{exported['weights']} weights, {exported['json_bytes']} bytes of JSON, "
        f"reloaded predictions differ by at most {exported['max_difference_after_reload']:.1e}",
        "",
        f"Routing, bandit feedback ({routing['weights']['exploration']}, sharpness "
        f"{routing['weights']['sharpness']}, temperature {routing['weights']['temperature']}, "
        f"top {routing['weights']['top_k']}, seed {routing['seed']}):",
    ]
    with_learner, proposed = routing["with_learner"], routing["proposed_thompson"]
    for name, figures in (
        ("router + learner estimates", with_learner),
        ("proposed: Thompson sampling on the learner", proposed),
    ):
        spread = figures["reshuffled"]
        lines.append(
            f"  {name:44} {figures['success_rate']:.4f}"
            + (
                f"   (other orders: mean {spread['mean']:.4f}, {spread['min']:.4f}-{spread['max']:.4f})"
                if spread
                else ""
            )
        )
    target = result["routing_target"]
    lines.append(f"  {'target':44} {target['success_rate']:.4f}   ({'met' if target['met'] else 'not met'})")
    lines.append(f"  {'router alone (its own Beta records)':44} {routing['router_alone']['success_rate']:.4f}")
    behind = routing["learner_behind"]
    lines.append(
        f"  {'learner reading at ' + format(behind['learner_pace'], 'g') + 'x the router':44} "
        f"{behind['success_rate']:.4f}"
    )
    for name, value in result["baselines"].items():
        lines.append(f"  {name:44} {value:.4f}")
    lines += ["  prediction on the routed decisions:", head]
    for name, m in with_learner["prediction"].items():
        lines.append(row(name, m))
    cold = result["cold_start"]
    lines += [
        "",
        f"Cold start: each of {cold['newcomers']} agents in turn joins after {cold['joins_after_tasks']} "
        f"tasks; its first {cold['first_tasks']} routed tasks, and the fleet over the next "
        f"{cold['window_tasks']} tasks:",
    ]
    for name in ("with_sharing", "without_sharing"):
        c = cold[name]
        lines.append(
            f"  {name.replace('_', ' '):16} newcomer success {c['newcomer_success_rate']:.4f} over "
            f"{c['newcomer_tasks_watched']} tasks, its prediction log loss "
            f"{c['newcomer_prediction_log_loss']:.4f}; its share {c['newcomer_share_of_tasks']:.3f}, "
            f"fleet success {c['fleet_success_rate']:.4f}"
        )
    m = result["machine"]
    lines += [
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, Python {m['python']}, {m['system']}",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="the outcome log (csv.gz)")
    parser.add_argument("--limit", type=int, help="only the first N tasks in task_seq order")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the report")
    parser.add_argument(
        "--exploration",
        choices=EXPLORATIONS,
        default="thompson",
        help="how the router explores (default thompson, as orchestrator evaluate routes)",
    )
    parser.add_argument("--sharpness", type=float, default=SHARPNESS, help="Thompson draws' evidence multiplier")
    parser.add_argument("--temperature", type=float, default=0.02, help="the router's softmax temperature")
    parser.add_argument("--top-k", type=int, default=7, help="candidates the router draws among")
    parser.add_argument("--orders", type=int, default=5, help="task orders for routing: the log's and reshuffles")
    parser.add_argument("--newcomer", help="the one agent held out until halfway (default: each in turn)")
    parser.add_argument("--first", type=int, default=100, help="newcomer tasks the cold start looks at")
    parser.add_argument("--window", type=int, default=4000, help="tasks routed after the newcomer joins")
    parser.add_argument(
        "--learner-pace",
        type=float,
        default=LEARNER_PACE,
        help="for one more run: the learner reads outcomes this much slower than the router",
    )
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    weights = Weights(
        temperature=args.temperature, top_k=args.top_k, exploration=args.exploration, sharpness=args.sharpness, load=0.0
    )  # one task at a time: no agent is ever loaded
    result = evaluate(
        args.data,
        args.limit,
        weights,
        max(1, args.orders),
        args.newcomer,
        args.first,
        args.window,
        args.seed,
        min(1.0, max(0.01, args.learner_pace)),
    )
    print(json.dumps(result, indent=2) if args.json else report(result))


if __name__ == "__main__":
    main()
