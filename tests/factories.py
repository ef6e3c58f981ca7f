"""Events with keyword defaults, for tests of projections and processors."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from events.agents import AgentDeregistered, AgentLoadSummarized, AgentRegistered
from events.envelope import Envelope, make_event
from events.tasks import TaskAssigned, TaskCompleted, TaskFailed, TaskHandedOff, TaskRouted, TaskStarted, TaskSubmitted
from events.values import Candidate, Capability, CapabilityRequirement, MemoryProfile

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def registered(
    agent_id: str = "agent-1",
    *,
    capabilities=(("python", 0.8),),
    capacity: int = 2,
    t: float = 0,
    share_experience: bool | None = None,
) -> Envelope:
    memory = (
        None
        if share_experience is None
        else MemoryProfile(
            store_kind="vector", namespace=agent_id, retention_days=30, share_experience=share_experience
        )
    )
    return make_event(
        AgentRegistered(
            agent_id=agent_id,
            display_name=agent_id.title(),
            capacity=capacity,
            memory_profile=memory,
            capabilities=tuple(Capability(name=n, proficiency=p) for n, p in capabilities),
        ),
        producer=agent_id,
        occurred_at=at(t),
    )


def load_summarized(agent_id: str = "agent-1", *, t: float = 60, avg_in_flight: float = 1.5) -> Envelope:
    return make_event(
        AgentLoadSummarized(
            agent_id=agent_id,
            window_start=at(t - 60),
            window_end=at(t),
            heartbeats=12,
            avg_in_flight=avg_in_flight,
            max_in_flight=2,
        ),
        producer="health",
        occurred_at=at(t),
    )


def handed_off(
    task_id: str = "task-1", from_agent: str = "agent-1", to_agent: str = "agent-2", *, t: float = 4
) -> Envelope:
    return make_event(
        TaskHandedOff(
            task_id=task_id, from_agent_id=from_agent, to_agent_id=to_agent, attempt=1, reason="needs a reviewer"
        ),
        producer=from_agent,
        occurred_at=at(t),
    )


def deregistered(agent_id: str = "agent-1", *, t: float = 10) -> Envelope:
    return make_event(
        AgentDeregistered(agent_id=agent_id, reason="maintenance", drain=False), producer=agent_id, occurred_at=at(t)
    )


def submitted(task_id: str = "task-1", *, capability: str = "python", priority: int = 5, t: float = 1) -> Envelope:
    return make_event(
        TaskSubmitted(
            task_id=task_id,
            requirements=(CapabilityRequirement(name=capability, min_proficiency=0.5),),
            priority=priority,
            submitter="client-1",
            features={"prompt_chars": 120.0},
        ),
        producer="client-1",
        occurred_at=at(t),
    )


def routed(task_id: str = "task-1", agent_id: str = "agent-1", *, t: float = 2) -> Envelope:
    return make_event(
        TaskRouted(
            task_id=task_id,
            chosen_agent_id=agent_id,
            predicted_success=0.7,
            confidence=0.4,
            propensity=0.9,
            policy="softmax",
            reason="best predicted success",
            candidates=(
                Candidate(
                    agent_id=agent_id,
                    score=0.7,
                    features={"load": 0.0},
                    predicted_success=0.7,
                    confidence=0.4,
                    propensity=0.9,
                ),
            ),
        ),
        producer="router",
        occurred_at=at(t),
    )


def assigned(task_id: str = "task-1", agent_id: str = "agent-1", *, attempt: int = 1, t: float = 3) -> Envelope:
    return make_event(
        TaskAssigned(task_id=task_id, agent_id=agent_id, attempt=attempt, capability="python"),
        producer="balancer",
        occurred_at=at(t),
    )


def started(task_id: str = "task-1", agent_id: str = "agent-1", *, attempt: int = 1, t: float = 4) -> Envelope:
    return make_event(
        TaskStarted(task_id=task_id, agent_id=agent_id, attempt=attempt), producer=agent_id, occurred_at=at(t)
    )


def completed(
    task_id: str = "task-1", agent_id: str = "agent-1", *, attempt: int = 1, t: float = 5, success: bool = True
) -> Envelope:
    return make_event(
        TaskCompleted(
            task_id=task_id,
            agent_id=agent_id,
            attempt=attempt,
            result_summary="done",
            duration_ms=1000.0,
            success=success,
        ),
        producer=agent_id,
        occurred_at=at(t),
    )


def failed(
    task_id: str = "task-1", agent_id: str = "agent-1", *, attempt: int = 1, t: float = 5, retryable: bool = True
) -> Envelope:
    return make_event(
        TaskFailed(task_id=task_id, agent_id=agent_id, attempt=attempt, error="boom", retryable=retryable),
        producer=agent_id,
        occurred_at=at(t),
    )


def lifecycle(task_id: str = "task-1", agent_id: str = "agent-1", *, t: float = 1) -> list[Envelope]:
    return [
        submitted(task_id, t=t),
        routed(task_id, agent_id, t=t + 1),
        assigned(task_id, agent_id, t=t + 2),
        started(task_id, agent_id, t=t + 3),
        completed(task_id, agent_id, t=t + 4),
    ]
