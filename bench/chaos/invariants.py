"""What a chaos run must not break, judged from the events on Kafka: pure functions.

Each check returns the violations it found (empty when the invariant held), described so a
user can look them up: task ids, agents, attempts.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from events.envelope import Envelope
from events.tasks import (
    TaskAssigned,
    TaskCompleted,
    TaskFailed,
    TaskHandedOff,
    TaskReassigned,
    TaskRejected,
    TaskSubmitted,
    TaskTimedOut,
)

# Ends an attempt: the agent no longer holds the task.
ATTEMPT_ENDS = (TaskCompleted, TaskFailed, TaskRejected, TaskTimedOut, TaskReassigned, TaskHandedOff)


@dataclass(frozen=True)
class Check:
    name: str
    checked: int  # how many things were looked at (tasks, attempts, agents ...)
    violations: tuple[str, ...] = field(default_factory=tuple)
    # What a run is worth knowing but breaks no promise: shown with its cases, not counted as violations.
    observed_only: bool = False

    @property
    def held(self) -> bool:
        return self.observed_only or not self.violations


@dataclass(frozen=True)
class InboxEntry:
    """A record of the balancer's inbox, the order in which the balancer learnt what it decides on."""

    offset: int
    timestamp_ms: int
    event_id: str | None  # the copied event's id; None for a tick of the balancer's clock


def is_final(body) -> bool:
    """Whether the task ends here for good: done, failed beyond retry, or given up on."""
    if isinstance(body, TaskCompleted):
        return True
    if isinstance(body, TaskFailed):
        return not body.retryable
    return isinstance(body, TaskTimedOut) and body.stage == "deadline"


def acknowledged_are_written(acknowledged: Iterable[str], events: list[Envelope]) -> Check:
    """Every submission the broker acknowledged to its producer is in the log."""
    written = {e.body.task_id for e in events if isinstance(e.body, TaskSubmitted)}
    told = set(acknowledged)
    return Check("acknowledged submissions are on Kafka", len(told), tuple(sorted(told - written)))


def every_task_ended(events: list[Envelope], waiting_reasons: dict[str, str] | None = None) -> Check:
    """Every submitted task reached a final outcome, or waits with a reason the read models show."""
    submitted = {e.body.task_id for e in events if isinstance(e.body, TaskSubmitted)}
    ended = {e.body.task_id for e in events if is_final(e.body)}
    waiting = waiting_reasons or {}
    open_ = sorted(t for t in submitted - ended if not waiting.get(t))
    return Check("every task ended or waits with a reason", len(submitted), tuple(open_))


def attempts_decided_once(events: list[Envelope]) -> Check:
    """No attempt of a task was assigned by two different decisions."""
    decisions: dict[tuple[str, int], set[str]] = defaultdict(set)
    for event in events:
        if isinstance(event.body, TaskAssigned):
            decisions[(event.body.task_id, event.body.attempt)].add(event.event_id)
    twice = sorted(f"{task} attempt {attempt}" for (task, attempt), ids in decisions.items() if len(ids) > 1)
    return Check("each attempt assigned once", len(decisions), tuple(twice))


def _holds(events: list[Envelope]) -> list[tuple[float, int, str, str, int]]:
    """(time, +1 take / -1 free, agent, task, attempt) for every attempt that held its agent for a while.

    An attempt runs from its assignment to its earliest ending: the balancer's timeout or
    reassignment, or the agent's own report, whichever came first; a redelivered report frees
    nothing more. One that ended the instant it began (reassigned in the decision that made it,
    to an agent found unhealthy meanwhile) held nothing.
    """
    taken: dict[tuple[str, int], tuple[float, str]] = {}
    ended: dict[tuple[str, int], float] = {}
    for event in events:
        body, at = event.body, event.occurred_at.timestamp()
        if isinstance(body, TaskAssigned):
            taken.setdefault((body.task_id, body.attempt), (at, body.agent_id))
        elif isinstance(body, ATTEMPT_ENDS):
            agent = getattr(body, "agent_id", None) or getattr(body, "from_agent_id", None)
            if agent is None or (isinstance(body, TaskHandedOff) and body.subtask_id is not None):
                continue
            attempt = body.attempt - 1 if isinstance(body, TaskReassigned) else body.attempt
            ended[(body.task_id, attempt)] = min(ended.get((body.task_id, attempt), at), at)
    changes = []
    for (task, attempt), (start, agent) in taken.items():
        end = ended.get((task, attempt))
        if end is not None and end <= start:
            continue
        changes.append((start, 1, agent, task, attempt))
        if end is not None:
            changes.append((end, -1, agent, task, attempt))
    # Frees before takes at a tie: a slot freed and given again in the same instant is not two.
    return sorted(changes, key=lambda c: (c[0], c[1]))


def never_over_capacity(events: list[Envelope], capacities: dict[str, int]) -> Check:
    """Rebuilt from the log: no agent ever held more attempts at once than its capacity."""
    held: dict[str, set] = defaultdict(set)
    over: Counter = Counter()
    for _, change, agent, task, attempt in _holds(events):
        if change > 0:
            held[agent].add((task, attempt))
            if len(held[agent]) > capacities.get(agent, 0):
                over[agent] = max(over[agent], len(held[agent]))
        else:
            held[agent].discard((task, attempt))
    found = tuple(f"{agent} held {most} at capacity {capacities.get(agent, 0)}" for agent, most in sorted(over.items()))
    return Check("no agent over its capacity", len(capacities), found)


def never_held_twice(events: list[Envelope]) -> Check:
    """No task was held by two attempts (two agents, or the same agent twice) at the same time."""
    holders: dict[str, set] = defaultdict(set)
    twice: set[str] = set()
    for _, change, agent, task, attempt in _holds(events):
        if change > 0:
            holders[task].add((agent, attempt))
            if len(holders[task]) > 1:
                twice.add(f"{task}: {sorted(holders[task])}")
        else:
            holders[task].discard((agent, attempt))
    return Check("no task held twice at once", len(holders), tuple(sorted(twice)))


def nothing_after_the_end(events: list[Envelope], inbox: list[InboxEntry]) -> Check:
    """Terminal states stay terminal: once the balancer has read a task's final outcome, it never
    assigns the task again.

    "Read" is the balancer's own order, its inbox: an assignment is decided from one inbox record
    (the event that caused it, or a tick of its clock) and breaks the promise when that record comes
    after the outcome's. An outcome still on its way when the balancer decided (held up in its
    producer by a broker failover, or written during the decision) could not be known:
    `assigned_while_the_end_was_on_its_way` counts those.
    """
    first: dict[str, int] = {}
    ticks: dict[int, int] = {}  # the balancer's clock at a tick (the latest timestamp so far) -> its offset
    clock = 0
    for entry in sorted(inbox, key=lambda e: e.offset):
        clock = max(clock, entry.timestamp_ms)
        if entry.event_id is None:
            ticks.setdefault(clock, entry.offset)
        else:
            first.setdefault(entry.event_id, entry.offset)

    def decided_at(event: Envelope) -> int | None:
        """The inbox offset of the record a balancer decision was made from."""
        if event.causation_id is not None:
            return first.get(event.causation_id)
        return ticks.get(round(event.occurred_at.timestamp() * 1000))

    read: dict[str, int] = {}  # task -> inbox offset at which the balancer knew its final outcome
    ended = _ended(events)
    for event in events:
        if is_final(event.body):
            offset = first.get(event.event_id) if event.producer != "balancer" else decided_at(event)
            if offset is not None:
                read[event.body.task_id] = min(read.get(event.body.task_id, offset), offset)
    again = set()
    for event in events:
        if isinstance(event.body, TaskAssigned) and event.body.task_id in read:
            at = decided_at(event)
            # A decision not found in the inbox is judged by the clocks, as strictly as it can be.
            late = at > read[event.body.task_id] if at is not None else _after(event, ended)
            if late:
                again.add(f"{event.body.task_id} attempt {event.body.attempt}")
    return Check("no task assigned after the balancer read its final outcome", len(read), tuple(sorted(again)))


def _ended(events: list[Envelope]) -> dict[str, float]:
    """When each ended task ended first, by the clock of whoever reported it."""
    ended: dict[str, float] = {}
    for event in events:
        if is_final(event.body):
            at = event.occurred_at.timestamp()
            ended[event.body.task_id] = min(ended.get(event.body.task_id, at), at)
    return ended


def _after(event: Envelope, ended: dict[str, float]) -> bool:
    """Whether the event is an assignment stamped later than its task's end."""
    body = event.body
    return (
        isinstance(body, TaskAssigned) and body.task_id in ended and event.occurred_at.timestamp() > ended[body.task_id]
    )


def assigned_while_the_end_was_on_its_way(events: list[Envelope]) -> Check:
    """Tasks assigned again after their final outcome happened, by the clocks that stamped them: work
    done twice, though no promise broke (see `nothing_after_the_end`)."""
    ended = _ended(events)
    again = sorted({f"{e.body.task_id} attempt {e.body.attempt}" for e in events if _after(e, ended)})
    return Check("assigned again while its final outcome was on its way", len(ended), tuple(again), observed_only=True)


def log_checks(
    events: list[Envelope],
    inbox: list[InboxEntry],
    acknowledged: Iterable[str],
    capacities: dict[str, int],
    waiting_reasons: dict[str, str] | None = None,
) -> list[Check]:
    return [
        acknowledged_are_written(acknowledged, events),
        every_task_ended(events, waiting_reasons),
        attempts_decided_once(events),
        nothing_after_the_end(events, inbox),
        assigned_while_the_end_was_on_its_way(events),
        never_held_twice(events),
        never_over_capacity(events, capacities),
    ]
