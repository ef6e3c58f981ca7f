"""Given past events, when one more arrives, then these decisions follow."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from events.agents import AgentDeregistered, AgentHealthChanged, AgentRegistered
from events.tasks import (TaskAssigned, TaskCompleted, TaskFailed, TaskHandedOff, TaskQueued, TaskReassigned,
                          TaskRejected, TaskRouted, TaskStarted, TaskSubmitted, TaskTimedOut)
from events.values import Candidate, Capability, CapabilityRequirement
from services.balancer.logic import BalancerState, Limits, decide, tick

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def agent(agent_id, capacity=1, **per_capability):
    return AgentRegistered(agent_id=agent_id, display_name=agent_id, capacity=capacity,
                           capabilities=(Capability(name="python", proficiency=0.8),
                                         Capability(name="sql", proficiency=0.8)),
                           capacity_per_capability=per_capability)


def submitted(task_id, priority=5, submitter="client", capability="python", deadline=None):
    return TaskSubmitted(task_id=task_id, requirements=(CapabilityRequirement(name=capability),),
                         priority=priority, submitter=submitter, deadline=deadline)


def routed(task_id, *ranked, chosen=None):
    return TaskRouted(task_id=task_id, chosen_agent_id=chosen or ranked[0], policy="test", reason="test",
                      candidates=tuple(Candidate(agent_id=a, score=1.0 - i / 10, predicted_success=0.8,
                                                 propensity=1.0 if a == (chosen or ranked[0]) else 0.0)
                                       for i, a in enumerate(ranked)))


def assigned(task_id, agent_id, attempt=1):
    return TaskAssigned(agent_id=agent_id, task_id=task_id, attempt=attempt, capability="python")


class Scenario:
    def __init__(self, limits: Limits = Limits()) -> None:
        self.state, self.limits, self.now = BalancerState(), limits, T0

    def given(self, *events) -> "Scenario":
        for event in events:
            self.now += timedelta(seconds=1)
            decide(self.state, event, self.now, self.limits)
        return self

    def when(self, event) -> list:
        self.now += timedelta(seconds=1)
        return decide(self.state, event, self.now, self.limits)

    def in_flight(self, agent_id) -> set[str]:
        return set(self.state.slots[agent_id].in_flight)


def test_the_routers_choice_gets_the_task_when_it_has_room():
    s = Scenario().given(agent("a1"), agent("a2"), submitted("t1"))
    assert s.when(routed("t1", "a1", "a2")) == [assigned("t1", "a1")]


def test_a_full_choice_falls_back_to_the_next_candidate_with_room():
    s = Scenario().given(agent("a1"), agent("a2"), submitted("t1"), routed("t1", "a1"), submitted("t2"))
    assert s.when(routed("t2", "a1", "a2")) == [assigned("t2", "a2")]


def test_never_beyond_capacity_the_task_waits_instead():
    s = Scenario().given(agent("a1", capacity=1), submitted("t1"), routed("t1", "a1"), submitted("t2"))
    [queued] = s.when(routed("t2", "a1"))
    assert isinstance(queued, TaskQueued) and "capacity" in queued.reason and queued.position == 1
    assert s.in_flight("a1") == {"t1"}


def test_per_capability_capacity_is_respected():
    s = Scenario().given(agent("a1", capacity=3, sql=1), submitted("t1", capability="sql"), routed("t1", "a1"),
                         submitted("t2", capability="sql"))
    assert isinstance(s.when(routed("t2", "a1"))[0], TaskQueued)
    s.given(submitted("t3"))
    assert s.when(routed("t3", "a1")) == [assigned("t3", "a1")]


def test_a_completion_frees_the_slot_for_the_most_urgent_waiting_task():
    s = Scenario().given(agent("a1"), submitted("t1"), routed("t1", "a1"),
                         submitted("low", priority=7), routed("low", "a1"),
                         submitted("urgent", priority=1), routed("urgent", "a1"))
    out = s.when(TaskCompleted(task_id="t1", agent_id="a1", attempt=1))
    assert out == [assigned("urgent", "a1")]


def test_contention_for_the_last_slot_goes_to_priority_then_age():
    s = Scenario().given(agent("a1"), submitted("t0"), routed("t0", "a1"),
                         submitted("older", priority=3), routed("older", "a1"),
                         submitted("newer", priority=3), routed("newer", "a1"))
    assert s.when(TaskCompleted(task_id="t0", agent_id="a1", attempt=1)) == [assigned("older", "a1")]


def test_a_submitter_with_many_tasks_does_not_starve_another():
    s = Scenario().given(agent("a1"), submitted("t0"), routed("t0", "a1"))
    for n in range(3):
        s.given(submitted(f"big-{n}", submitter="big"), routed(f"big-{n}", "a1"))
    s.given(submitted("small-0", submitter="small"), routed("small-0", "a1"))
    s.given(TaskCompleted(task_id="t0", agent_id="a1", attempt=1))  # big-0 goes first: oldest
    assert s.when(TaskCompleted(task_id="big-0", agent_id="a1", attempt=1)) == [assigned("small-0", "a1")]


def test_a_retryable_failure_goes_to_the_next_candidate_never_the_same_agent():
    s = Scenario().given(agent("a1"), agent("a2"), submitted("t1"), routed("t1", "a1", "a2"))
    out = s.when(TaskFailed(task_id="t1", agent_id="a1", attempt=1, error="boom", retryable=True))
    assert out == [TaskReassigned(task_id="t1", from_agent_id="a1", to_agent_id="a2", attempt=2,
                                  reason="failed on a1: boom"), assigned("t1", "a2", attempt=2)]


def test_a_rejection_is_reassigned_and_attempts_are_bounded():
    s = Scenario(Limits(max_attempts=2)).given(agent("a1"), agent("a2"), agent("a3"), submitted("t1"),
                                               routed("t1", "a1", "a2", "a3"),
                                               TaskRejected(task_id="t1", agent_id="a1", attempt=1, reason="busy"))
    assert s.in_flight("a2") == {"t1"}
    assert s.when(TaskFailed(task_id="t1", agent_id="a2", attempt=2, error="x", retryable=True)) == []
    assert s.in_flight("a3") == set()


def test_a_non_retryable_failure_is_final():
    s = Scenario().given(agent("a1"), agent("a2"), submitted("t1"), routed("t1", "a1", "a2"))
    assert s.when(TaskFailed(task_id="t1", agent_id="a1", attempt=1, error="bad input", retryable=False)) == []
    assert s.in_flight("a1") == set() and s.in_flight("a2") == set()


def test_duplicate_deliveries_change_nothing():
    s = Scenario().given(agent("a1", capacity=2), submitted("t1"), routed("t1", "a1"))
    assert s.when(routed("t1", "a1")) == []
    done = TaskCompleted(task_id="t1", agent_id="a1", attempt=1)
    s.given(done, submitted("t2"), routed("t2", "a1"))
    assert s.when(done) == []
    assert s.in_flight("a1") == {"t2"}


def test_an_unhealthy_agents_tasks_are_reassigned():
    s = Scenario().given(agent("a1", capacity=2), agent("a2", capacity=2), submitted("t1"), submitted("t2"),
                         routed("t1", "a1", "a2"), routed("t2", "a1", "a2"))
    out = s.when(AgentHealthChanged(agent_id="a1", previous="degraded", current="unhealthy",
                                    in_flight_task_ids=("t1", "t2")))
    assert [e.task_id for e in out if isinstance(e, TaskAssigned)] == ["t1", "t2"]
    assert s.in_flight("a1") == set() and s.in_flight("a2") == {"t1", "t2"}


def test_a_draining_agent_gets_nothing_new():
    s = Scenario().given(agent("a1"), AgentDeregistered(agent_id="a1", drain=True), submitted("t1"))
    assert isinstance(s.when(routed("t1", "a1"))[0], TaskQueued)


def test_a_waiting_task_is_assigned_when_an_agent_registers():
    s = Scenario().given(submitted("t1"), routed("t1", "a1"))
    assert s.when(agent("a1")) == [assigned("t1", "a1")]


def test_a_task_not_started_in_time_is_reassigned():
    s = Scenario(Limits(start_timeout=timedelta(seconds=30))).given(
        agent("a1"), agent("a2"), submitted("t1"), routed("t1", "a1", "a2"))
    assert tick(s.state, s.now + timedelta(seconds=10), s.limits) == []
    out = tick(s.state, s.now + timedelta(seconds=31), s.limits)
    assert out[0] == TaskTimedOut(task_id="t1", agent_id="a1", attempt=1, stage="start")
    assert out[-1] == assigned("t1", "a2", attempt=2)


def test_a_started_task_is_not_timed_out():
    s = Scenario(Limits(start_timeout=timedelta(seconds=30))).given(
        agent("a1"), submitted("t1"), routed("t1", "a1"), TaskStarted(task_id="t1", agent_id="a1", attempt=1))
    assert tick(s.state, s.now + timedelta(minutes=5), s.limits) == []


def test_a_queued_task_past_its_deadline_expires():
    s = Scenario().given(agent("a1"), submitted("t0"), routed("t0", "a1"),
                         TaskStarted(task_id="t0", agent_id="a1", attempt=1),
                         submitted("t1", deadline=T0 + timedelta(minutes=1)), routed("t1", "a1"))
    assert tick(s.state, T0 + timedelta(minutes=2), s.limits) == [TaskTimedOut(task_id="t1", attempt=0, stage="deadline")]


def test_capacity_is_never_exceeded_under_a_random_storm():
    import random
    rng = random.Random(3)
    s = Scenario().given(*(agent(f"a{i}", capacity=rng.randint(1, 3)) for i in range(5)))
    live: dict[str, tuple[str, int]] = {}
    for n in range(2000):
        roll = rng.random()
        if roll < 0.5:
            task_id = f"t{n}"
            s.given(submitted(task_id, priority=rng.randint(0, 9)))
            out = s.when(routed(task_id, *rng.sample([f"a{i}" for i in range(5)], 3)))
        elif live:
            task_id, (agent_id, attempt) = rng.choice(sorted(live.items()))
            outcome = rng.choice([TaskCompleted(task_id=task_id, agent_id=agent_id, attempt=attempt),
                                  TaskFailed(task_id=task_id, agent_id=agent_id, attempt=attempt, error="e",
                                             retryable=True),
                                  TaskRejected(task_id=task_id, agent_id=agent_id, attempt=attempt, reason="r")])
            live.pop(task_id)
            out = s.when(outcome)
        else:
            continue
        live.update({e.task_id: (e.agent_id, e.attempt) for e in out if isinstance(e, TaskAssigned)})
        for agent_id, slot in s.state.slots.items():
            assert len(slot.in_flight) <= slot.capacity, agent_id
    assert sum(len(slot.in_flight) for slot in s.state.slots.values()) == len(live)


def test_the_assignment_carries_the_submitted_payload():
    s = Scenario().given(agent("a1"), TaskSubmitted(task_id="t1", requirements=(CapabilityRequirement(name="python"),),
                                                    submitter="c", payload={"prompt": "fix it"}))
    [assignment] = s.when(routed("t1", "a1"))
    assert assignment.payload == {"prompt": "fix it"}


def test_a_routing_repeated_after_the_task_ended_does_not_start_it_again():
    s = Scenario().given(agent("a1"), submitted("t1"), routed("t1", "a1"),
                         TaskCompleted(task_id="t1", agent_id="a1", attempt=1))
    assert s.when(routed("t1", "a1")) == []
    assert s.in_flight("a1") == set()


def test_a_subtask_handed_off_leaves_the_task_with_its_agent():
    s = Scenario().given(agent("a1"), agent("a2"), submitted("t1"), routed("t1", "a1", "a2"))
    assert s.when(TaskHandedOff(task_id="t1", from_agent_id="a1", attempt=1, subtask_id="t1.review",
                                to_agent_id="a2", reason="needs a reviewer")) == []
    assert s.in_flight("a1") == {"t1"}
