"""The learner: predict, then learn, from each outcome in order. Pure and deterministic: the same
outcomes in the same order give the same model and the same estimates.

Per (agent, capability): a Beta posterior whose prior comes from similar agents that share their
experience (else the declared proficiency), a change detector and a short-term trend. Across
agents: a River logistic model over that posterior and the task's features, trained only on
outcomes of agents that share. Between agents: how they do on tasks of the same job.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from events.learning import ModelPublished, RelationshipScored, SkillEstimated
from services.learner.agent_pairs import Relationships
from services.learner.capability_similarity import REFRESH_EVERY, Related, learn_related
from services.learner.cohort import AgentProfile, Cohorts
from services.learner.drift import SkillShift, Trajectory
from services.learner.hierarchy import Hierarchy, learn_hierarchy, refresh_due
from services.learner.metrics import PrequentialMetrics
from services.success_model.beta import Beta, Counts
from services.success_model.features import features
from services.success_model.logistic import SuccessModel

MODEL_KIND = "logistic-regression"


@dataclass(frozen=True)
class Outcome:
    task_id: str
    agent_id: str
    capability: str  # a task needing several capabilities is learned as one outcome per capability
    success: bool
    task_features: Mapping[str, float] = field(default_factory=dict)
    group_id: str | None = None  # the job, or the task a hand-off passed on: who worked together


@dataclass(frozen=True)
class Prediction:
    agent_id: str
    capability: str
    probability: float  # P(success) on this task
    proficiency: float  # the agent's rate on the capability, whatever the task: the posterior mean
    confidence: float
    prior: float  # what similar agents (or the declaration) suggested before the agent's own record
    attempts: int


@dataclass(frozen=True)
class Learned:
    prediction: Prediction  # made before the outcome was known
    skill: SkillEstimated
    shifts: tuple[SkillShift, ...] = ()
    relationships: tuple[RelationshipScored, ...] = ()


@dataclass
class LearnerState:
    prior_strength: float = 4.0  # pseudo-outcomes the cohort prior is worth against the agent's own
    drift_delta: float = 0.002  # ADWIN's false-alarm bound per check
    model_id: str = "success"
    cohorts: Cohorts = field(default_factory=Cohorts)
    records: dict[tuple[str, str], Counts] = field(default_factory=dict)
    read: dict[tuple[str, str], int] = field(default_factory=dict)  # outcomes per key, never restarted
    trajectories: dict[tuple[str, str], Trajectory] = field(default_factory=dict)
    model: SuccessModel = field(default_factory=SuccessModel)
    relationships: Relationships = field(default_factory=Relationships)
    metrics: PrequentialMetrics = field(default_factory=PrequentialMetrics)
    use_related: bool = False  # priors also carry an agent's advantage on correlated capabilities
    related: Related = field(default_factory=Related)
    # Priors carry the agent's level across its other capabilities, pooled with a strength learned
    # from the records; the pair's prior strength is learned too (else `prior_strength`).
    use_hierarchy: bool = True
    hierarchy: Hierarchy = field(default_factory=Hierarchy)
    outcomes: int = 0

    @property
    def model_version(self) -> str:
        return f"{self.model_id}-{self.model.trained_on}"


def register(state: LearnerState, profile: AgentProfile) -> list[SkillEstimated]:
    """A (re-)registered agent, with a first estimate per declared capability: its cold-start prior."""
    state.cohorts.register(profile)
    return [estimate(state, profile.agent_id, capability) for capability in sorted(profile.declared)]


def posterior(state: LearnerState, agent_id: str, capability: str) -> Beta:
    prior, strength = state.cohorts.prior(agent_id, capability, state.records), state.prior_strength
    if state.use_related:
        prior += state.related.advantage(agent_id, capability, state.records)
    if state.use_hierarchy and state.hierarchy.learned:
        level, evidence = state.hierarchy.level(
            agent_id, capability, state.records, state.cohorts.profile(agent_id).declared
        )
        prior, strength = state.hierarchy.prior(prior, level, evidence)
    return Beta.posterior(prior, strength, state.records.get((agent_id, capability), Counts()))


def predict(state: LearnerState, agent_id: str, capability: str, task_features: Mapping[str, float] = {}) -> Prediction:
    return assess(state, agent_id, capability, task_features)[0]


def assess(
    state: LearnerState, agent_id: str, capability: str, task_features: Mapping[str, float] = {}
) -> tuple[Prediction, dict[str, float]]:
    """The prediction and the feature vector it was made from (what a published model would be given)."""
    skill = posterior(state, agent_id, capability)
    attempts = state.records.get((agent_id, capability), Counts()).attempts
    profile = state.cohorts.profile(agent_id)
    x = features(
        capability,
        agent_id,
        profile.labels,
        skill,
        attempts,
        task_features,
        state.model.scaling,
        profile.versions.get(capability),
    )
    return Prediction(
        agent_id=agent_id,
        capability=capability,
        probability=state.model.probability(x),
        proficiency=skill.mean,
        confidence=skill.confidence,
        prior=skill.prior_mean,
        attempts=attempts,
    ), x


def learn(state: LearnerState, outcome: Outcome) -> Learned:
    agent_id, capability, success = outcome.agent_id, outcome.capability, outcome.success
    prediction, x = assess(state, agent_id, capability, outcome.task_features)
    state.metrics.add(prediction.probability, success)
    if state.cohorts.profile(agent_id).share_experience:
        state.model.learn(x, success, capability, outcome.task_features)

    key = (agent_id, capability)
    state.records[key] = state.records.get(key, Counts()).plus(success)
    state.read[key] = state.read.get(key, 0) + 1
    shifts = ()
    trajectory = state.trajectories.setdefault(key, Trajectory(state.drift_delta))
    if (since_change := trajectory.update(success)) is not None:
        shifts = (_rebase(state, key, *since_change),)

    state.outcomes += 1
    if state.use_related and state.outcomes % REFRESH_EVERY == 0:
        state.related = learn_related(state.records, state.cohorts.sharing_agents())
    if state.use_hierarchy and refresh_due(state.outcomes, REFRESH_EVERY):
        state.hierarchy = learn_hierarchy(state.records, state.cohorts.sharing_agents())

    relationships = ()
    if outcome.group_id is not None:
        changed = state.relationships.observe(outcome.group_id, agent_id, success, prediction.probability)
        relationships = tuple(event for pair in changed for event in _relationship_events(state, pair))
    return Learned(prediction, estimate(state, agent_id, capability), shifts, relationships)


def _rebase(state: LearnerState, key: tuple[str, str], successes: int, attempts: int) -> SkillShift:
    # The record before the change describes an agent that no longer exists: keep only the new regime.
    before = posterior(state, *key).mean
    seen = state.records[key].attempts
    state.records[key] = Counts(successes, attempts)
    after = posterior(state, *key).mean
    return SkillShift(
        agent_id=key[0],
        capability=key[1],
        direction="improved" if after > before else "degraded",
        before=before,
        after=after,
        attempts=seen,
    )


def estimate(state: LearnerState, agent_id: str, capability: str) -> SkillEstimated:
    skill = posterior(state, agent_id, capability)
    counts = state.records.get((agent_id, capability), Counts())
    return SkillEstimated(
        agent_id=agent_id,
        capability=capability,
        proficiency=skill.mean,
        confidence=skill.confidence,
        successes=counts.successes,
        attempts=counts.attempts,
        prior_strength=round(skill.prior_strength, 6),
        model_version=state.model_version,
        outcomes_read=state.read.get((agent_id, capability), 0),
    )


def estimates(state: LearnerState, capability: str) -> list[SkillEstimated]:
    """Every declaring agent's estimate: others' outcomes move an agent's prior, not only its own."""
    return [estimate(state, agent_id, capability) for agent_id in state.cohorts.declaring(capability)]


def estimates_after(state: LearnerState, agent_id: str, capability: str) -> list[SkillEstimated]:
    """What one outcome moves: every declaring agent's estimate on its capability, and the agent's own
    on its other capabilities, whose priors carry its level."""
    others = [c for c in sorted(state.cohorts.profile(agent_id).declared) if c != capability]
    return estimates(state, capability) + [estimate(state, agent_id, c) for c in others]


def trend(state: LearnerState, agent_id: str, capability: str) -> float:
    trajectory = state.trajectories.get((agent_id, capability))
    return trajectory.trend if trajectory else 0.0


def _relationship_events(state: LearnerState, key: tuple[str, str]) -> list[RelationshipScored]:
    record = state.relationships.pairs[key]
    return [
        RelationshipScored(
            agent_id=one,
            other_agent_id=other,
            joint_tasks=record.joint_tasks,
            joint_success_rate=record.success_rate,
            lift=record.lift,
            confidence=record.confidence,
            model_version=state.model_version,
        )
        for one, other in (key, key[::-1])
    ]


def publish_model(state: LearnerState) -> ModelPublished:
    metrics = {k: round(v, 6) for k, v in state.metrics.summary().items()}
    return ModelPublished(
        model_id=state.model_id,
        model_version=state.model_version,
        kind=MODEL_KIND,
        parameters=state.model.parameters(),
        metrics=metrics,
        trained_on_events=state.model.trained_on,
    )
