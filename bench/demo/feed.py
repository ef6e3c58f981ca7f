"""A scripted, seeded stream of events: a small fleet and tasks living their lifecycle.

Used by `make run` to show read models filling up, by end-to-end tests, and by the
projection benchmark. It writes events directly, standing in for the processors and
agents that later produce them.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone
from typing import Iterator

from events.agents import AgentHealthChanged, AgentHeartbeat, AgentRegistered
from events.envelope import Envelope, make_event
from events.tasks import (
    TaskAssigned,
    TaskCompleted,
    TaskFailed,
    TaskQueued,
    TaskReassigned,
    TaskRouted,
    TaskStarted,
    TaskSubmitted,
)
from events.values import Candidate, Capability, CapabilityRequirement

CAPABILITIES = ("python", "sql", "summarize", "translate", "review")


def scripted_feed(
    *, agents: int = 5, tasks: int = 20, seed: int = 1, start: datetime | None = None
) -> Iterator[Envelope]:
    rng = random.Random(seed)
    clock = start or datetime(2026, 1, 1, tzinfo=timezone.utc)
    tick = lambda: clock + timedelta(milliseconds=next(counter))  # noqa: E731
    counter = iter(range(0, 10**12, 10))

    skills: dict[str, dict[str, float]] = {}
    for i in range(agents):
        agent_id = f"agent-{i + 1}"
        skills[agent_id] = {
            c: round(rng.uniform(0.3, 0.95), 2) for c in rng.sample(CAPABILITIES, k=rng.randint(2, len(CAPABILITIES)))
        }
        yield make_event(
            AgentRegistered(
                agent_id=agent_id,
                display_name=f"Agent {i + 1}",
                capacity=rng.randint(1, 4),
                capabilities=tuple(Capability(name=c, proficiency=p) for c, p in skills[agent_id].items()),
                labels={"pool": rng.choice(("blue", "green"))},
            ),
            producer=agent_id,
            occurred_at=tick(),
        )

    for n in range(tasks):
        task_id = f"task-{seed}-{n + 1}"
        capability = rng.choice(CAPABILITIES)
        able = sorted((a for a, s in skills.items() if capability in s), key=lambda a: -skills[a][capability])
        submitted = make_event(
            TaskSubmitted(
                task_id=task_id,
                requirements=(CapabilityRequirement(name=capability),),
                priority=rng.randint(0, 9),
                submitter=f"client-{rng.randint(1, 3)}",
                features={"prompt_chars": float(rng.randint(50, 5000))},
            ),
            producer="client",
            occurred_at=tick(),
        )
        yield submitted
        if not able:
            yield make_event(
                TaskQueued(task_id=task_id, reason=f"no registered agent offers {capability}", capability=capability),
                producer="router",
                cause=submitted,
                occurred_at=tick(),
            )
        attempt = 0
        for agent_id in able[:2]:
            attempt += 1
            succeeded = rng.random() < skills[agent_id][capability]
            yield from _attempt(rng, submitted, task_id, agent_id, capability, attempt, able, skills, tick, succeeded)
            if succeeded:
                break
            if attempt == 1 and len(able) > 1:
                yield make_event(
                    TaskReassigned(
                        task_id=task_id,
                        from_agent_id=agent_id,
                        to_agent_id=able[1],
                        attempt=2,
                        reason="failed with a retryable error",
                    ),
                    producer="balancer",
                    cause=submitted,
                    occurred_at=tick(),
                )
        if n % 5 == 0 and able:
            yield make_event(
                AgentHeartbeat(agent_id=able[0], in_flight=rng.randint(0, 2), cpu_percent=12.5),
                producer=able[0],
                occurred_at=tick(),
            )
        if n % 17 == 16 and able:
            yield make_event(
                AgentHealthChanged(
                    agent_id=able[-1],
                    previous="healthy",
                    current="degraded",
                    reason="missed 2 heartbeats",
                    missed_heartbeats=2,
                ),
                producer="health",
                occurred_at=tick(),
            )


def _attempt(rng, submitted, task_id, agent_id, capability, attempt, able, skills, tick, succeeded):
    candidates = tuple(
        Candidate(
            agent_id=a,
            score=skills[a][capability],
            features={"proficiency": skills[a][capability]},
            predicted_success=skills[a][capability],
            confidence=0.5,
            propensity=1.0 if a == agent_id else 0.0,
        )
        for a in able[:3]
    )
    routed = make_event(
        TaskRouted(
            task_id=task_id,
            candidates=candidates,
            chosen_agent_id=agent_id,
            predicted_success=skills[agent_id][capability],
            confidence=0.5,
            propensity=1.0,
            policy="greedy",
            reason=f"highest declared {capability} proficiency",
        ),
        producer="router",
        cause=submitted,
        occurred_at=tick(),
    )
    yield routed
    yield make_event(
        TaskAssigned(
            agent_id=agent_id, task_id=task_id, attempt=attempt, capability=capability, routed_event_id=routed.event_id
        ),
        producer="balancer",
        cause=routed,
        occurred_at=tick(),
    )
    yield make_event(
        TaskStarted(task_id=task_id, agent_id=agent_id, attempt=attempt),
        producer=agent_id,
        cause=routed,
        occurred_at=tick(),
    )
    if succeeded:
        yield make_event(
            TaskCompleted(
                task_id=task_id,
                agent_id=agent_id,
                attempt=attempt,
                duration_ms=float(rng.randint(100, 5000)),
                result_summary="ok",
            ),
            producer=agent_id,
            cause=routed,
            occurred_at=tick(),
        )
    else:
        yield make_event(
            TaskFailed(
                task_id=task_id, agent_id=agent_id, attempt=attempt, error="model output rejected", retryable=True
            ),
            producer=agent_id,
            cause=routed,
            occurred_at=tick(),
        )
