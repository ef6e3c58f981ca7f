"""The router's decision: who *should* do a task. Pure functions over plain state.

Each candidate gets a score from predicted success, current load, expected duration, cost,
collaboration with agents already on the job, and the submitter's preferences. Predicted
success starts from a Beta posterior over the agent's record on the capability (its prior
taken from the learner's skill estimate or else the declared proficiency); once the learner
has published a model, that model predicts this task from the posterior and the task's
features. The pick among the top candidates is a softmax draw over the scores or, with
`exploration="thompson"`, the best score with each candidate's predicted success drawn from
its Beta posterior (Thompson sampling). Every candidate's probability of being picked is
logged, so other policies can be evaluated offline from the decision log.

A decision over a large fleet costs little per candidate: what is the same for every candidate is
worked out once per task (`Shared`), what changes only with an agent's registration, record or the
model is kept between tasks (`Standing`), and only the logged candidates become `Scored`.
"""

from __future__ import annotations

import bisect
import heapq
import math
import random
from dataclasses import dataclass, field, replace

import numpy as np

from events.learning import SkillEstimated
from events.tasks import TaskQueued, TaskRouted, TaskSubmitted
from events.values import Candidate
from services.success_model.beta import Beta
from services.success_model.logistic import LinearPredictor, sigmoid

POLICY = "softmax-beta"
PRIOR_STRENGTH = 4.0  # pseudo-observations a prior is worth before the agent's own record
EXPLORATIONS = ("softmax", "thompson")
UNCOUNTED_KEPT = 10_000  # per agent and capability: a learner further behind misses the oldest (10 KB each)
PROPENSITY_DRAWS = 256  # further posterior draws that estimate a Thompson pick's propensity


@dataclass(frozen=True)
class Weights:
    success: float = 1.0
    load: float = 0.3
    duration: float = 0.05
    cost: float = 0.05
    relationship: float = 0.1
    preference: float = 0.2
    temperature: float = 0.05  # softmax temperature: lower exploits more
    top_k: int = 3
    logged_candidates: int = 10  # the decision event lists this many best candidates
    exploration: str = "softmax"  # or "thompson": draw each candidate's success from its posterior
    sharpness: float = 1.0  # Thompson draws from Beta(s·a, s·b): above 1 explores less than the posterior says


@dataclass(frozen=True)
class AgentState:
    agent_id: str
    capabilities: dict[str, float]  # name -> declared proficiency
    capacity: int
    cost_per_task: float = 0.0
    tags: frozenset[str] = frozenset()
    labels: tuple[tuple[str, str], ...] = ()  # (key, value), sorted: what the learner's model knows of the agent
    versions: tuple[tuple[str, str], ...] = ()  # (capability, declared version), sorted, where given
    status: str = "registered"  # registered | draining | deregistered
    health: str = "unknown"
    in_flight: int = 0

    @property
    def routable(self) -> bool:
        return self.status == "registered" and self.health != "unhealthy"


@dataclass(frozen=True)
class Record:
    """What routing has seen of one agent on one capability."""

    successes: float = 0.0
    failures: float = 0.0
    total_duration_ms: float = 0.0
    durations: int = 0
    estimate: float | None = None  # the learner's current proficiency, when published
    estimate_confidence: float | None = None
    estimate_attempts: int = 0  # the agent's outcomes the estimate is built on
    estimate_read: int | None = None  # the agent's outcomes the learner had read for it (None: not said)
    estimate_prior_strength: float | None = None  # what the learner's prior is worth in outcomes, when said
    estimate_successes: int = 0  # of `estimate_attempts`
    seen: int = 0  # every outcome the router has read for this agent and capability

    def posterior(self, declared: float, strongest_prior: float | None = None) -> tuple[float, float]:
        """(a, b) of the Beta posterior; with `strongest_prior`, the learner's prior counts as at most
        that many outcomes beside the agent's own record: what Thompson draws explore from."""
        prior = self.estimate if self.estimate is not None else declared
        if self.estimate_prior_strength is not None:  # the learner's own posterior, exactly
            m, n, s = self.estimate_prior_strength, self.estimate_attempts, self.estimate_successes
            if strongest_prior is not None and m > strongest_prior:
                # The prior's mean, taken back out of the estimate, weighed less against the record.
                prior_mean = min(max((prior * (m + n) - s) / m, 1e-6), 1.0 - 1e-6)
                prior, m = (prior_mean * strongest_prior + s) / (strongest_prior + n), strongest_prior
            strength = m + n
        # An estimate is worth the outcomes behind it, so that the few read since move it only that much.
        else:
            strength = (
                PRIOR_STRENGTH + self.estimate_attempts
                if self.estimate_attempts
                else PRIOR_STRENGTH * (1.0 + 4.0 * (self.estimate_confidence or 0.0))
            )
        a = prior * strength + self.successes
        b = (1.0 - prior) * strength + self.failures
        return a, b

    @property
    def mean_duration_ms(self) -> float | None:
        return self.total_duration_ms / self.durations if self.durations else None


_NO_RECORD = Record()


class AgentRegistry(dict):
    """Agents by id, with an index from capability to the agents declaring it.

    The index keeps a decision's cost proportional to the capable agents, not the fleet.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__()
        self.by_capability: dict[str, set[str]] = {}
        # Each capability's agent ids in order and the agents under them, kept until an agent declares
        # or drops it: a change of load replaces an agent many times between decisions, and then only
        # takes its place in the lists instead of having them sorted and looked up again.
        self._in_order: dict[str, tuple[list[str], list[AgentState]]] = {}
        self.update(*args, **kwargs)

    def __setitem__(self, agent_id: str, agent: AgentState) -> None:
        before = self[agent_id].capabilities.keys() if agent_id in self else {}.keys()
        super().__setitem__(agent_id, agent)
        for name in before - agent.capabilities.keys():
            self.by_capability.get(name, set()).discard(agent_id)
            self._in_order.pop(name, None)
        for name in agent.capabilities.keys() - before:
            self.by_capability.setdefault(name, set()).add(agent_id)
            self._in_order.pop(name, None)
        for name in agent.capabilities.keys() & before:
            if (kept := self._in_order.get(name)) is not None:
                ids, agents = kept
                agents[bisect.bisect_left(ids, agent_id)] = agent

    def __delitem__(self, agent_id: str) -> None:
        self._unindex(agent_id)
        super().__delitem__(agent_id)

    def pop(self, agent_id, *default):
        if agent_id in self:
            self._unindex(agent_id)
        return super().pop(agent_id, *default)

    def update(self, *args, **kwargs) -> None:
        for agent_id, agent in dict(*args, **kwargs).items():
            self[agent_id] = agent

    def setdefault(self, agent_id, default=None):
        if agent_id not in self:
            self[agent_id] = default
        return self[agent_id]

    def _unindex(self, agent_id: str) -> None:
        for name in self[agent_id].capabilities:
            self.by_capability.get(name, set()).discard(agent_id)
            self._in_order.pop(name, None)

    def declaring(self, names) -> list[AgentState]:
        if len(names) == 1:  # most tasks
            kept = self._in_order.get(names[0])
            if kept is None:
                ids = sorted(self.by_capability.get(names[0], ()))
                kept = self._in_order[names[0]] = (ids, [self[i] for i in ids])
            return kept[1][:]  # a copy: the kept list changes with the agents
        sets = [self.by_capability.get(name, set()) for name in names]
        ids = set.intersection(*sets) if sets else set(self)
        return [self[i] for i in sorted(ids)]


@dataclass(frozen=True, slots=True)
class Standing:
    """All of an agent's score on one capability that does not depend on the task, with what it was
    worked out from: it is kept while the agent's record and registration stay what they were."""

    basis: tuple  # (record, declared capabilities, labels, versions)
    posterior: tuple[float, float]  # what Thompson draws come from
    mean: float
    agent_term: float  # the model's term for the agent on the capability (0.0 without a model)
    skill_term: float  # the model's term for the record (0.0 without a model)
    confidence: float
    mean_duration_ms: float | None
    # What a task needing this capability alone takes from it: (confidence, expected duration in s,
    # posteriors), as `combined` works them out over one requirement, so `measure` need not.
    alone: tuple[float, float, tuple[tuple[float, float], ...]]

    @classmethod
    def of(
        cls, agent: AgentState, capability: str, record: Record, predictor: LinearPredictor | None, basis: tuple
    ) -> Standing:
        a, b = record.posterior(agent.capabilities[capability])
        mean = a / (a + b)
        # A prior pooled from the fleet predicts well, but drawing from it would stop trying an agent
        # the pool undersells: exploration weighs it as at most PRIOR_STRENGTH outcomes.
        explore = record.posterior(agent.capabilities[capability], strongest_prior=PRIOR_STRENGTH)
        agent_term = skill_term = 0.0
        if predictor is not None:
            version = next((v for c, v in agent.versions if c == capability), None)
            agent_term = predictor.agent_term(agent.agent_id, agent.labels, capability, version)
            # The model's features are the learner's own: the posterior stands for the agent's skill,
            # and the outcomes behind it for its evidence.
            skill_term = predictor.skill_term(Beta(a, b, mean, a + b), max(record.seen, record.estimate_attempts))
        confidence = 1.0 - math.sqrt(a * b / ((a + b) ** 2 * (a + b + 1))) * 2
        mean_duration_ms = record.mean_duration_ms
        # `0.0 +`, as the sum over requirements starts: the same float, even for a mean of -0.0.
        duration_s = 0.0 if mean_duration_ms is None else (0.0 + mean_duration_ms) / 1000.0
        return cls(
            basis,
            explore,
            mean,
            agent_term,
            skill_term,
            confidence,
            mean_duration_ms,
            (max(0.0, min(1.0, confidence)), duration_s, (explore,)),
        )


@dataclass
class Standings:
    """The standings kept between decisions, by capability and agent, for one model."""

    predictor: LinearPredictor | None = None
    # By capability first: a decision looks a capability up once, then each candidate by its id alone.
    by_capability: dict[str, dict[str, Standing]] = field(default_factory=dict)

    def on(self, capability: str) -> dict[str, Standing]:
        return self.by_capability.setdefault(capability, {})


@dataclass
class RouterState:
    agents: AgentRegistry = field(default_factory=AgentRegistry)

    def __setattr__(self, name, value) -> None:
        if name == "agents" and not isinstance(value, AgentRegistry):
            value = AgentRegistry(value)
        super().__setattr__(name, value)

    records: dict[tuple[str, str], Record] = field(default_factory=dict)
    relationships: dict[tuple[str, str], float] = field(default_factory=dict)  # lift, >1 is good
    job_members: dict[str, frozenset[str]] = field(default_factory=dict)
    model_version: str | None = None  # of `predictor`, recorded on every decision it informed
    predictor: LinearPredictor | None = None  # the learner's published model, once validated
    round_robin: dict[str, int] = field(default_factory=dict)  # next turn per capability (baseline policy)
    # Per agent and capability, in order, the outcomes read since the learner's estimate that the
    # estimate may not count yet (1 success, 0 failure): a learner that lags must not make the
    # router forget what it has seen since.
    uncounted: dict[tuple[str, str], bytearray] = field(default_factory=dict)
    standings: Standings = field(default_factory=Standings, repr=False, compare=False)


def kept_standings(state: RouterState) -> Standings:
    # A new model makes every standing stale; dropping them all lets the old model go.
    if state.standings.predictor is not state.predictor:
        state.standings = Standings(state.predictor)
    return state.standings


def standing_of(
    agent: AgentState, capability: str, state: RouterState, kept: dict[str, Standing], predictor: LinearPredictor | None
) -> Standing:
    """The agent's standing on `capability`, from `kept` (`Standings.on(capability)`, made with `predictor`)."""
    record = state.records.get((agent.agent_id, capability), _NO_RECORD)
    # Every outcome or estimate replaces the record and a registration replaces the rest, while a
    # change of load keeps them all: compared by identity first, so an unchanged basis costs little.
    known = kept.get(agent.agent_id)
    if known is not None:
        kept_record, capabilities, labels, versions = known.basis
        if (
            record is kept_record
            and agent.capabilities is capabilities
            and agent.labels is labels
            and agent.versions is versions
        ):
            return known
    basis = (record, agent.capabilities, agent.labels, agent.versions)
    if known is None or known.basis != basis:
        known = kept[agent.agent_id] = Standing.of(agent, capability, record, predictor, basis)
    return known


@dataclass(frozen=True)
class Scored:
    agent: AgentState
    score: float
    predicted: float
    confidence: float
    features: dict[str, float]
    posteriors: tuple[tuple[float, float], ...] = ()  # (a, b) per required capability


def capable(task: TaskSubmitted, state: RouterState, exclude: frozenset[str] = frozenset()):
    """Agents meeting every hard requirement, and why the others were left out."""
    chosen, left_out = [], {}
    needs = [(r.name, r.min_proficiency) for r in task.requirements]  # read once, not once per agent
    declaring = state.agents.declaring([name for name, _ in needs])
    for agent in declaring:
        if exclude and agent.agent_id in exclude:  # mostly empty: no need to hash every id
            left_out[agent.agent_id] = "already tried on this task"
        elif not agent.routable:
            left_out[agent.agent_id] = agent.status if agent.status != "registered" else agent.health
        else:
            # A plain loop: most agents lack nothing, and a list of what they lack would cost each of them.
            proficiencies = agent.capabilities
            for name, least in needs:
                if proficiencies.get(name, -1.0) < least:
                    missing = [name for name, least in needs if proficiencies.get(name, -1.0) < least]
                    left_out[agent.agent_id] = f"lacks {', '.join(missing)}"
                    break
            else:
                chosen.append(agent)
    if not chosen:  # only then is it worth saying who lacks what
        for agent_id in sorted(set(state.agents) - {a.agent_id for a in declaring})[:5]:
            left_out[agent_id] = f"lacks {', '.join(r.name for r in task.requirements)}"
    return chosen, left_out


@dataclass(frozen=True)
class Shared:
    """What every candidate for one task has in common, worked out once per decision."""

    # (capability, the model's term for the task on it, the standings kept on it by agent id)
    requirements: tuple[tuple[str, float, dict[str, Standing]], ...]
    predictor: LinearPredictor | None  # the one the standings were worked out with
    weights: Weights
    job_members: frozenset[str]  # agents already on the task's job
    preferred: bool
    preferred_agents: frozenset[str]
    preferred_tags: frozenset[str]
    preferred_tag_count: int  # as listed, repeats included

    @classmethod
    def of(cls, task: TaskSubmitted, state: RouterState, weights: Weights) -> Shared:
        predictor, standings = state.predictor, kept_standings(state)
        return cls(
            requirements=tuple(
                (
                    r.name,
                    0.0 if predictor is None else predictor.task_term(r.name, task.features),
                    standings.on(r.name),
                )
                for r in task.requirements
            ),
            predictor=predictor,
            weights=weights,
            job_members=state.job_members.get(task.job_id, frozenset()) if task.job_id else frozenset(),
            preferred=bool(task.preferred_agents or task.preferred_tags),
            preferred_agents=frozenset(task.preferred_agents),
            preferred_tags=frozenset(task.preferred_tags),
            preferred_tag_count=len(task.preferred_tags),
        )


def measure(agents: list[AgentState], shared: Shared, state: RouterState) -> list[tuple]:
    """Each candidate's rank key and what its score rests on, as plain tuples: a fleet's worth of
    candidates is measured per decision, and only the few logged become `Scored`.

    (-score, agent id, agent, predicted success, confidence, load, expected duration s,
    relationship, preference, posteriors) per agent, in order: one flat tuple, as the agent id
    is unique and ranking compares no further."""
    predictor, weights, job_members = shared.predictor, shared.weights, shared.job_members
    # Most tasks need one capability: its standing then holds all but the model's term for the task.
    single = len(shared.requirements) == 1
    if single:
        ((name, task_term, kept),) = shared.requirements
    measured = []
    for agent in agents:
        agent_id = agent.agent_id
        if single:
            standing = standing_of(agent, name, state, kept, predictor)
            success = (
                standing.mean if predictor is None else sigmoid(task_term + standing.agent_term + standing.skill_term)
            )
            confidence, duration_s, posteriors = standing.alone
        else:
            success, confidence, duration_s, posteriors = combined(agent, shared, state)
        load = agent.in_flight / agent.capacity
        relationship = preference = 0.0
        if job_members and (team := job_members - {agent_id}):
            relationship = sum(state.relationships.get((agent_id, other), 1.0) - 1.0 for other in team) / len(team)
        if shared.preferred:
            preference = float(agent_id in shared.preferred_agents) + (
                len(agent.tags & shared.preferred_tags) / shared.preferred_tag_count
                if shared.preferred_tag_count
                else 0.0
            )
        value = weighted_score(weights, success, load, duration_s, agent.cost_per_task, relationship, preference)
        measured.append(
            (-value, agent_id, agent, success, confidence, load, duration_s, relationship, preference, posteriors)
        )
    return measured


def combined(agent: AgentState, shared: Shared, state: RouterState) -> tuple:
    """(predicted success, confidence, expected duration s, posteriors) over every required capability."""
    success, lowest_confidence, total_duration_ms, timed, posteriors = 1, 1.0, 0, False, []
    for name, task_term, kept in shared.requirements:
        standing = standing_of(agent, name, state, kept, shared.predictor)
        posteriors.append(standing.posterior)
        # The learner's model on this task when there is one (`LinearPredictor.probability_from` in
        # its parts), else the posterior mean. Every required capability must hold.
        success *= (
            standing.mean
            if shared.predictor is None
            else sigmoid(task_term + standing.agent_term + standing.skill_term)
        )
        lowest_confidence = min(lowest_confidence, standing.confidence)
        if standing.mean_duration_ms is not None:
            total_duration_ms += standing.mean_duration_ms
            timed = True
    duration_s = total_duration_ms / 1000.0 if timed else 0.0
    return success, max(0.0, lowest_confidence), duration_s, tuple(posteriors)


def weighted_score(
    weights: Weights,
    success: float,
    load: float,
    duration_s: float,
    cost: float,
    relationship: float,
    preference: float,
) -> float:
    """A candidate's score from what it rests on; offline evaluation rescores logged candidates with it."""
    return (
        weights.success * success
        - weights.load * load
        - weights.duration * math.log1p(duration_s)
        - weights.cost * cost
        + weights.relationship * relationship
        + weights.preference * preference
    )


def scored(measured: tuple) -> Scored:
    negative_score, _, agent, success, confidence, load, duration_s, relationship, preference, posteriors = measured
    features = {
        "predicted_success": success,
        "load": load,
        "expected_duration_s": duration_s,
        "cost": agent.cost_per_task,
        "relationship": relationship,
        "preference": preference,
    }
    return Scored(agent, -negative_score, success, confidence, features, posteriors)


def softmax(values: list[float], temperature: float) -> list[float]:
    top = max(values)
    exps = [math.exp((v - top) / max(temperature, 1e-9)) for v in values]
    total = sum(exps)
    return [e / total for e in exps]


def thompson(top: list[Scored], weights: Weights, rng: random.Random) -> tuple[int, list[float]]:
    """The candidate whose score is best with predicted success drawn from each posterior, and
    each candidate's chance of that (the share of further draws it wins, the pick's own draw
    included, so the pick's propensity is never 0)."""
    draws = np.random.default_rng(rng.getrandbits(64))
    sharp = max(weights.sharpness, 1e-9)
    success = np.ones((len(top), PROPENSITY_DRAWS + 1))
    for n in range(len(top[0].posteriors)):
        a = np.array([s.posteriors[n][0] for s in top])[:, None] * sharp
        b = np.array([s.posteriors[n][1] for s in top])[:, None] * sharp
        success *= draws.beta(a, b, size=success.shape)
    rest = np.array([s.score - weights.success * s.predicted for s in top])[:, None]
    winners = (rest + weights.success * success).argmax(axis=0)
    wins = np.bincount(winners, minlength=len(top))
    return int(winners[0]), [float(w) / (PROPENSITY_DRAWS + 1) for w in wins]


def route(
    task: TaskSubmitted, state: RouterState, weights: Weights, rng: random.Random, exclude: frozenset[str] = frozenset()
) -> TaskRouted | TaskQueued:
    agents, left_out = capable(task, state, exclude)
    if not agents:
        needs = ", ".join(f"{r.name}>={r.min_proficiency:g}" for r in task.requirements)
        why = "; ".join(f"{a}: {r}" for a, r in sorted(left_out.items())[:5])
        return TaskQueued(
            task_id=task.task_id,
            capability=task.requirements[0].name,
            reason=f"no routable agent has {needs}" + (f" ({why})" if why else ""),
        )
    considered = len(agents)
    shared = Shared.of(task, state, weights)
    # Best score first, then agent id; the agent's id is unique, so nothing further is compared.
    ranked = [
        scored(m)
        for m in heapq.nsmallest(max(weights.logged_candidates, weights.top_k, 1), measure(agents, shared, state))
    ]
    top = ranked[: max(1, weights.top_k)]
    if weights.exploration == "thompson":
        pick, drawn = thompson(top, weights, rng)
    else:
        drawn = softmax([s.score for s in top], weights.temperature)
        pick = rng.choices(range(len(top)), weights=drawn)[0]
    probabilities = drawn + [0.0] * (len(ranked) - len(top))
    chosen = ranked[pick]
    return TaskRouted(
        task_id=task.task_id,
        policy=POLICY,
        model_version=state.model_version,
        chosen_agent_id=chosen.agent.agent_id,
        predicted_success=round(chosen.predicted, 6),
        confidence=round(chosen.confidence, 6),
        propensity=round(probabilities[pick], 6),
        candidates=tuple(
            Candidate(
                agent_id=s.agent.agent_id,
                score=round(s.score, 6),
                features={k: round(v, 6) for k, v in s.features.items()},
                predicted_success=round(s.predicted, 6),
                confidence=round(s.confidence, 6),
                propensity=round(p, 6),
            )
            for s, p in zip(ranked, probabilities)
        ),
        reason=_reason(chosen, ranked, pick, considered),
        risk_factors=_risks(chosen, ranked),
    )


def _reason(chosen: Scored, ranked: list[Scored], pick: int, considered: int) -> str:
    f = chosen.features
    head = (
        f"{chosen.agent.agent_id}: predicted success {chosen.predicted:.2f} "
        f"(confidence {chosen.confidence:.2f}), load {f['load']:.0%}"
    )
    if pick == 0:
        return head + f", best of {considered} capable"
    return head + f", explored (rank {pick + 1} of {considered}; best was {ranked[0].agent.agent_id})"


def _risks(chosen: Scored, ranked: list[Scored]) -> tuple[str, ...]:
    risks = []
    if chosen.confidence < 0.3:
        risks.append("low-confidence")
    if chosen.predicted < 0.5:
        risks.append("likely-failure")
    if chosen.features["load"] >= 1.0:
        risks.append("at-capacity")
    if len(ranked) == 1:
        risks.append("single-candidate")
    return tuple(risks)


# --- evolving the state from events ------------------------------------------------


def take_estimate(state: RouterState, event: SkillEstimated) -> None:
    """The learner's estimate replaces the prior, and the outcomes it counts leave the router's own
    tally; those it has not read yet stay. An estimate older than the one in hand is ignored."""
    key = (event.agent_id, event.capability)
    record = state.records.get(key, Record())
    uncounted = state.uncounted.setdefault(key, bytearray())
    if event.outcomes_read is None:  # said nothing of what it read: as if it counted everything
        uncounted.clear()
    elif record.estimate_read is not None and event.outcomes_read < record.estimate_read:
        return
    else:
        behind = max(0, record.seen - event.outcomes_read)
        del uncounted[: max(0, len(uncounted) - behind)]
    successes = float(sum(uncounted))
    state.records[key] = replace(
        record,
        successes=successes,
        failures=len(uncounted) - successes,
        estimate=event.proficiency,
        estimate_confidence=event.confidence,
        estimate_attempts=event.attempts,
        estimate_read=event.outcomes_read,
        estimate_prior_strength=event.prior_strength,
        estimate_successes=event.successes,
    )


def learn_outcome(
    state: RouterState, agent_id: str, capability: str, success: bool, duration_ms: float | None = None
) -> None:
    key = (agent_id, capability)
    record = state.records.get(key, Record())
    # An estimate read before this outcome may already count it: the learner read ahead of us.
    ahead = record.estimate_read if record.estimate_read is not None else record.estimate_attempts
    counted = record.estimate is not None and record.seen < ahead
    new = 0 if counted else 1
    if new:
        uncounted = state.uncounted.setdefault(key, bytearray())
        uncounted.append(bool(success))
        if len(uncounted) > UNCOUNTED_KEPT:
            del uncounted[: len(uncounted) - UNCOUNTED_KEPT]
    state.records[key] = replace(
        record,
        seen=record.seen + 1,
        successes=record.successes + new * success,
        failures=record.failures + new * (not success),
        total_duration_ms=record.total_duration_ms + (duration_ms or 0.0),
        durations=record.durations + (duration_ms is not None),
    )
