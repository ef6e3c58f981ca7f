"""The load balancer's decisions: who *can* do a task now. Pure functions over plain state.

Never beyond declared capacity: an agent's in-flight set is changed only by the
assignments this logic makes and the outcomes that free them, so replaying the same
events gives the same counts, and a duplicate delivery finds nothing left to change.

No task waits while an agent able to take it has room: the router's candidates come first,
and when none has room, any other available agent meeting the task's requirements does.
A task the balancer gives up on ends with a `TaskTimedOut` at stage `deadline` saying why,
the event that closes a task for everyone who reads the log.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from events.agents import AgentCapabilitiesChanged, AgentDeregistered, AgentHealthChanged, AgentRegistered
from events.envelope import EventBody
from events.tasks import (
    TaskAssigned,
    TaskCompleted,
    TaskFailed,
    TaskHandedOff,
    TaskQueued,
    TaskReassigned,
    TaskRejected,
    TaskRouted,
    TaskStarted,
    TaskSubmitted,
    TaskTimedOut,
)
from services.balancer.queue import WaitingQueue


@dataclass(frozen=True)
class Limits:
    max_attempts: int = 3
    start_timeout: timedelta = timedelta(seconds=60)
    completion_timeout: timedelta = timedelta(seconds=600)  # from the start: an agent may hang yet heartbeat
    top_k: int = 3


@dataclass
class Slot:
    capacity: int
    per_capability: dict[str, int] = field(default_factory=dict)
    in_flight: dict[str, str] = field(default_factory=dict)  # task_id -> capability
    available: bool = True  # registered, not draining, not unhealthy
    capabilities: dict[str, float] = field(default_factory=dict)  # name -> declared proficiency

    def has_room(self, capability: str) -> bool:
        if len(self.in_flight) >= self.capacity:
            return False
        limit = self.per_capability.get(capability)
        return limit is None or sum(c == capability for c in self.in_flight.values()) < limit

    @property
    def is_open(self) -> bool:
        """May be given more work, whatever its limits per capability."""
        return self.available and len(self.in_flight) < self.capacity

    def meets(self, requirements: tuple[tuple[str, float], ...]) -> bool:
        # As the router judges it: every required capability declared, at least as proficient.
        return all(self.capabilities.get(name, -1.0) >= least for name, least in requirements)

    @property
    def load(self) -> float:
        return len(self.in_flight) / self.capacity


@dataclass
class Task:
    task_id: str
    priority: int = 5
    submitter: str = ""
    submitted_at: datetime | None = None
    deadline: datetime | None = None
    capability: str = ""
    requirements: tuple[tuple[str, float], ...] = ()  # (capability, least proficiency); () when unknown
    payload: dict = field(default_factory=dict)  # what the agent is given with the assignment
    candidates: tuple[tuple[str, float, float], ...] = ()  # (agent, predicted success, duration s), ranked
    chosen: str | None = None
    # The router's chance of drawing each candidate: with the balancer's rules, how likely the agent
    # given the task was to get it. Empty when the router logged none.
    propensities: dict[str, float] = field(default_factory=dict)
    attempt: int = 0
    tried: frozenset[str] = frozenset()
    agent_id: str | None = None  # while assigned
    assigned_at: datetime | None = None
    started_at: datetime | None = None  # once its agent said it began
    queued_at: datetime | None = None  # while waiting for room
    # An earlier attempt's agent reported the task done after that attempt was over (it was timed
    # out or taken away meanwhile): the attempt now running may finish it, but none follows.
    done_late: bool = False


@dataclass
class BalancerState:
    slots: dict[str, Slot] = field(default_factory=dict)
    tasks: dict[str, Task] = field(default_factory=dict)
    served: dict[str, int] = field(default_factory=dict)  # per submitter, for fairness
    # The tasks with `queued_at` set, in queue order; derived from `tasks`, never saved.
    waiting: WaitingQueue = field(default_factory=WaitingQueue, repr=False, compare=False)
    # The open agents under each capability they declare, so that looking beyond the router's
    # candidates costs nothing while the fleet is full; derived from `slots`, never saved.
    open_by_capability: dict[str, set[str]] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        for agent_id in self.slots:
            _index_open(self, agent_id)
        for task in self.tasks.values():
            if task.queued_at:
                _enqueue(self, task)


# --- decide ------------------------------------------------------------------------


def decide(state: BalancerState, event: EventBody, now: datetime, limits: Limits = Limits()) -> list[EventBody]:
    """Apply one event to `state` (in place) and return the events it leads to."""
    handler = _HANDLERS.get(type(event))
    return handler(state, event, now, limits) if handler else []


def tick(state: BalancerState, now: datetime, limits: Limits = Limits()) -> list[EventBody]:
    """Time-driven decisions: tasks not started or not finished in time, queued tasks past their deadline."""
    out: list[EventBody] = []
    freed = False
    for task in sorted(state.tasks.values(), key=lambda t: t.task_id):
        if task.agent_id and (late := _late(task, now, limits)):
            stage, missed = late
            agent_id = task.agent_id
            out.append(TaskTimedOut(task_id=task.task_id, agent_id=agent_id, attempt=task.attempt, stage=stage))
            _free(state, task)
            freed = True
            out += _retry(state, task, now, limits, f"{agent_id} {missed}", from_agent=agent_id)
        elif task.queued_at and task.deadline and now > task.deadline:
            out += _end(state, task, "its deadline passed while it waited")
    # A freed slot goes to the waiting, as an outcome's does: no other event may come to offer it.
    return out + _drain_queue(state, now, limits) if freed else out


def _late(task: Task, now: datetime, limits: Limits) -> tuple[str, str] | None:
    """The stage at which an assigned task is late, and what its agent did not do in time."""
    if task.started_at is None:
        if now - task.assigned_at > limits.start_timeout:
            return "start", f"did not start it within {limits.start_timeout.total_seconds():g}s"
    elif now - task.started_at > limits.completion_timeout:
        return "completion", f"did not finish it within {limits.completion_timeout.total_seconds():g}s of starting it"
    return None


def _submitted(state, event: TaskSubmitted, now, limits):
    state.tasks.setdefault(
        event.task_id,
        Task(
            task_id=event.task_id,
            priority=event.priority,
            submitter=event.submitter,
            submitted_at=now,
            deadline=event.deadline,
            capability=event.requirements[0].name,
            requirements=tuple((r.name, r.min_proficiency) for r in event.requirements),
            payload=dict(event.payload),
        ),
    )
    return []


def _routed(state, event: TaskRouted, now, limits):
    # A submission precedes its routing on the same partition, so an unknown task is one that
    # has already ended: a late duplicate of its routing must not start it again.
    task = state.tasks.get(event.task_id)
    if task is None or task.agent_id or task.queued_at or event.chosen_agent_id is None:
        return []  # a duplicate, or a re-route of a task already placed
    task.candidates = tuple(
        (c.agent_id, c.predicted_success or 0.0, c.features.get("expected_duration_s", 0.0))
        for c in event.candidates
        if c.agent_id not in task.tried
    )
    task.chosen = event.chosen_agent_id
    task.propensities = {
        c.agent_id: c.propensity for c in event.candidates if c.propensity and c.agent_id not in task.tried
    }
    return _place(state, task, now, limits)


def _place(state, task: Task, now, limits, *, reason: str = "") -> list[EventBody]:
    agent_id = _pick(state, task, limits)
    return [_queue(state, task, now, reason)] if agent_id is None else _assign(state, task, agent_id, now, limits)


def _queue(state: BalancerState, task: Task, now, reason: str) -> TaskQueued:
    if task.queued_at is None:
        task.queued_at = now
        _enqueue(state, task)
    full = all(c[0] in state.slots and state.slots[c[0]].available for c in task.candidates)
    why = "every capable candidate is at capacity" if full else "no candidate is available now"
    return TaskQueued(
        task_id=task.task_id, capability=task.capability or None, reason=reason or why, position=_position(state, task)
    )


def _pick(state: BalancerState, task: Task, limits: Limits) -> str | None:
    """The router's choice when it has room; else the earliest predicted completion among the top k;
    else, none of the candidates having room, another agent able to take the task."""
    open_ = [
        (rank, agent, predicted, duration)
        for rank, (agent, predicted, duration) in enumerate(task.candidates)
        if agent not in task.tried
        and (slot := state.slots.get(agent))
        and slot.available
        and slot.has_room(task.capability)
    ]
    if not open_:
        return _beyond_candidates(state, task)
    if task.chosen in {o[1] for o in open_}:
        return task.chosen
    within_k = [o for o in open_ if o[0] < limits.top_k] or open_

    def completion(o):
        rank, agent, predicted, duration = o
        slot = state.slots[agent]
        return ((len(slot.in_flight) + 1) / slot.capacity * max(duration, 1.0) / max(predicted, 0.05), rank)

    return min(within_k, key=completion)[1]


def _beyond_candidates(state: BalancerState, task: Task) -> str | None:
    """The least loaded agent, then the first by id, that meets the task's requirements and has room."""
    if not task.requirements:
        return None  # unknown (a task from a version 1 snapshot): only the router's candidates may take it
    able = [
        agent
        for agent in state.open_by_capability.get(task.capability, ())
        if agent not in task.tried
        and (slot := state.slots[agent]).meets(task.requirements)
        and slot.has_room(task.capability)
    ]
    return min(able, key=lambda agent: (state.slots[agent].load, agent), default=None)


def chance_of(state: BalancerState, task: Task, agent_id: str, limits: Limits) -> float | None:
    """How likely `agent_id` was to be given the task now: the router's chance of drawing each candidate,
    summed over the draws that `_pick` would turn into this agent (its choice when it has room, else
    the same rule for all). None when the router logged no chances."""
    if not task.propensities:
        return None
    drawn, chance = task.chosen, 0.0
    try:
        for candidate, propensity in task.propensities.items():
            task.chosen = candidate
            if _pick(state, task, limits) == agent_id:
                chance += propensity
    finally:
        task.chosen = drawn
    return round(min(1.0, chance), 6)


def _assign(
    state, task: Task, agent_id: str, now, limits: Limits, *, reassigned_from: str | None = None, reason: str = ""
) -> list[EventBody]:
    """Give the task to the agent; a reassignment, or an agent the router did not offer, first says why."""
    why = "; ".join(filter(None, (reason, _why_not_a_candidate(task, agent_id))))
    propensity = chance_of(state, task, agent_id, limits)
    task.attempt += 1
    task.agent_id, task.assigned_at, task.started_at, task.queued_at = agent_id, now, None, None
    task.tried = task.tried | {agent_id}
    state.slots[agent_id].in_flight[task.task_id] = task.capability
    _index_open(state, agent_id)
    state.served[task.submitter] = state.served.get(task.submitter, 0) + 1
    assigned = TaskAssigned(
        agent_id=agent_id,
        task_id=task.task_id,
        attempt=task.attempt,
        capability=task.capability or "unspecified",
        deadline=task.deadline,
        payload=task.payload,
        propensity=propensity,
    )
    if not why:
        return [assigned]
    return [
        TaskReassigned(
            task_id=task.task_id, from_agent_id=reassigned_from, to_agent_id=agent_id, attempt=task.attempt, reason=why
        ),
        assigned,
    ]


def _why_not_a_candidate(task: Task, agent_id: str) -> str:
    if any(candidate[0] == agent_id for candidate in task.candidates):
        return ""
    # Chosen by a fixed rule, so with certainty: the router gave this agent no probability at all.
    return (
        f"none of the router's candidates has room: {agent_id} meets the requirements and is the least "
        f"loaded other agent with room, picked with probability 1"
    )


def _free(state: BalancerState, task: Task) -> None:
    if task.agent_id and (slot := state.slots.get(task.agent_id)):
        slot.in_flight.pop(task.task_id, None)
        _index_open(state, task.agent_id)
    task.agent_id, task.assigned_at, task.started_at = None, None, None


def _current(state, event) -> Task | None:
    """The task this outcome is about, if it is the live attempt of that agent (not a duplicate)."""
    task = state.tasks.get(event.task_id)
    agent = getattr(event, "agent_id", None) or getattr(event, "from_agent_id", None)
    if task and task.agent_id == agent and task.attempt == event.attempt:
        return task
    return None


def _started(state, event: TaskStarted, now, limits):
    if task := _current(state, event):
        task.started_at = task.started_at or now  # the completion deadline runs from the first word of it
    return []


def _finished(state, event, now, limits):
    task = _current(state, event)
    if task is None:
        return _done_by_an_earlier_attempt(state, event)
    agent_id = task.agent_id
    _free(state, task)
    retry = isinstance(event, TaskRejected) or (isinstance(event, TaskFailed) and event.retryable)
    out = _retry(state, task, now, limits, _why(event), from_agent=agent_id) if retry else []
    if not retry:
        del state.tasks[task.task_id]
    return out + _drain_queue(state, now, limits)


def _why(event) -> str:
    if isinstance(event, TaskRejected):
        return f"rejected by {event.agent_id}: {_quoted(event.reason)}"
    return f"failed on {event.agent_id}: {_quoted(event.error)}"


# An agent's own words take at most half of a reason (4000 characters): the rest is the balancer's.
QUOTED_MAX = 2000


def _quoted(text: str) -> str:
    return text if len(text) <= QUOTED_MAX else text[: QUOTED_MAX - 1] + "…"


def _done_by_an_earlier_attempt(state, event) -> list[EventBody]:
    """An earlier attempt's final word, come after that attempt was over: the task is done all the same.

    Terminal states stay terminal: a task its agent completed, or failed for good, is not tried
    again, whichever attempt said so. Waiting to be retried, it leaves the queue now; held by a
    later attempt, that attempt may finish, and nothing follows it."""
    task = state.tasks.get(event.task_id)
    final = isinstance(event, TaskCompleted) or (isinstance(event, TaskFailed) and not event.retryable)
    if task is None or not final or event.agent_id not in task.tried or event.attempt > task.attempt:
        return []  # not the end of the task, or not from an attempt the balancer made
    if task.agent_id is None:
        state.waiting.remove(task.task_id)
        del state.tasks[task.task_id]
    else:
        task.done_late = True
    return []


def _retry(state, task: Task, now, limits, reason: str, *, from_agent: str | None) -> list[EventBody]:
    if task.done_late:  # an earlier attempt finished it: no attempt follows this one
        state.waiting.remove(task.task_id)
        del state.tasks[task.task_id]
        return []
    if task.attempt >= limits.max_attempts:
        return _end(state, task, f"given up: {reason}, and all {limits.max_attempts} attempts are used")
    if not _untried_agent_left(state, task):
        return _end(state, task, f"given up: {reason}, and no agent it has not tried can take it")
    agent_id = _pick(state, task, limits)
    if agent_id is None:
        return [
            TaskReassigned(task_id=task.task_id, from_agent_id=from_agent, attempt=task.attempt + 1, reason=reason),
            _queue(state, task, now, f"waiting to retry: {reason}"),
        ]
    return _assign(state, task, agent_id, now, limits, reassigned_from=from_agent, reason=reason)


def _untried_agent_left(state: BalancerState, task: Task) -> bool:
    """Whether an agent may still take the task that has not tried it: one of the router's candidates,
    or another available agent meeting its requirements."""
    if any(c[0] not in task.tried for c in task.candidates):
        return True
    return bool(task.requirements) and any(
        agent not in task.tried and slot.available and slot.meets(task.requirements)
        for agent, slot in state.slots.items()
    )


def _end(state: BalancerState, task: Task, reason: str) -> list[EventBody]:
    """Drop the task, closing it on the log: stage `deadline` is the one that ends a task for good."""
    state.waiting.remove(task.task_id)
    del state.tasks[task.task_id]
    return [TaskTimedOut(task_id=task.task_id, attempt=task.attempt, stage="deadline", reason=reason)]


def _handed_off(state, event: TaskHandedOff, now, limits):
    task = _current(state, event)
    if task is None or event.subtask_id is not None:
        return []  # a subtask passed on leaves the task itself with its agent
    _free(state, task)
    if event.to_agent_id:
        task.candidates = ((event.to_agent_id, 0.5, 0.0), *task.candidates)
        task.chosen = event.to_agent_id
        task.propensities = {event.to_agent_id: 1.0}  # the agent handing it off chose, not the router
    placed = _place(state, task, now, limits, reason=f"handed off by {event.from_agent_id}")
    return placed + _drain_queue(state, now, limits)


def _registered(state, event: AgentRegistered, now, limits):
    slot = state.slots.get(event.agent_id)
    in_flight = slot.in_flight if slot else {}
    state.slots[event.agent_id] = Slot(
        capacity=event.capacity,
        per_capability=dict(event.capacity_per_capability),
        in_flight=in_flight,
        available=True,
        capabilities={c.name: c.proficiency for c in event.capabilities},
    )
    _index_open(state, event.agent_id, declared_before=slot.capabilities if slot else {})
    return _drain_queue(state, now, limits)


def _capabilities_changed(state, event: AgentCapabilitiesChanged, now, limits):
    if (slot := state.slots.get(event.agent_id)) is None:
        return []
    before, slot.capabilities = slot.capabilities, event.proficiencies_after(slot.capabilities)
    _index_open(state, event.agent_id, declared_before=before)
    return _drain_queue(state, now, limits)


def _deregistered(state, event: AgentDeregistered, now, limits):
    if slot := state.slots.get(event.agent_id):
        slot.available = False  # in-flight work finishes; nothing new
        _index_open(state, event.agent_id)
    return []


def _health(state, event: AgentHealthChanged, now, limits):
    slot = state.slots.get(event.agent_id)
    if slot is None:
        return []
    if event.current == "unhealthy":
        slot.available = False
        _index_open(state, event.agent_id)
        out: list[EventBody] = []
        for task_id in sorted(set(slot.in_flight) | set(event.in_flight_task_ids)):
            task = state.tasks.get(task_id)
            if task and task.agent_id == event.agent_id:
                _free(state, task)
                out += _retry(state, task, now, limits, f"{event.agent_id} is unhealthy", from_agent=event.agent_id)
        return out
    if event.current == "healthy" and event.previous == "unhealthy":
        slot.available = True
        _index_open(state, event.agent_id)
        return _drain_queue(state, now, limits)
    return []


def _drain_queue(state: BalancerState, now, limits) -> list[EventBody]:
    """Place waiting tasks while any fits: most urgent first, then least-served submitter, then oldest."""
    out: list[EventBody] = []
    # Slots only fill up while draining, so only tasks an open agent may take are visited, and
    # the order is fixed at the start: a submitter served during the drain keeps its place.
    open_ = {a for a, slot in state.slots.items() if slot.is_open}
    open_ |= {_any_agent_with(c) for c, agents in state.open_by_capability.items() if agents}
    placed = []
    for task_id in state.waiting.in_order(open_, dict(state.served)):
        task = state.tasks[task_id]
        if (agent_id := _pick(state, task, limits)) is not None:
            out += _assign(state, task, agent_id, now, limits)
            placed.append(task_id)
            if not (slot := state.slots[agent_id]).is_open:
                open_.discard(agent_id)
                open_ -= {_any_agent_with(c) for c in slot.capabilities if not state.open_by_capability[c]}
    for task_id in placed:
        state.waiting.remove(task_id)
    return out


def _position(state: BalancerState, task: Task) -> int:
    return state.waiting.position(task.task_id, state.served)


def _enqueue(state: BalancerState, task: Task) -> None:
    # Filed under each candidate not yet tried, and under "any agent with its capability" for the others.
    candidates = tuple(c[0] for c in task.candidates if c[0] not in task.tried)
    anyone = (_any_agent_with(task.capability),) if task.requirements else ()
    state.waiting.add(
        task.task_id,
        priority=task.priority,
        queued_at=task.queued_at,
        submitter=task.submitter,
        capability=task.capability,
        agents=candidates + anyone,
    )


def _any_agent_with(capability: str) -> str:
    """Where the queue files a task for any agent declaring the capability; never an agent's id,
    which begins with a letter or a digit."""
    return f"*{capability}"


def _index_open(state: BalancerState, agent_id: str, declared_before: Iterable[str] = ()) -> None:
    """Bring `open_by_capability` in step with the agent's slot after it changed."""
    slot = state.slots[agent_id]
    for name in set(declared_before) - slot.capabilities.keys():
        state.open_by_capability.get(name, set()).discard(agent_id)
    for name in slot.capabilities:
        agents = state.open_by_capability.setdefault(name, set())
        if slot.is_open:
            agents.add(agent_id)
        else:
            agents.discard(agent_id)


_HANDLERS = {
    TaskSubmitted: _submitted,
    TaskRouted: _routed,
    TaskStarted: _started,
    TaskCompleted: _finished,
    TaskFailed: _finished,
    TaskRejected: _finished,
    TaskHandedOff: _handed_off,
    AgentRegistered: _registered,
    AgentCapabilitiesChanged: _capabilities_changed,
    AgentDeregistered: _deregistered,
    AgentHealthChanged: _health,
}
