"""One valid, fixed example per event type, for schemas, docs and tests."""

from datetime import datetime, timedelta, timezone
from functools import cache
from uuid import NAMESPACE_URL, uuid5

from events.agents import (
    AgentCapabilitiesChanged,
    AgentDeregistered,
    AgentHealthChanged,
    AgentHeartbeat,
    AgentLoadSummarized,
    AgentMemoryProfileUpdated,
    AgentRegistered,
)
from events.catalog import body_class
from events.envelope import Envelope, EventBody, make_event
from events.learning import ModelPublished, RelationshipScored, SkillEstimated, SkillShiftDetected
from events.privacy import SubjectErased
from events.security import AgentKeyEnrolled, AgentKeyRevoked, SecurityViolationDetected
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
from events.values import Candidate, Capability, CapabilityRequirement, MemoryProfile

OCCURRED_AT = datetime(2025, 1, 15, 9, 30, tzinfo=timezone.utc)
CORRELATION_ID = "3f2b8c1e-6d4a-4b7e-9c2d-1a5e7f9b0c3d"
AGENT = "coder-1"
OTHER_AGENT = "reviewer-2"
TASK = "task-0001"

_MEMORY = MemoryProfile(store_kind="vector", namespace="coder-1", retention_days=30, context_tokens=128000)
_PYTHON = Capability(name="python", proficiency=0.8, version="3.11", tags=("backend",))


def _bodies() -> list[EventBody]:
    return [
        AgentRegistered(
            agent_id=AGENT,
            display_name="Coder 1",
            capabilities=(_PYTHON, Capability(name="code-review", proficiency=0.6)),
            capacity=4,
            capacity_per_capability={"code-review": 2},
            cost_per_task=0.02,
            labels={"team": "platform"},
            memory_profile=_MEMORY,
            sdk_version="1.0.0",
        ),
        AgentDeregistered(agent_id=AGENT, reason="scheduled maintenance", drain=True),
        AgentCapabilitiesChanged(
            agent_id=AGENT,
            added=(Capability(name="sql", proficiency=0.5),),
            removed=("code-review",),
            changed=(_PYTHON.model_copy(update={"proficiency": 0.85}),),
            changed_by="operator:alice",
            reason="passed SQL evaluation",
        ),
        AgentMemoryProfileUpdated(agent_id=AGENT, memory_profile=_MEMORY.model_copy(update={"share_experience": True})),
        AgentHeartbeat(
            agent_id=AGENT, in_flight=2, queue_depth=1, cpu_percent=37.5, memory_mb=812.0, agent_version="1.4.2"
        ),
        AgentHealthChanged(
            agent_id=AGENT,
            previous="healthy",
            current="degraded",
            reason="3 heartbeats missed",
            missed_heartbeats=3,
            in_flight_task_ids=(TASK,),
        ),
        AgentLoadSummarized(
            agent_id=AGENT,
            window_start=OCCURRED_AT - timedelta(minutes=1),
            window_end=OCCURRED_AT,
            heartbeats=12,
            avg_in_flight=1.5,
            max_in_flight=2,
            avg_queue_depth=0.25,
            avg_cpu_percent=41.0,
            max_memory_mb=830.0,
        ),
        TaskSubmitted(
            task_id=TASK,
            requirements=(CapabilityRequirement(name="python", min_proficiency=0.5),),
            priority=3,
            submitter="client:checkout-service",
            payload={"prompt": "Fix the failing test in billing/"},
            deadline=datetime(2025, 1, 15, 10, 30, tzinfo=timezone.utc),
            job_id="job-42",
            preferred_tags=("backend",),
            features={"prompt_chars": 31.0},
        ),
        TaskRouted(
            task_id=TASK,
            candidates=(
                Candidate(
                    agent_id=AGENT,
                    score=0.82,
                    features={"proficiency": 0.8, "load": 0.5},
                    predicted_success=0.78,
                    confidence=0.6,
                    propensity=0.9,
                ),
                Candidate(agent_id=OTHER_AGENT, score=0.41, features={"proficiency": 0.4, "load": 0.0}, propensity=0.1),
            ),
            chosen_agent_id=AGENT,
            predicted_success=0.78,
            confidence=0.6,
            propensity=0.9,
            model_version="router-v7",
            policy="epsilon-greedy",
            reason="highest predicted success among healthy agents with python >= 0.5",
        ),
        TaskQueued(task_id=TASK, reason="every python agent is at capacity", capability="python", position=4),
        TaskAssigned(
            agent_id=AGENT,
            task_id=TASK,
            attempt=1,
            capability="python",
            deadline=datetime(2025, 1, 15, 10, 30, tzinfo=timezone.utc),
            payload={"prompt": "Fix the failing test in billing/"},
            routed_event_id="9a7c4e2f-1b3d-4f6a-8e5c-2d4b6a8c0e1f",
            propensity=0.9,
        ),
        TaskStarted(task_id=TASK, agent_id=AGENT, attempt=1),
        TaskCompleted(
            task_id=TASK,
            agent_id=AGENT,
            attempt=1,
            result_summary="fixed rounding in invoice totals",
            metrics={"tokens": 5120.0},
            duration_ms=48200.0,
            success=True,
        ),
        TaskFailed(task_id=TASK, agent_id=AGENT, attempt=1, error="sandbox ran out of memory", retryable=True),
        TaskRejected(task_id=TASK, agent_id=AGENT, attempt=1, reason="repository not accessible"),
        TaskHandedOff(
            task_id=TASK,
            from_agent_id=AGENT,
            attempt=1,
            to_agent_id=OTHER_AGENT,
            subtask_id="task-0001.review",
            reason="needs a review before merge",
            requirements=(CapabilityRequirement(name="code-review", min_proficiency=0.7),),
        ),
        TaskTimedOut(task_id=TASK, agent_id=AGENT, attempt=1, stage="start"),
        TaskReassigned(task_id=TASK, from_agent_id=AGENT, to_agent_id=OTHER_AGENT, attempt=2, reason="start timed out"),
        ModelPublished(
            model_id="router-success",
            model_version="router-v7",
            kind="logistic-regression",
            parameters={"weights": {"proficiency": 1.9, "load": -0.7}, "intercept": -0.3},
            metrics={"log_loss": 0.41, "accuracy": 0.83},
            trained_on_events=1200,
        ),
        SkillEstimated(
            agent_id=AGENT,
            capability="python",
            proficiency=0.74,
            confidence=0.65,
            successes=37,
            attempts=50,
            model_version="router-v7",
        ),
        RelationshipScored(
            agent_id=AGENT,
            other_agent_id=OTHER_AGENT,
            joint_tasks=12,
            joint_success_rate=0.92,
            lift=1.15,
            confidence=0.4,
        ),
        SkillShiftDetected(
            agent_id=AGENT,
            capability="python",
            direction="degraded",
            before=0.81,
            after=0.42,
            attempts=140,
            model_version="router-v7",
        ),
        SubjectErased(
            key_id="k-5f0c2a9e8b7d4e1fa3c6b2d8e9f01a7c",
            erasure_id="erasure-7d3e9a1c",
            erased_at=OCCURRED_AT,
            erased_by="operator:alice",
            reason="subject-request",
        ),
        AgentKeyEnrolled(
            agent_id=AGENT,
            key_id="ed25519:7f3a9c2e51d04b8a96c1e0f2",
            public_key="11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo",
            enrolled_by="operator:alice",
        ),
        AgentKeyRevoked(
            agent_id=AGENT,
            key_id="ed25519:7f3a9c2e51d04b8a96c1e0f2",
            revoked_at=OCCURRED_AT,
            revoked_by="operator:alice",
            reason="laptop lost",
        ),
        SecurityViolationDetected(
            agent_id=AGENT,
            kind="not_assignee",
            reason="task-0001 attempt 1 is assigned to reviewer-2, not coder-1",
            key_id="ed25519:7f3a9c2e51d04b8a96c1e0f2",
            event_type_claimed="TaskCompleted",
            origin_topic="orchestrator.task-outcomes",
            origin_partition=3,
            origin_offset=1742,
            processor="projector",
        ),
    ]


_PRODUCERS = {
    "AgentHealthChanged": "health",
    "AgentLoadSummarized": "health",
    "TaskSubmitted": "client:checkout-service",
    "TaskRouted": "router",
    "TaskQueued": "balancer",
    "TaskAssigned": "balancer",
    "TaskTimedOut": "balancer",
    "TaskReassigned": "balancer",
    "ModelPublished": "learner",
    "SkillEstimated": "learner",
    "RelationshipScored": "learner",
    "SkillShiftDetected": "learner",
    "SubjectErased": "operator:alice",
    "AgentKeyEnrolled": "operator:alice",
    "AgentKeyRevoked": "operator:alice",
    "SecurityViolationDetected": "projector",
}


@cache
def _examples() -> dict[str, EventBody]:
    return {body.event_type: body for body in _bodies()}


def example_body(event_type: str) -> EventBody:
    body_class(event_type)
    return _examples()[event_type]


def example_event(event_type: str) -> Envelope:
    return make_event(
        example_body(event_type),
        producer=_PRODUCERS.get(event_type, f"agent:{AGENT}"),
        event_id=str(uuid5(NAMESPACE_URL, f"example:{event_type}")),
        occurred_at=OCCURRED_AT,
        correlation_id=CORRELATION_ID,
    )
