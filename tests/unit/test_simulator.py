import random
from datetime import datetime, timedelta, timezone

from bench.evaluation.simulator.fleet import CAPABILITIES, make_fleet, task_stream
from bench.evaluation.simulator.scoring import score
from events.envelope import make_event
from events.tasks import TaskAssigned, TaskCompleted, TaskSubmitted
from events.values import CapabilityRequirement

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def at(s):
    return T0 + timedelta(seconds=s)


def ev(body, t):
    return make_event(body, producer="sim", occurred_at=at(t))


def submitted(task_id, t):
    return ev(TaskSubmitted(task_id=task_id, submitter="c", requirements=(CapabilityRequirement(name="python"),)), t)


def assigned(task_id, agent, t, attempt=1):
    return ev(TaskAssigned(task_id=task_id, agent_id=agent, attempt=attempt, capability="python"), t)


def completed(task_id, agent, t, success=True, attempt=1):
    return ev(TaskCompleted(task_id=task_id, agent_id=agent, attempt=attempt, success=success), t)


def test_a_run_is_scored_from_its_events():
    events = [
        submitted("t1", 0),
        submitted("t2", 0),
        assigned("t1", "a", 1),
        assigned("t2", "b", 3),
        completed("t1", "a", 5),
        completed("t2", "b", 5, success=False),
    ]
    result = score(events, {"a": 1, "b": 1})
    assert (result.tasks, result.completed, result.success_rate) == (2, 2, 0.5)
    assert result.capacity_violations == 0
    assert result.p95_wait_ms == 3000.0
    assert round(result.utilization, 3) == round((4 + 2) / (5 * 2), 3)
    assert result.jain_fairness == 1.0


def test_over_assignment_is_counted():
    events = [
        submitted("t1", 0),
        submitted("t2", 0),
        assigned("t1", "a", 1),
        assigned("t2", "a", 2),
        completed("t1", "a", 3),
        completed("t2", "a", 4),
    ]
    assert score(events, {"a": 1}).capacity_violations == 1


def test_a_slot_freed_and_taken_in_the_same_instant_is_no_violation():
    events = [
        submitted("t1", 0),
        submitted("t2", 0),
        assigned("t1", "a", 1),
        completed("t1", "a", 2),
        assigned("t2", "a", 2),
        completed("t2", "a", 3),
    ]
    assert score(events, {"a": 1}).capacity_violations == 0


def test_the_fleet_covers_every_capability_and_outcomes_follow_hidden_skill():
    fleet = make_fleet(6, seed=3)
    assert set(CAPABILITIES) <= {c for a in fleet for c in a.skill}
    agent = fleet[0]
    capability = next(iter(agent.skill))
    agent.skill[capability], agent.drift_per_task[capability] = 0.9, 0.0
    rng = random.Random(1)
    wins = sum(agent.attempt(capability, rng)[0] for _ in range(2000))
    assert 0.87 < wins / 2000 < 0.93
    assert len(task_stream(50)) == 50
