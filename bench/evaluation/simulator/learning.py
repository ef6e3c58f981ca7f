"""`orchestrator simulate --learning`: the learner against a fleet whose true skills are known.

The simulated fleet's hidden success probabilities make two things measurable that real logs
cannot show: how close the learner's predictions come to the best any predictor could do
(the Bayes-optimal one predicts success exactly when the true probability is above 0.5), and
how many outcomes the change detector needs to notice that an agent's skill changed.

Each task goes to a capable agent drawn at random, so every agent keeps producing outcomes
(routing would starve the weak ones and leave their predictions untested); the learner sees
the outcomes in order, predicting each before learning it, exactly as `learn` does in the
running learner.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass

from bench.evaluation.simulator.fleet import SimulatedAgent, make_fleet, task_stream
from bench.evaluation.simulator.regimes import LARGE_FLEET, Regime, simulated_log
from services.learner.cohort import AgentProfile
from services.learner.logic import LearnerState, Outcome, learn, register
from services.learner.metrics import PrequentialMetrics
from services.success_model.beta import Counts

TARGET_SHARE_OF_BAYES = 0.95


@dataclass(frozen=True)
class SkillChange:
    """At task `at_task`, the agent's true probability on the capability jumps to `after`."""

    agent_id: str
    capability: str
    at_task: int
    before: float
    after: float


@dataclass(frozen=True)
class LearningFigures:
    outcomes: int
    warm_up: int
    scored: int
    accuracy: float  # the learner's, after warm-up
    bayes_accuracy: float  # the Bayes-optimal predictor's on the same outcomes
    expected_bayes_accuracy: float  # its expectation, mean of max(p, 1 - p): the same without outcome noise
    share_of_bayes: float
    target_share_of_bayes: float
    change: dict
    detected_after_outcomes: int | None  # the changed agent's outcomes on the capability until detection
    detected_after_tasks: int | None  # the fleet's tasks from the change to its detection
    detected_direction: str | None
    other_detections: int  # shifts reported for other (agent, capability) pairs, which drift slowly too

    def as_dict(self) -> dict:
        return {k: round(v, 4) if isinstance(v, float) else v for k, v in asdict(self).items()}


def busiest_pair(fleet: list[SimulatedAgent], stream) -> tuple[SimulatedAgent, str]:
    """The agent and capability with the most traffic per capable agent: where a change shows soonest."""
    demand: dict[str, int] = {}
    for _, capability, _, _ in stream:
        demand[capability] = demand.get(capability, 0) + 1
    capable = {c: sum(c in a.skill for a in fleet) for c in demand}
    capability = max(sorted(demand), key=lambda c: demand[c] / capable[c])
    agent = next(a for a in fleet if capability in a.skill)
    return agent, capability


def stepped(p: float) -> float:
    """A change a router must notice: a competent agent becomes poor, a poor one competent."""
    return 0.15 if p >= 0.5 else 0.85


def run_learning(
    agents: int = 12, tasks: int = 6000, warm_up: int = 1000, seed: int = 7, change_at: int | None = None
) -> LearningFigures:
    rng = random.Random(seed)
    fleet = make_fleet(agents, seed)
    stream = task_stream(tasks, seed + 4)
    state = LearnerState()
    for agent in fleet:
        # Declared skills are noisy claims; agents share, as the evaluation's fleet does.
        register(state, AgentProfile(agent.agent_id, dict(agent.declared), share_experience=True))
    changed, capability = busiest_pair(fleet, stream)
    changed.drift_per_task[capability] = 0.0  # a clean step: steady before the change, steady after
    at = tasks // 2 if change_at is None else change_at
    change = SkillChange(
        changed.agent_id, capability, at, changed.skill[capability], stepped(changed.skill[capability])
    )
    learner_hits = bayes_hits = scored = 0
    expected_bayes = 0.0
    detected_after = detected_tasks = direction = None
    seen_since_change = other = 0
    for n, (task_id, need, _, _) in enumerate(stream):
        if n == at:
            changed.skill[capability] = change.after
        agent = rng.choice(sorted((a for a in fleet if need in a.skill), key=lambda a: a.agent_id))
        truth = agent.skill[need]
        success, _ = agent.attempt(need, rng)
        learned = learn(state, Outcome(task_id, agent.agent_id, need, success))
        if n >= warm_up:
            scored += 1
            learner_hits += (learned.prediction.probability > 0.5) == success
            bayes_hits += (truth > 0.5) == success
            expected_bayes += max(truth, 1.0 - truth)
        is_changed = (agent.agent_id, need) == (changed.agent_id, capability)
        if n >= at and is_changed:
            seen_since_change += 1
        for shift in learned.shifts:
            if is_changed and n >= at and detected_after is None:
                detected_after, detected_tasks, direction = seen_since_change, n - at + 1, shift.direction
            elif not is_changed:
                other += 1
    accuracy = learner_hits / max(1, scored)
    bayes = bayes_hits / max(1, scored)
    return LearningFigures(
        outcomes=len(stream),
        warm_up=warm_up,
        scored=scored,
        accuracy=accuracy,
        bayes_accuracy=bayes,
        expected_bayes_accuracy=expected_bayes / max(1, scored),
        share_of_bayes=accuracy / bayes if bayes else 0.0,
        target_share_of_bayes=TARGET_SHARE_OF_BAYES,
        change=asdict(change),
        detected_after_outcomes=detected_after,
        detected_after_tasks=detected_tasks,
        detected_direction=direction,
        other_detections=other,
    )


def learning_table(figures: LearningFigures) -> str:
    f, c = figures, figures.change
    detection = (
        f"detected ({f.detected_direction}) after {f.detected_after_outcomes} of its outcomes "
        f"({f.detected_after_tasks} tasks of the fleet)"
        if f.detected_after_outcomes is not None
        else "not detected"
    )
    return "\n".join(
        [
            f"Learning on a simulated fleet: {f.outcomes} outcomes, the first {f.warm_up} as warm-up",
            f"  prediction accuracy       {f.accuracy:.4f}",
            f"  Bayes-optimal accuracy    {f.bayes_accuracy:.4f}  (expected {f.expected_bayes_accuracy:.4f})",
            f"  share of Bayes-optimal    {f.share_of_bayes:.4f}  (target {f.target_share_of_bayes:.2f}: "
            f"{'met' if f.share_of_bayes >= f.target_share_of_bayes else 'not met'})",
            f"  skill change: {c['agent_id']} on {c['capability']} from {c['before']:.2f} to {c['after']:.2f} "
            f"at task {c['at_task']}: {detection}",
            f"  shifts reported elsewhere  {f.other_detections} (the fleet's skills drift slowly)",
        ]
    )


@dataclass(frozen=True)
class FleetFigures:
    """The learner on the large-fleet regime: few outcomes spread over many (agent, capability) pairs."""

    regime: str
    agents: int
    capabilities: int
    outcomes: int
    accuracy: float
    log_loss: float
    running_mean_accuracy: float  # each pair's own success rate so far, Laplace-smoothed
    running_mean_log_loss: float
    bayes_accuracy: float
    bayes_log_loss: float  # predicting each pair's true rate

    def as_dict(self) -> dict:
        return {k: round(v, 4) if isinstance(v, float) else v for k, v in asdict(self).items()}


def run_large_fleet(seed: int = 7, regime: Regime = LARGE_FLEET) -> FleetFigures:
    """Each task of a simulated dense log to a random agent; the learner predicts each outcome before
    learning it, beside the running mean and the true rate on the same outcomes."""
    log = simulated_log(regime, seed)
    rng = random.Random(seed)
    agents = sorted(log.tasks[0].outcomes)
    state = LearnerState()
    for agent in agents:
        register(
            state,
            AgentProfile(agent, {c: 0.5 for c in sorted({t.capability for t in log.tasks})}, share_experience=True),
        )
    ours, theirs, bayes = PrequentialMetrics(None), PrequentialMetrics(None), PrequentialMetrics(None)
    counts: dict[tuple[str, str], Counts] = {}
    for task in log.tasks:
        agent = rng.choice(agents)
        success, key = task.outcomes[agent], (agent, task.capability)
        learned = learn(state, Outcome(task.task_id, agent, task.capability, success))
        seen = counts.get(key, Counts())
        ours.add(learned.prediction.probability, success)
        theirs.add((seen.successes + 1.0) / (seen.attempts + 2.0), success)
        bayes.add(log.truth[key], success)
        counts[key] = seen.plus(success)
    mine, baseline, truth = ours.summary(), theirs.summary(), bayes.summary()
    return FleetFigures(
        regime.name,
        regime.agents,
        regime.capabilities,
        len(log.tasks),
        mine["accuracy"],
        mine["log_loss"],
        baseline["accuracy"],
        baseline["log_loss"],
        truth["accuracy"],
        truth["log_loss"],
    )


def fleet_table(figures: FleetFigures) -> str:
    f = figures
    return "\n".join(
        [
            f"Learning on a {f.regime} regime: {f.agents} agents, {f.capabilities} capabilities, {f.outcomes} outcomes "
            "(each task to a random agent)",
            f"  {'':38} {'accuracy':>8} {'log loss':>8}",
            f"  {'learner':38} {f.accuracy:8.4f} {f.log_loss:8.4f}",
            f"  {'per-(agent, capability) running mean':38} "
            f"{f.running_mean_accuracy:8.4f} {f.running_mean_log_loss:8.4f}",
            f"  {'the true rates (Bayes-optimal)':38} {f.bayes_accuracy:8.4f} {f.bayes_log_loss:8.4f}",
        ]
    )
