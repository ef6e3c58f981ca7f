"""What the router knows, folded from the log: agents, their load and record, learned skills.

`RouterFold.apply` turns one event into changes of the `RouterState` that `route` reads,
plus what is needed to derive it: which agent holds which attempt of which task (for load,
and for the capability an outcome is about) and which job a task belongs to.
"""

from __future__ import annotations

import logging
from collections import Counter, OrderedDict
from dataclasses import dataclass, field, replace

from pydantic import ValidationError

from events.agents import AgentCapabilitiesChanged, AgentDeregistered, AgentHealthChanged, AgentRegistered
from events.envelope import EventBody
from events.learning import ModelPublished, RelationshipScored, SkillEstimated
from events.tasks import (
    TaskAssigned,
    TaskCompleted,
    TaskFailed,
    TaskHandedOff,
    TaskReassigned,
    TaskRejected,
    TaskRouted,
    TaskSubmitted,
    TaskTimedOut,
)
from services.router.logic import AgentState, RouterState, learn_outcome, take_estimate
from services.success_model.logistic import LinearPredictor

log = logging.getLogger("orchestrator.router")


# Attempts that ended, remembered for a while: an ending read before its assignment (the
# router reads several topics, which have no common order) waits here for it, and a
# duplicate of either is recognised. Bounded, the oldest forgotten first.
REMEMBERED_ENDINGS = 100_000
# Tasks the router has routed, as read back from the log: a submission delivered again (its
# batch was read but not committed before a crash or a rebalance, or a client sent it twice)
# is not decided a second time. Bounded like the endings: redeliveries come within moments.
REMEMBERED_ROUTINGS = 100_000


@dataclass(frozen=True)
class Holding:
    agent_id: str
    attempt: int
    capability: str


@dataclass
class RouterFold:
    state: RouterState = field(default_factory=RouterState)
    holdings: dict[str, Holding] = field(default_factory=dict)  # task id -> the attempt in flight
    loads: Counter = field(default_factory=Counter)  # agent id -> attempts in flight
    task_jobs: dict[str, str] = field(default_factory=dict)  # task id -> job id, while the task is open
    # (task, agent, attempt) -> the outcome still waiting for its assignment, or None once applied
    endings: OrderedDict = field(default_factory=OrderedDict)
    registry_version: int = 0  # changes whenever an agent's routability or capabilities may have
    routed: OrderedDict = field(default_factory=OrderedDict)  # task id -> None, the latest last

    def already_routed(self, task_id: str) -> bool:
        return task_id in self.routed

    def remember_routed(self, task_id: str) -> None:
        """Called for each TaskRouted read from the log, and by the router as it emits one: a copy
        of the submission in the same batch comes before the log has it back."""
        self.routed[task_id] = None
        self.routed.move_to_end(task_id)
        while len(self.routed) > REMEMBERED_ROUTINGS:
            self.routed.popitem(last=False)

    def apply(self, event: EventBody) -> None:
        handler = _HANDLERS.get(type(event))
        if handler is not None:
            handler(self, event)

    def _set_agent(self, agent: AgentState) -> None:
        self.state.agents[agent.agent_id] = agent
        self.registry_version += 1

    def _add_load(self, agent_id: str, change: int) -> None:
        self.loads[agent_id] += change
        if agent := self.state.agents.get(agent_id):
            self.state.agents[agent_id] = replace(agent, in_flight=self.loads[agent_id])

    def _remember(self, attempt: tuple[str, str, int], outcome: EventBody | None) -> None:
        self.endings[attempt] = outcome
        while len(self.endings) > REMEMBERED_ENDINGS:
            self.endings.popitem(last=False)

    def _hold(self, task_id: str, holding: Holding) -> None:
        if previous := self.holdings.get(task_id):
            self._add_load(previous.agent_id, -1)
        self.holdings[task_id] = holding
        self._add_load(holding.agent_id, +1)

    def _release(self, task_id: str) -> Holding:
        holding = self.holdings.pop(task_id)
        self._add_load(holding.agent_id, -1)
        self._remember((task_id, holding.agent_id, holding.attempt), None)
        return holding


def _registered(view: RouterFold, event: AgentRegistered) -> None:
    previous = view.state.agents.get(event.agent_id)
    # Labels describe the agent (team, region, …); capability tags describe its skills.
    tags = frozenset(event.labels.values()) | {tag for c in event.capabilities for tag in c.tags}
    view._set_agent(
        AgentState(
            agent_id=event.agent_id,
            capabilities={c.name: c.proficiency for c in event.capabilities},
            capacity=event.capacity,
            cost_per_task=event.cost_per_task,
            tags=tags,
            labels=tuple(sorted(event.labels.items())),
            versions=tuple(sorted((c.name, c.version) for c in event.capabilities if c.version)),
            status="registered",
            health=previous.health if previous else "unknown",
            in_flight=view.loads[event.agent_id],
        )
    )


def _capabilities_changed(view: RouterFold, event: AgentCapabilitiesChanged) -> None:
    if (agent := view.state.agents.get(event.agent_id)) is None:
        return
    versions = event.versions_after(dict(agent.versions))
    view._set_agent(
        replace(
            agent, capabilities=event.proficiencies_after(agent.capabilities), versions=tuple(sorted(versions.items()))
        )
    )


def _deregistered(view: RouterFold, event: AgentDeregistered) -> None:
    if agent := view.state.agents.get(event.agent_id):
        view._set_agent(replace(agent, status="draining" if event.drain else "deregistered"))


def _health_changed(view: RouterFold, event: AgentHealthChanged) -> None:
    if agent := view.state.agents.get(event.agent_id):
        view._set_agent(replace(agent, health=event.current))
    if event.current == "unhealthy":
        # The balancer takes every task from an unhealthy agent, to retry it elsewhere or drop it.
        for task_id in [t for t, h in view.holdings.items() if h.agent_id == event.agent_id]:
            view._release(task_id)


def _routed(view: RouterFold, event: TaskRouted) -> None:
    view.remember_routed(event.task_id)


def _submitted(view: RouterFold, event: TaskSubmitted) -> None:
    if event.job_id:
        view.task_jobs[event.task_id] = event.job_id
        if holding := view.holdings.get(event.task_id):  # its assignment was read first
            _join(view, event.job_id, holding.agent_id)


def _join(view: RouterFold, job_id: str, agent_id: str) -> None:
    view.state.job_members[job_id] = view.state.job_members.get(job_id, frozenset()) | {agent_id}


def _assigned(view: RouterFold, event: TaskAssigned) -> None:
    holding = Holding(event.agent_id, event.attempt, event.capability)
    if job_id := view.task_jobs.get(event.task_id):
        _join(view, job_id, event.agent_id)
    attempt = (event.task_id, event.agent_id, event.attempt)
    if attempt not in view.endings:
        view._hold(event.task_id, holding)
    elif (outcome := view.endings[attempt]) is not None:  # it ended before we read that it began
        view._remember(attempt, None)
        _learn(view, holding, outcome)


def _ended(view: RouterFold, event) -> None:
    agent_id = getattr(event, "agent_id", None) or event.from_agent_id
    number = event.attempt - 1 if isinstance(event, TaskReassigned) else event.attempt  # it names the next one
    holding = view.holdings.get(event.task_id)
    if holding is not None and (holding.agent_id, holding.attempt) == (agent_id, number):
        _learn(view, view._release(event.task_id), event)
    elif (event.task_id, agent_id, number) not in view.endings:
        view._remember((event.task_id, agent_id, number), event)
    if isinstance(event, TaskCompleted) or (isinstance(event, TaskFailed) and not event.retryable):
        view.task_jobs.pop(event.task_id, None)


def _learn(view: RouterFold, holding: Holding, outcome: EventBody) -> None:
    # Only tries count: a rejection, hand-off or timeout says nothing about the agent's skill.
    if isinstance(outcome, TaskCompleted):
        learn_outcome(view.state, holding.agent_id, holding.capability, outcome.success, outcome.duration_ms)
    elif isinstance(outcome, TaskFailed):
        learn_outcome(view.state, holding.agent_id, holding.capability, False)


def _handed_off(view: RouterFold, event: TaskHandedOff) -> None:
    if event.subtask_id is None:  # a subtask handed on leaves the task with its agent
        _ended(view, event)


def _timed_out(view: RouterFold, event: TaskTimedOut) -> None:
    if event.agent_id is not None:
        _ended(view, event)


def _reassigned(view: RouterFold, event: TaskReassigned) -> None:
    if event.from_agent_id is not None:
        _ended(view, event)


def _skill_estimated(view: RouterFold, event: SkillEstimated) -> None:
    take_estimate(view.state, event)


def _relationship_scored(view: RouterFold, event: RelationshipScored) -> None:
    # Lift compares the pair's joint success with what each does alone: the same seen from either side.
    view.state.relationships[(event.agent_id, event.other_agent_id)] = event.lift
    view.state.relationships[(event.other_agent_id, event.agent_id)] = event.lift


def _model_published(view: RouterFold, event: ModelPublished) -> None:
    # Parameters are validated, never executed; a model that fails leaves the last good one in use.
    try:
        predictor = LinearPredictor.from_parameters(event.parameters)
    except ValidationError as error:
        log.warning(
            "model %s %s refused, still using %s: %s",
            event.model_id,
            event.model_version,
            view.state.model_version,
            error.errors()[0]["msg"] if error.errors() else error,
        )
        return
    view.state.predictor = predictor
    view.state.model_version = event.model_version


_HANDLERS = {
    AgentRegistered: _registered,
    AgentCapabilitiesChanged: _capabilities_changed,
    AgentDeregistered: _deregistered,
    AgentHealthChanged: _health_changed,
    TaskSubmitted: _submitted,
    TaskRouted: _routed,
    TaskAssigned: _assigned,
    TaskCompleted: _ended,
    TaskFailed: _ended,
    TaskRejected: _ended,
    TaskHandedOff: _handed_off,
    TaskTimedOut: _timed_out,
    TaskReassigned: _reassigned,
    SkillEstimated: _skill_estimated,
    RelationshipScored: _relationship_scored,
    ModelPublished: _model_published,
}
# The event types the view changes on; the log follower passes over the others unread.
HANDLED = frozenset(cls.event_type for cls in _HANDLERS)
