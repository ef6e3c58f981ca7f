"""Scoring a policy's run from the events it produced: success, utilization, waits, capacity."""

from __future__ import annotations

from dataclasses import dataclass

from events.envelope import Envelope


@dataclass(frozen=True)
class PolicyScore:
    tasks: int
    completed: int
    success_rate: float
    utilization: float
    p95_wait_ms: float
    capacity_violations: int
    jain_fairness: float

    def as_dict(self) -> dict:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in self.__dict__.items()}


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def score(events: list[Envelope], capacities: dict[str, int]) -> PolicyScore:
    """`events`: every event of the run in log order (per topic partition), any interleaving."""
    submitted, first_assigned, final = {}, {}, {}
    intervals: dict[str, list[tuple[float, float]]] = {}
    running: dict[tuple[str, int], tuple[str, float]] = {}
    timeline: list[tuple[float, int, str]] = []  # (time, +1/-1, agent)
    for event in sorted(events, key=lambda e: e.occurred_at):
        body, t = event.body, event.occurred_at.timestamp()
        kind = event.event_type
        if kind == "TaskSubmitted":
            submitted[body.task_id] = t
        elif kind == "TaskAssigned":
            first_assigned.setdefault(body.task_id, t)
            running[(body.task_id, body.attempt)] = (body.agent_id, t)
            timeline.append((t, 1, body.agent_id))
        elif kind in ("TaskCompleted", "TaskFailed", "TaskRejected"):
            started = running.pop((body.task_id, body.attempt), None)
            if started:
                intervals.setdefault(started[0], []).append((started[1], t))
                timeline.append((t, -1, started[0]))
            if kind == "TaskCompleted":
                final[body.task_id] = body.success
            else:
                final.setdefault(body.task_id, False)
    violations, in_flight = 0, {}
    for _, delta, agent in sorted(timeline, key=lambda x: (x[0], x[1])):  # frees before takes at a tie
        in_flight[agent] = in_flight.get(agent, 0) + delta
        violations += in_flight[agent] > capacities.get(agent, 0)
    span = (max((e.occurred_at.timestamp() for e in events), default=0) - min(submitted.values(), default=0)) or 1.0
    busy = sum(end - start for spans in intervals.values() for start, end in spans)
    utilization = busy / (span * sum(capacities.values())) if capacities else 0.0
    waits = [(first_assigned[t] - submitted[t]) * 1000 for t in submitted if t in first_assigned]
    per_agent = [len(intervals.get(a, [])) / c for a, c in capacities.items()]
    jain = (sum(per_agent) ** 2 / (len(per_agent) * sum(x * x for x in per_agent))) if any(per_agent) else 0.0
    successes = sum(1 for ok in final.values() if ok)
    return PolicyScore(
        tasks=len(submitted),
        completed=len(final),
        success_rate=successes / len(submitted) if submitted else 0.0,
        utilization=utilization,
        p95_wait_ms=percentile(waits, 0.95),
        capacity_violations=violations,
        jain_fairness=jain,
    )
