from datetime import datetime, timedelta, timezone

import pytest

from events.tasks import TaskAssigned, TaskHandedOff
from events.values import CapabilityRequirement
from services.sdk.task import Task
from services.sdk.usage import ProcessUsage

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)


def task_with(sent: list, **assignment) -> Task:
    async def hand_off(body: TaskHandedOff) -> None:
        sent.append(body)

    body = TaskAssigned(
        **{
            "task_id": "task-1",
            "agent_id": "agent-1",
            "attempt": 2,
            "capability": "python",
            "payload": {"prompt": "hi"},
            **assignment,
        }
    )
    return Task.of(body, "event-1", hand_off)


def test_a_task_exposes_its_assignment():
    task = task_with([])
    assert (task.task_id, task.attempt, task.capability, task.payload) == ("task-1", 2, "python", {"prompt": "hi"})
    assert task.assignment_event_id == "event-1"


def test_time_left_counts_down_to_the_deadline():
    task = task_with([], deadline=NOW + timedelta(seconds=30))
    assert task.seconds_left(NOW) == 30
    assert task_with([]).seconds_left(NOW) is None
    assert task_with([], deadline=NOW).expired


async def test_a_hand_off_names_the_attempt_and_what_the_next_agent_needs():
    sent = []
    await task_with(sent).hand_off(
        to_agent_id="sql-1",
        requirements=["sql", {"name": "python", "min_proficiency": 0.7}],
        reason="needs a database",
        subtask_id="task-1.1",
    )
    assert sent == [
        TaskHandedOff(
            task_id="task-1",
            from_agent_id="agent-1",
            attempt=2,
            to_agent_id="sql-1",
            subtask_id="task-1.1",
            reason="needs a database",
            requirements=(CapabilityRequirement(name="sql"), CapabilityRequirement(name="python", min_proficiency=0.7)),
        )
    ]


async def test_an_invalid_hand_off_is_a_value_error_and_sends_nothing():
    sent = []
    with pytest.raises(ValueError, match="to_agent_id"):
        await task_with(sent).hand_off(to_agent_id="no line\nbreaks allowed")
    assert sent == []


def test_process_usage_is_cpu_time_over_wall_time():
    clock, cpu = iter([0.0, 2.0, 4.0]), iter([1.0, 2.0, 2.5])
    usage = ProcessUsage(clock=lambda: next(clock), cpu=lambda: next(cpu), memory=lambda: 42.0)
    assert usage.sample() == (50.0, 42.0)
    assert usage.sample() == (25.0, 42.0)


def test_process_usage_reads_this_process():
    cpu_percent, memory_mb = ProcessUsage().sample()
    assert memory_mb is not None and memory_mb > 1
    assert cpu_percent is None or cpu_percent >= 0
