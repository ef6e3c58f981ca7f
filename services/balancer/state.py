"""The balancer's state as plain JSON, for snapshots, and what about it is waiting on time."""

from __future__ import annotations

from datetime import datetime

from services.balancer.logic import BalancerState, Slot, Task

SNAPSHOT_VERSION = 2  # 2 added what agents declare, what tasks require, and when a task started


def encode_state(state: BalancerState) -> dict:
    # Lists keep the insertion order of the dicts, so a restored state iterates as the original did.
    return {
        "version": SNAPSHOT_VERSION,
        "slots": [[agent_id, _slot_to_json(slot)] for agent_id, slot in state.slots.items()],
        "tasks": [_task_to_json(task) for task in state.tasks.values()],
        "served": [[submitter, count] for submitter, count in state.served.items()],
    }


def decode_state(data: dict) -> BalancerState:
    if data.get("version") == 1:
        data = _upcast_v1(data)
    if data.get("version") != SNAPSHOT_VERSION:
        raise ValueError(f"balancer snapshot version {data.get('version')!r}, expected {SNAPSHOT_VERSION}")
    tasks = [_task_from_json(item) for item in data["tasks"]]
    return BalancerState(
        slots={agent_id: _slot_from_json(slot) for agent_id, slot in data["slots"]},
        tasks={task.task_id: task for task in tasks},
        served={submitter: count for submitter, count in data["served"]},
    )


def waits_on_time(state: BalancerState) -> bool:
    """Whether `tick` could decide anything: a task with an agent, which must start it and then finish
    it in time, or one queued with a deadline."""
    return any(task.agent_id or (task.queued_at and task.deadline) for task in state.tasks.values())


def _upcast_v1(data: dict) -> dict:
    # Version 1 kept neither what agents declare nor what tasks require: its agents are offered no
    # task beyond the router's candidates until they register again, and its tasks go to the router's
    # candidates only. A start it only flagged is dated to the assignment, the earliest it can have been.
    slots = [[agent_id, {**slot, "capabilities": {}}] for agent_id, slot in data["slots"]]
    tasks = [
        {
            **{k: v for k, v in task.items() if k != "started"},
            "requirements": [],
            "started_at": task["assigned_at"] if task["started"] else None,
        }
        for task in data["tasks"]
    ]
    return {**data, "version": 2, "slots": slots, "tasks": tasks}


def _slot_to_json(slot: Slot) -> dict:
    return {
        "capacity": slot.capacity,
        "per_capability": slot.per_capability,
        "in_flight": [[task_id, capability] for task_id, capability in slot.in_flight.items()],
        "available": slot.available,
        "capabilities": slot.capabilities,
    }


def _slot_from_json(data: dict) -> Slot:
    return Slot(
        capacity=data["capacity"],
        per_capability=dict(data["per_capability"]),
        in_flight={task_id: capability for task_id, capability in data["in_flight"]},
        available=data["available"],
        capabilities=dict(data["capabilities"]),
    )


def _task_to_json(task: Task) -> dict:
    return {
        "task_id": task.task_id,
        "priority": task.priority,
        "submitter": task.submitter,
        "submitted_at": _time(task.submitted_at),
        "deadline": _time(task.deadline),
        "capability": task.capability,
        "requirements": [list(need) for need in task.requirements],
        "payload": task.payload,
        "candidates": [list(candidate) for candidate in task.candidates],
        "chosen": task.chosen,
        "propensities": task.propensities,
        "attempt": task.attempt,
        "tried": sorted(task.tried),
        "agent_id": task.agent_id,
        "assigned_at": _time(task.assigned_at),
        "started_at": _time(task.started_at),
        "queued_at": _time(task.queued_at),
        "done_late": task.done_late,
    }


def _task_from_json(data: dict) -> Task:
    return Task(
        task_id=data["task_id"],
        priority=data["priority"],
        submitter=data["submitter"],
        submitted_at=_parse(data["submitted_at"]),
        deadline=_parse(data["deadline"]),
        capability=data["capability"],
        requirements=tuple((name, least) for name, least in data["requirements"]),
        payload=data["payload"],
        candidates=tuple((agent_id, predicted, duration) for agent_id, predicted, duration in data["candidates"]),
        # Snapshots taken before assignments carried a propensity have none: theirs stays unknown.
        chosen=data["chosen"],
        propensities=dict(data.get("propensities", {})),
        attempt=data["attempt"],
        tried=frozenset(data["tried"]),
        agent_id=data["agent_id"],
        assigned_at=_parse(data["assigned_at"]),
        started_at=_parse(data["started_at"]),
        queued_at=_parse(data["queued_at"]),
        done_late=data.get("done_late", False),  # snapshots from before it was kept had none
    )


def _time(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _parse(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value is not None else None
