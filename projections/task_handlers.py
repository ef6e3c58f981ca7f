"""Projection handlers for agents and tasks: one pure function per event type, returning row operations."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from pydantic import TypeAdapter

from events.envelope import Envelope
from events.values import Candidate
from projections.ops import Delete, Insert, Op, Upsert
from projections.registry import handles
from projections.rows import history_row, latest_by_time, latest_fields


def _plain(value: Any) -> Any:
    """Pydantic models and tuples to JSON-ready dicts and lists."""
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


# --- agents ----------------------------------------------------------------------


def _agent_status(event: Envelope, status: str, **values: Any) -> Upsert:
    # The agent topic is keyed by agent id, so its events arrive in order; "ranked" on
    # status_at still makes a replay across topics order-independent.
    return Upsert(
        "agents",
        {"agent_id": event.key},
        {"status": status, "status_at": event.occurred_at, "updated_at": event.occurred_at, **values},
        merge={"status": "ranked", "updated_at": "max", "registered_at": "min"},
        rank=("status_at",),
    )


def _capability_row(agent_id: str, cap, event: Envelope, by: str) -> Upsert:
    return Upsert(
        "agent_capabilities",
        {"agent_id": agent_id, "name": cap.name},
        {
            "proficiency": cap.proficiency,
            "version": cap.version,
            "tags": _plain(cap.tags),
            "updated_at": event.occurred_at,
            "updated_by": by,
        },
    )


def _capability_history(
    event: Envelope, name: str, change: str, proficiency=None, changed_by=None, reason=None
) -> Insert:
    return Insert(
        "agent_capability_history",
        {
            "event_id": event.event_id,
            "agent_id": event.key,
            "name": name,
            "change": change,
            "proficiency": proficiency,
            "changed_by": changed_by,
            "reason": reason,
            "occurred_at": event.occurred_at,
        },
        key=("event_id", "name"),
    )


@handles("AgentRegistered")
def agent_registered(event: Envelope) -> list[Op]:
    body = event.body
    ops: list[Op] = _memory_profile(event, body.memory_profile)
    ops.append(
        _agent_status(
            event,
            "registered",
            display_name=body.display_name,
            capacity=body.capacity,
            capacity_per_capability=_plain(body.capacity_per_capability),
            cost_per_task=body.cost_per_task,
            labels=_plain(body.labels),
            memory_profile=_plain(body.memory_profile),
            sdk_version=body.sdk_version,
            registered_at=event.occurred_at,
        )
    )
    # Registering again replaces the capability set.
    ops.append(Delete("agent_capabilities", {"agent_id": body.agent_id}))
    for cap in body.capabilities:
        ops.append(_capability_row(body.agent_id, cap, event, event.producer))
        ops.append(_capability_history(event, cap.name, "registered", cap.proficiency, event.producer))
    return ops


@handles("AgentDeregistered")
def agent_deregistered(event: Envelope) -> list[Op]:
    return [_agent_status(event, "draining" if event.body.drain else "deregistered")]


@handles("AgentCapabilitiesChanged")
def capabilities_changed(event: Envelope) -> list[Op]:
    body = event.body
    ops: list[Op] = [
        Upsert("agents", {"agent_id": body.agent_id}, {"updated_at": event.occurred_at}, merge={"updated_at": "max"})
    ]
    for cap in (*body.added, *body.changed):
        change = "added" if cap in body.added else "changed"
        ops.append(_capability_row(body.agent_id, cap, event, body.changed_by))
        ops.append(_capability_history(event, cap.name, change, cap.proficiency, body.changed_by, body.reason))
    for name in body.removed:
        ops.append(Delete("agent_capabilities", {"agent_id": body.agent_id, "name": name}))
        ops.append(_capability_history(event, name, "removed", None, body.changed_by, body.reason))
    return ops


def _memory_profile(event: Envelope, profile) -> list[Op]:
    if profile is None:
        return []
    return [
        Upsert(
            "agent_memory_profiles",
            {"agent_id": event.key},
            {**profile.model_dump(mode="json"), "updated_at": event.occurred_at},
        )
    ]


@handles("AgentMemoryProfileUpdated")
def memory_profile_updated(event: Envelope) -> list[Op]:
    return [
        Upsert(
            "agents",
            {"agent_id": event.key},
            {"memory_profile": _plain(event.body.memory_profile), "updated_at": event.occurred_at},
            merge={"updated_at": "max"},
        ),
        *_memory_profile(event, event.body.memory_profile),
    ]


@handles("AgentLoadSummarized")
def load_summarized(event: Envelope) -> list[Op]:
    body = event.body
    return [
        Upsert(
            "agent_load_history",
            {"agent_id": body.agent_id, "window_start": body.window_start},
            body.model_dump(exclude={"agent_id", "window_start"}),
        )
    ]


_HEALTH_CHANGE_COLUMNS = ("agent_id", "previous", "current", "reason", "missed_heartbeats")
_HEARTBEAT_COLUMNS = ("in_flight", "queue_depth", "cpu_percent", "memory_mb", "agent_version")


@handles("AgentHealthChanged")
def health_changed(event: Envelope) -> list[Op]:
    body = event.body
    return [
        latest_by_time("agents", {"agent_id": body.agent_id}, event, {"health": body.current}, at="health_at"),
        history_row("agent_health_changes", event, _HEALTH_CHANGE_COLUMNS, at="occurred_at"),
    ]


@handles("AgentHeartbeat")
def heartbeat(event: Envelope) -> list[Op]:
    return [latest_fields("agent_heartbeats_latest", event, ("agent_id",), _HEARTBEAT_COLUMNS, at="seen_at")]


# --- tasks -----------------------------------------------------------------------
# A task's status is that of its latest lifecycle event; a terminal event (completed,
# expired) is never overtaken, and within one instant the later stage wins.

STAGES = {
    "submitted": 0,
    "queued": 1,
    "routed": 2,
    "reassigned": 3,
    "assigned": 4,
    "started": 5,
    "handed_off": 6,
    "rejected": 7,
    "failed": 7,
    "timed_out": 7,
    "expired": 8,
    "completed": 9,
}
TERMINAL = {"completed", "expired"}
# Describe the latest lifecycle event, so every status change writes all of them
# (None where that event has nothing to say): the newest event wins whatever the
# order in which the task's topics are read.
_STATUS_COLUMNS = ("reason", "assigned_agent_id", "error", "result_summary")


# Shared by every task upsert (operations never change them): built once, not per event.
_TASK_MERGE = {
    **{c: "ranked" for c in ("status", *_STATUS_COLUMNS)},
    "updated_at": "max",
    "attempt": "max",
    "routed_at": "max",
    "finished_at": "max",
}
_TASK_RANK = ("status_terminal", "status_at", "status_stage")


def _task(event: Envelope, status: str, *, terminal: bool | None = None, **values: Any) -> Upsert:
    """`terminal` overrides what the status says: a failure is final only when it may not be retried."""
    described = {c: values.pop(c, None) for c in _STATUS_COLUMNS}
    return Upsert(
        "tasks",
        {"task_id": event.body.task_id},
        {
            "status": status,
            **described,
            "status_terminal": status in TERMINAL if terminal is None else terminal,
            "status_at": event.occurred_at,
            "status_stage": STAGES[status],
            "updated_at": event.occurred_at,
            **values,
        },
        merge=_TASK_MERGE,
        rank=_TASK_RANK,
    )


def _assignment(event: Envelope, attempt: int, **values: Any) -> Upsert:
    if "outcome" in values:
        values = {"success": None, "duration_ms": None, **values}
    merge = {
        "outcome": "ranked",
        "success": "ranked",
        "duration_ms": "ranked",
        "finished_at": "max",
        "started_at": "min",
    }
    return Upsert(
        "task_assignments",
        {"task_id": event.body.task_id, "attempt": attempt},
        values,
        merge={c: r for c, r in merge.items() if c in values},
        rank=("finished_at",) if "outcome" in values else (),
    )


@handles("TaskSubmitted")
def task_submitted(event: Envelope) -> list[Op]:
    body = event.body
    return [
        _task(
            event,
            "submitted",
            requirements=_plain(body.requirements),
            priority=body.priority,
            submitter=body.submitter,
            job_id=body.job_id,
            parent_task_id=body.parent_task_id,
            deadline=body.deadline,
            payload=_plain(body.payload),
            features=_plain(body.features),
            submitted_at=event.occurred_at,
        )
    ]


_ROUTING_COLUMNS = (
    "task_id",
    "chosen_agent_id",
    "candidates",
    "predicted_success",
    "confidence",
    "propensity",
    "model_version",
    "policy",
    "reason",
    "risk_factors",
)
_QUEUE_COLUMNS = ("task_id", "capability", "reason", "position")
_HANDOFF_COLUMNS = ("task_id", "attempt", "from_agent_id", "to_agent_id", "subtask_id", "reason")


# Every candidate dumped in one call: a tenth of a bulk replay's time went to dumping them one by one.
_CANDIDATES = TypeAdapter(tuple[Candidate, ...])


@handles("TaskRouted")
def task_routed(event: Envelope) -> list[Op]:
    body = event.body
    decision = history_row("routing_decisions", event, _ROUTING_COLUMNS, at="decided_at")
    # Candidates and risk factors are models and tuples: stored as JSON.
    plain = {
        "candidates": _CANDIDATES.dump_python(body.candidates, mode="json"),
        "risk_factors": list(body.risk_factors),
    }
    return [
        _task(event, "routed", routed_at=event.occurred_at),
        replace(decision, row={**decision.row, **plain}),
    ]


@handles("TaskQueued")
def task_queued(event: Envelope) -> list[Op]:
    return [
        _task(event, "queued", reason=event.body.reason),
        history_row("task_queue_events", event, _QUEUE_COLUMNS, at="occurred_at"),
    ]


def _attempt_step(
    event: Envelope, status: str, assignment: dict[str, Any], *, terminal: bool | None = None, **task_values: Any
) -> list[Op]:
    """A step the assigned agent takes in its attempt: the task's status and the attempt's row."""
    body = event.body
    return [
        _task(event, status, terminal=terminal, attempt=body.attempt, assigned_agent_id=body.agent_id, **task_values),
        _assignment(event, body.attempt, agent_id=body.agent_id, **assignment),
    ]


@handles("TaskAssigned")
def task_assigned(event: Envelope) -> list[Op]:
    body = event.body
    assignment = {"capability": body.capability, "assigned_at": event.occurred_at, "propensity": body.propensity}
    return _attempt_step(event, "assigned", assignment)


@handles("TaskStarted")
def task_started(event: Envelope) -> list[Op]:
    return _attempt_step(event, "started", {"started_at": event.occurred_at})


def _finished(
    event: Envelope,
    status: str,
    *,
    success: bool | None,
    duration_ms=None,
    terminal: bool | None = None,
    **task_values: Any,
) -> list[Op]:
    outcome = {"outcome": status, "success": success, "duration_ms": duration_ms, "finished_at": event.occurred_at}
    return _attempt_step(event, status, outcome, terminal=terminal, finished_at=event.occurred_at, **task_values)


@handles("TaskCompleted")
def task_completed(event: Envelope) -> list[Op]:
    body = event.body
    return _finished(
        event, "completed", success=body.success, duration_ms=body.duration_ms, result_summary=body.result_summary
    )


@handles("TaskFailed")
def task_failed(event: Envelope) -> list[Op]:
    # Not to be retried, the failure is the task's end: a later routing (a router that read the
    # submission again after a restart) must not make it look alive.
    return _finished(event, "failed", success=False, error=event.body.error, terminal=not event.body.retryable)


@handles("TaskRejected")
def task_rejected(event: Envelope) -> list[Op]:
    return _finished(event, "rejected", success=None, reason=event.body.reason)


@handles("TaskHandedOff")
def task_handed_off(event: Envelope) -> list[Op]:
    body = event.body
    return [
        _task(event, "handed_off", assigned_agent_id=body.to_agent_id, reason=body.reason),
        _assignment(
            event, body.attempt, agent_id=body.from_agent_id, outcome="handed_off", finished_at=event.occurred_at
        ),
        history_row("task_handoffs", event, _HANDOFF_COLUMNS, at="occurred_at"),
    ]


@handles("TaskTimedOut")
def task_timed_out(event: Envelope) -> list[Op]:
    body = event.body
    status = "expired" if body.stage == "deadline" else "timed_out"
    reason = f"timed out at {body.stage}" + (f": {body.reason}" if body.reason else "")
    ops: list[Op] = [_task(event, status, attempt=body.attempt, reason=reason)]
    if body.agent_id:
        ops.append(
            _assignment(
                event,
                body.attempt,
                agent_id=body.agent_id,
                outcome="timed_out",
                success=False,
                finished_at=event.occurred_at,
            )
        )
    return ops


@handles("TaskReassigned")
def task_reassigned(event: Envelope) -> list[Op]:
    body = event.body
    return [_task(event, "reassigned", attempt=body.attempt, reason=body.reason, assigned_agent_id=body.to_agent_id)]
