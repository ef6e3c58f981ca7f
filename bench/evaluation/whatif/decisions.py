"""The logged decisions: the router's candidates, the assignment that actually happened with the
probability the balancer gave it, and that attempt's outcome. A pure fold over events.

A decision counts once: an event delivered twice (same event id) is passed over, a task routed a
second time keeps its first routing (the one the balancer acted on), and only the first
assignment and the first outcome of that attempt count.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from events.envelope import Envelope
from events.tasks import TaskAssigned, TaskCompleted, TaskFailed, TaskRejected, TaskRouted, TaskTimedOut
from events.values import Candidate

EVENT_TYPES = frozenset({"TaskRouted", "TaskAssigned", "TaskCompleted", "TaskFailed", "TaskRejected", "TaskTimedOut"})
FIRST_ATTEMPT = 1  # later attempts follow a failure on the first: the decision is judged by its own attempt


@dataclass(frozen=True)
class LoggedDecision:
    task_id: str
    decided_at: datetime
    candidates: tuple[Candidate, ...]
    agent_id: str  # who was given the task
    propensity: float  # the probability with which it was
    reward: float  # 1.0 success, 0.0 failure, rejection or timeout

    def predicted(self, candidate: Candidate) -> float:
        """The reward model: the learner's prediction logged with the decision (0.5 when none was)."""
        if candidate.predicted_success is not None:
            return candidate.predicted_success
        return candidate.features.get("predicted_success", 0.5)


@dataclass
class DecisionLog:
    since: datetime | None = None
    until: datetime | None = None
    seen: set[str] = field(default_factory=set)
    routed: dict[str, tuple[datetime, TaskRouted]] = field(default_factory=dict)
    assigned: dict[str, TaskAssigned] = field(default_factory=dict)  # first attempt, by task
    outcomes: dict[tuple[str, str], float] = field(default_factory=dict)  # (task, agent) of the first attempt
    counts: Counter = field(default_factory=Counter)

    def apply(self, event: Envelope) -> None:
        if event.event_id in self.seen:
            self.counts["events delivered twice"] += 1
            return
        self.seen.add(event.event_id)
        body = event.body
        if isinstance(body, TaskRouted):
            if body.task_id in self.routed:
                self.counts["routings after the first"] += 1
            elif body.chosen_agent_id is not None:
                self.routed[body.task_id] = (event.occurred_at, body)
        elif isinstance(body, TaskAssigned):
            if body.attempt == FIRST_ATTEMPT:
                self.assigned.setdefault(body.task_id, body)
        elif isinstance(body, (TaskCompleted, TaskFailed, TaskRejected, TaskTimedOut)):
            if body.attempt == FIRST_ATTEMPT and body.agent_id is not None:
                reward = float(body.success) if isinstance(body, TaskCompleted) else 0.0
                self.outcomes.setdefault((body.task_id, body.agent_id), reward)

    def decisions(self) -> list[LoggedDecision]:
        """The decisions in the window that have an assignment with a known probability and an outcome."""
        out = []
        for task_id, (decided_at, routed) in self.routed.items():
            if (self.since and decided_at < self.since) or (self.until and decided_at >= self.until):
                continue
            assignment = self.assigned.get(task_id)
            if assignment is None:
                self.counts["decisions not assigned yet"] += 1
                continue
            propensity = assignment_propensity(routed, assignment)
            if not propensity:
                self.counts["assignments of unknown probability"] += 1
                continue
            reward = self.outcomes.get((task_id, assignment.agent_id))
            if reward is None:
                self.counts["assignments without an outcome yet"] += 1
                continue
            out.append(LoggedDecision(task_id, decided_at, routed.candidates, assignment.agent_id, propensity, reward))
        return sorted(out, key=lambda d: (d.decided_at, d.task_id))


def assignment_propensity(routed: TaskRouted, assignment: TaskAssigned) -> float | None:
    """The assignment's own probability; for one from before assignments carried it, the router's
    probability of its choice when that agent got the task (otherwise unknown)."""
    if assignment.propensity is not None:
        return assignment.propensity
    if assignment.agent_id == routed.chosen_agent_id:
        return routed.propensity
    return None
