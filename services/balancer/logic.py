"""The load balancer's decisions: who *can* do a task now. Pure functions over plain state.

Never beyond declared capacity: an agent's in-flight set is changed only by the
assignments this logic makes and the outcomes that free them, so replaying the same
events gives the same counts, and a duplicate delivery finds nothing left to change.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from events.agents import AgentDeregistered, AgentHealthChanged, AgentRegistered
from events.envelope import EventBody
from events.tasks import (TaskAssigned, TaskCompleted, TaskFailed, TaskHandedOff, TaskQueued,
                          TaskReassigned, TaskRejected, TaskRouted, TaskStarted, TaskSubmitted,
                          TaskTimedOut)
from services.balancer.queue import WaitingQueue


@dataclass(frozen=True)
class Limits:
    max_attempts: int = 3
    start_timeout: timedelta = timedelta(seconds=60)
    top_k: int = 3


@dataclass
class Slot:
    capacity: int
    per_capability: dict[str, int] = field(default_factory=dict)
    in_flight: dict[str, str] = field(default_factory=dict)  # task_id -> capability
    available: bool = True  # registered, not draining, not unhealthy

    def has_room(self, capability: str) -> bool:
        if len(self.in_flight) >= self.capacity:
            return False
        limit = self.per_capability.get(capability)
        return limit is None or sum(c == capability for c in self.in_flight.values()) < limit

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
    payload: dict = field(default_factory=dict)  # what the agent is given with the assignment
    candidates: tuple[tuple[str, float, float], ...] = ()  # (agent, predicted success, duration s), ranked
    chosen: str | None = None
    attempt: int = 0
    tried: frozenset[str] = frozenset()
    agent_id: str | None = None  # while assigned
    assigned_at: datetime | None = None
    started: bool = False
    queued_at: datetime | None = None  # while waiting for room


@dataclass
class BalancerState:
    slots: dict[str, Slot] = field(default_factory=dict)
    tasks: dict[str, Task] = field(default_factory=dict)
    served: dict[str, int] = field(default_factory=dict)  # per submitter, for fairness
    # The tasks with `queued_at` set, in queue order; derived from `tasks`, never saved.
    waiting: WaitingQueue = field(default_factory=WaitingQueue, repr=False, compare=False)

    def __post_init__(self) -> None:
        for task in self.tasks.values():
            if task.queued_at:
                _enqueue(self, task)


# --- decide ------------------------------------------------------------------------

def decide(state: BalancerState, event: EventBody, now: datetime, limits: Limits = Limits()) -> list[EventBody]:
    """Apply one event to `state` (in place) and return the events it leads to."""
    handler = _HANDLERS.get(type(event))
    return handler(state, event, now, limits) if handler else []


def tick(state: BalancerState, now: datetime, limits: Limits = Limits()) -> list[EventBody]:
    """Time-driven decisions: tasks not started in time, queued tasks past their deadline."""
    out: list[EventBody] = []
    for task in sorted(state.tasks.values(), key=lambda t: t.task_id):
        if task.agent_id and not task.started and now - task.assigned_at > limits.start_timeout:
            agent_id = task.agent_id
            out.append(TaskTimedOut(task_id=task.task_id, agent_id=agent_id, attempt=task.attempt, stage="start"))
            _free(state, task)
            out += _retry(state, task, now, limits, f"{agent_id} did not start it within "
                          f"{limits.start_timeout.total_seconds():g}s", from_agent=agent_id)
        elif task.queued_at and task.deadline and now > task.deadline:
            out.append(TaskTimedOut(task_id=task.task_id, attempt=task.attempt, stage="deadline"))
            state.waiting.remove(task.task_id)
            del state.tasks[task.task_id]
    return out


def _submitted(state, event: TaskSubmitted, now, limits):
    state.tasks.setdefault(event.task_id, Task(
        task_id=event.task_id, priority=event.priority, submitter=event.submitter, submitted_at=now,
        deadline=event.deadline, capability=event.requirements[0].name, payload=dict(event.payload)))
    return []


def _routed(state, event: TaskRouted, now, limits):
    # A submission precedes its routing on the same partition, so an unknown task is one that
    # has already ended: a late duplicate of its routing must not start it again.
    task = state.tasks.get(event.task_id)
    if task is None or task.agent_id or task.queued_at or event.chosen_agent_id is None:
        return []  # a duplicate, or a re-route of a task already placed
    task.candidates = tuple((c.agent_id, c.predicted_success or 0.0, c.features.get("expected_duration_s", 0.0))
                            for c in event.candidates if c.agent_id not in task.tried)
    task.chosen = event.chosen_agent_id
    return _place(state, task, now, limits)


def _place(state, task: Task, now, limits, *, reason: str = "") -> list[EventBody]:
    agent_id = _pick(state, task, limits)
    if agent_id is None:
        if task.queued_at is None:
            task.queued_at = now
            _enqueue(state, task)
        full = all(c[0] in state.slots and state.slots[c[0]].available for c in task.candidates)
        why = "every capable candidate is at capacity" if full else "no candidate is available now"
        return [TaskQueued(task_id=task.task_id, capability=task.capability or None,
                           reason=reason or why, position=_position(state, task))]
    return _assign(state, task, agent_id, now)


def _pick(state: BalancerState, task: Task, limits: Limits) -> str | None:
    """The router's choice when it has room; else the earliest predicted completion among the top k."""
    open_ = [(rank, agent, predicted, duration) for rank, (agent, predicted, duration) in enumerate(task.candidates)
             if agent not in task.tried and (slot := state.slots.get(agent)) and slot.available
             and slot.has_room(task.capability)]
    if not open_:
        return None
    if task.chosen in {o[1] for o in open_}:
        return task.chosen
    within_k = [o for o in open_ if o[0] < limits.top_k] or open_

    def completion(o):
        rank, agent, predicted, duration = o
        slot = state.slots[agent]
        return ((len(slot.in_flight) + 1) / slot.capacity * max(duration, 1.0) / max(predicted, 0.05), rank)
    return min(within_k, key=completion)[1]


def _assign(state, task: Task, agent_id: str, now) -> list[EventBody]:
    task.attempt += 1
    task.agent_id, task.assigned_at, task.started, task.queued_at = agent_id, now, False, None
    task.tried = task.tried | {agent_id}
    state.slots[agent_id].in_flight[task.task_id] = task.capability
    state.served[task.submitter] = state.served.get(task.submitter, 0) + 1
    return [TaskAssigned(agent_id=agent_id, task_id=task.task_id, attempt=task.attempt,
                         capability=task.capability or "unspecified", deadline=task.deadline,
                         payload=task.payload)]


def _free(state: BalancerState, task: Task) -> None:
    if task.agent_id and (slot := state.slots.get(task.agent_id)):
        slot.in_flight.pop(task.task_id, None)
    task.agent_id, task.assigned_at, task.started = None, None, False


def _current(state, event) -> Task | None:
    """The task this outcome is about, if it is the live attempt of that agent (not a duplicate)."""
    task = state.tasks.get(event.task_id)
    agent = getattr(event, "agent_id", None) or getattr(event, "from_agent_id", None)
    if task and task.agent_id == agent and task.attempt == event.attempt:
        return task
    return None


def _started(state, event: TaskStarted, now, limits):
    if task := _current(state, event):
        task.started = True
    return []


def _finished(state, event, now, limits):
    task = _current(state, event)
    if task is None:
        return []
    agent_id = task.agent_id
    _free(state, task)
    retry = isinstance(event, TaskRejected) or (isinstance(event, TaskFailed) and event.retryable)
    out = _retry(state, task, now, limits, _why(event), from_agent=agent_id) if retry else []
    if not retry:
        del state.tasks[task.task_id]
    return out + _drain_queue(state, now, limits)


def _why(event) -> str:
    if isinstance(event, TaskRejected):
        return f"rejected by {event.agent_id}: {event.reason}"
    return f"failed on {event.agent_id}: {event.error}"


def _retry(state, task: Task, now, limits, reason: str, *, from_agent: str | None) -> list[EventBody]:
    if task.attempt >= limits.max_attempts or not [c for c in task.candidates if c[0] not in task.tried]:
        del state.tasks[task.task_id]
        return []  # the last failure stands as the task's outcome
    placed = _place(state, task, now, limits, reason=f"waiting to retry: {reason}")
    to_agent = placed[0].agent_id if isinstance(placed[0], TaskAssigned) else None
    reassigned = TaskReassigned(task_id=task.task_id, from_agent_id=from_agent, to_agent_id=to_agent,
                                attempt=task.attempt if to_agent else task.attempt + 1, reason=reason)
    return [reassigned, *placed]


def _handed_off(state, event: TaskHandedOff, now, limits):
    task = _current(state, event)
    if task is None or event.subtask_id is not None:
        return []  # a subtask passed on leaves the task itself with its agent
    _free(state, task)
    if event.to_agent_id:
        task.candidates = ((event.to_agent_id, 0.5, 0.0), *task.candidates)
        task.chosen = event.to_agent_id
    return _place(state, task, now, limits, reason=f"handed off by {event.from_agent_id}") + _drain_queue(state, now, limits)


def _registered(state, event: AgentRegistered, now, limits):
    slot = state.slots.get(event.agent_id)
    in_flight = slot.in_flight if slot else {}
    state.slots[event.agent_id] = Slot(capacity=event.capacity, per_capability=dict(event.capacity_per_capability),
                                       in_flight=in_flight, available=True)
    return _drain_queue(state, now, limits)


def _deregistered(state, event: AgentDeregistered, now, limits):
    if slot := state.slots.get(event.agent_id):
        slot.available = False  # in-flight work finishes; nothing new
    return []


def _health(state, event: AgentHealthChanged, now, limits):
    slot = state.slots.get(event.agent_id)
    if slot is None:
        return []
    if event.current == "unhealthy":
        slot.available = False
        out: list[EventBody] = []
        for task_id in sorted(set(slot.in_flight) | set(event.in_flight_task_ids)):
            task = state.tasks.get(task_id)
            if task and task.agent_id == event.agent_id:
                _free(state, task)
                out += _retry(state, task, now, limits, f"{event.agent_id} is unhealthy", from_agent=event.agent_id)
        return out
    if event.current == "healthy" and event.previous == "unhealthy":
        slot.available = True
        return _drain_queue(state, now, limits)
    return []


def _drain_queue(state: BalancerState, now, limits) -> list[EventBody]:
    """Place waiting tasks while any fits: most urgent first, then least-served submitter, then oldest."""
    out: list[EventBody] = []
    # Slots only fill up while draining, so only tasks an open agent may take are visited, and
    # the order is fixed at the start: a submitter served during the drain keeps its place.
    open_ = {a for a, slot in state.slots.items() if slot.available and len(slot.in_flight) < slot.capacity}
    placed = []
    for task_id in state.waiting.in_order(open_, dict(state.served)):
        task = state.tasks[task_id]
        if (agent_id := _pick(state, task, limits)) is not None:
            out += _assign(state, task, agent_id, now)
            placed.append(task_id)
            if len(state.slots[agent_id].in_flight) >= state.slots[agent_id].capacity:
                open_.discard(agent_id)
    for task_id in placed:
        state.waiting.remove(task_id)
    return out


def _position(state: BalancerState, task: Task) -> int:
    return state.waiting.position(task.task_id, state.served)


def _enqueue(state: BalancerState, task: Task) -> None:
    state.waiting.add(task.task_id, priority=task.priority, queued_at=task.queued_at, submitter=task.submitter,
                      capability=task.capability, agents=tuple(c[0] for c in task.candidates if c[0] not in task.tried))


_HANDLERS = {
    TaskSubmitted: _submitted, TaskRouted: _routed, TaskStarted: _started,
    TaskCompleted: _finished, TaskFailed: _finished, TaskRejected: _finished,
    TaskHandedOff: _handed_off, AgentRegistered: _registered, AgentDeregistered: _deregistered,
    AgentHealthChanged: _health,
}
