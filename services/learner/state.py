"""What the learner folds from the log, and what it publishes for each input.

`LearnerFold.apply` takes one event and returns the events the learner publishes because
of it. The same inputs in the same order give the same outputs, so the shell rebuilds the
state at start by applying the whole log and discarding what it would have published then.
An outcome needs its attempt's capability, from the assignment; the two sit on different
topics with no common order, so whichever is read second completes the pair.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field, replace

from events.agents import AgentCapabilitiesChanged, AgentMemoryProfileUpdated, AgentRegistered
from events.envelope import EventBody
from events.learning import SkillShiftDetected
from events.tasks import TaskAssigned, TaskCompleted, TaskFailed, TaskHandedOff, TaskRouted, TaskSubmitted
from services.learner.cohort import AgentProfile
from services.learner.logic import (
    Learned,
    LearnerState,
    Outcome,
    estimate,
    estimates,
    learn,
    publish_model,
    register,
)
from services.learner.metrics import PrequentialMetrics

REMEMBERED = 100_000  # outcomes waiting for their assignment, and open tasks' context; oldest forgotten first


def _bounded(mapping: OrderedDict, key, value) -> None:
    mapping[key] = value
    mapping.move_to_end(key)
    while len(mapping) > REMEMBERED:
        mapping.popitem(last=False)


@dataclass
class LearnerFold:
    publish_every: int = 100
    state: LearnerState = field(default_factory=LearnerState)
    features: OrderedDict = field(default_factory=OrderedDict)  # task id -> its numeric features
    groups: OrderedDict = field(default_factory=OrderedDict)  # task id -> job, or itself once handed off
    attempts: OrderedDict = field(default_factory=OrderedDict)  # (task, agent, attempt) -> capability
    waiting: OrderedDict = field(default_factory=OrderedDict)  # (task, agent, attempt) -> success
    routed: OrderedDict = field(default_factory=OrderedDict)  # task id -> (chosen agent, predicted success)
    router_metrics: PrequentialMetrics = field(default_factory=PrequentialMetrics)
    outcomes: int = 0
    touched: set[str] = field(default_factory=set)  # capabilities learned about since the last model
    touched_agents: set[str] = field(default_factory=set)  # agents whose level moved since the last model

    def apply(self, event: EventBody) -> list[EventBody]:
        handler = _HANDLERS.get(type(event))
        return handler(self, event) if handler else []

    def snapshot(self) -> list[EventBody]:
        """Every current estimate and the model: what a restarted learner republishes once caught up,
        in case outcomes arrived while it was away."""
        skills = [
            e
            for c in sorted({c for p in self.state.cohorts.profiles.values() for c in p.declared})
            for e in estimates(self.state, c)
        ]
        return skills + ([self.model()] if self.state.model.trained_on else [])

    def model(self) -> EventBody:
        published = publish_model(self.state)
        router = {f"router_{k}": round(v, 6) for k, v in self.router_metrics.summary().items()}
        return published.model_copy(update={"metrics": {**published.metrics, **router}})

    def _learn(self, task_id: str, agent_id: str, capability: str, success: bool) -> list[EventBody]:
        learned = learn(
            self.state,
            Outcome(task_id, agent_id, capability, success, self.features.get(task_id, {}), self.groups.get(task_id)),
        )
        if (decision := self.routed.get(task_id)) and decision[0] == agent_id and decision[1] is not None:
            self.router_metrics.add(decision[1], success)
        self.outcomes += 1
        self.touched.add(capability)
        self.touched_agents.add(agent_id)
        return self._published(learned)

    def _published(self, learned: Learned) -> list[EventBody]:
        out: list[EventBody] = [learned.skill]
        out += [
            SkillShiftDetected(
                agent_id=s.agent_id,
                capability=s.capability,
                direction=s.direction,
                before=s.before,
                after=s.after,
                attempts=s.attempts,
                model_version=self.state.model_version,
            )
            for s in learned.shifts
        ]
        out += learned.relationships
        if self.outcomes % self.publish_every == 0:
            # Others' outcomes move every sharing agent's prior; each learned outcome publishes only
            # its own agent's estimate, and the rest follow with the model.
            # An agent's outcome moves its level, hence its estimates on its other capabilities too.
            own = (learned.skill.agent_id, learned.skill.capability)
            moved = [e for c in sorted(self.touched) for e in estimates(self.state, c)]
            moved += [
                estimate(self.state, a, c)
                for a in sorted(self.touched_agents)
                for c in sorted(self.state.cohorts.profile(a).declared)
                if c not in self.touched
            ]
            out += [e for e in moved if (e.agent_id, e.capability) != own]
            self.touched.clear()
            self.touched_agents.clear()
            out.append(self.model())
        return out


def _registered(view: LearnerFold, event: AgentRegistered) -> list[EventBody]:
    return list(register(view.state, AgentProfile.from_registration(event)))


def _capabilities_changed(view: LearnerFold, event: AgentCapabilitiesChanged) -> list[EventBody]:
    if event.agent_id not in view.state.cohorts.profiles:
        return []
    profile = view.state.cohorts.profile(event.agent_id)
    return list(
        register(
            view.state,
            replace(
                profile,
                declared=event.proficiencies_after(profile.declared),
                versions=event.versions_after(profile.versions),
            ),
        )
    )


def _memory_profile_updated(view: LearnerFold, event: AgentMemoryProfileUpdated) -> list[EventBody]:
    profile = view.state.cohorts.profiles.get(event.agent_id)
    if profile is None or profile.share_experience == event.memory_profile.share_experience:
        return []
    register(view.state, replace(profile, share_experience=event.memory_profile.share_experience))
    # The agent's own estimate stays: what moves is the prior of every other agent declaring its capabilities.
    return [e for c in sorted(profile.declared) for e in estimates(view.state, c)]


def _submitted(view: LearnerFold, event: TaskSubmitted) -> list[EventBody]:
    if event.features:
        _bounded(view.features, event.task_id, dict(event.features))
    if event.job_id:
        _bounded(view.groups, event.task_id, event.job_id)
    return []


def _routed(view: LearnerFold, event: TaskRouted) -> list[EventBody]:
    _bounded(view.routed, event.task_id, (event.chosen_agent_id, event.predicted_success))
    return []


def _assigned(view: LearnerFold, event: TaskAssigned) -> list[EventBody]:
    attempt = (event.task_id, event.agent_id, event.attempt)
    if attempt in view.waiting:  # its outcome was read first
        return view._learn(event.task_id, event.agent_id, event.capability, view.waiting.pop(attempt))
    _bounded(view.attempts, attempt, event.capability)
    return []


def _ended(view: LearnerFold, event: TaskCompleted | TaskFailed) -> list[EventBody]:
    # Only tries teach: a rejection, hand-off or timeout says nothing about the agent's skill.
    success = isinstance(event, TaskCompleted) and event.success
    attempt = (event.task_id, event.agent_id, event.attempt)
    if attempt not in view.attempts:
        _bounded(view.waiting, attempt, success)
        return []
    return view._learn(event.task_id, event.agent_id, view.attempts.pop(attempt), success)


def _handed_off(view: LearnerFold, event: TaskHandedOff) -> list[EventBody]:
    # Whoever takes the task over works with the agent that passed it on: both join one group.
    group = view.groups.get(event.task_id) or event.task_id
    _bounded(view.groups, event.task_id, group)
    members = view.state.relationships.groups.setdefault(group, [])
    if event.from_agent_id not in members:
        members.append(event.from_agent_id)
    return []


_HANDLERS = {
    AgentRegistered: _registered,
    AgentCapabilitiesChanged: _capabilities_changed,
    AgentMemoryProfileUpdated: _memory_profile_updated,
    TaskSubmitted: _submitted,
    TaskRouted: _routed,
    TaskAssigned: _assigned,
    TaskCompleted: _ended,
    TaskFailed: _ended,
    TaskHandedOff: _handed_off,
}
# The event types the view changes on; the log follower passes over the others unread.
HANDLED = frozenset(cls.event_type for cls in _HANDLERS)
