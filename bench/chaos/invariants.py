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

    @property
    def held(self) -> bool:
        return not self.violations


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


def nothing_after_the_end(events: list[Envelope]) -> Check:
    """Terminal states stay terminal: no task is assigned again after its final outcome."""
    ended: dict[str, float] = {}
    for event in events:
        if is_final(event.body):
            at = event.occurred_at.timestamp()
            ended[event.body.task_id] = min(ended.get(event.body.task_id, at), at)
    again = sorted(
        {
            f"{e.body.task_id} attempt {e.body.attempt}"
            for e in events
            if isinstance(e.body, TaskAssigned)
            and e.body.task_id in ended
            and e.occurred_at.timestamp() > ended[e.body.task_id]
        }
    )
    return Check("no task assigned after its final outcome", len(ended), tuple(again))


def log_checks(
    events: list[Envelope],
    acknowledged: Iterable[str],
    capacities: dict[str, int],
    waiting_reasons: dict[str, str] | None = None,
) -> list[Check]:
    return [
        acknowledged_are_written(acknowledged, events),
        every_task_ended(events, waiting_reasons),
        attempts_decided_once(events),
        nothing_after_the_end(events),
        never_held_twice(events),
        never_over_capacity(events, capacities),
    ]
