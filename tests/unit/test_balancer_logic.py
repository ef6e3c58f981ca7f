"""Given past events, when one more arrives, then these decisions follow."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import orjson

from events.agents import AgentCapabilitiesChanged, AgentDeregistered, AgentHealthChanged, AgentRegistered
from events.codec import decode
from events.envelope import make_event
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
from events.values import Candidate, Capability, CapabilityRequirement
from projections.task_handlers import task_timed_out
from services.balancer.logic import BalancerState, Limits, decide, tick

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def agent(agent_id, capacity=1, **per_capability):
    return AgentRegistered(
        agent_id=agent_id,
        display_name=agent_id,
        capacity=capacity,
        capabilities=(Capability(name="python", proficiency=0.8), Capability(name="sql", proficiency=0.8)),
        capacity_per_capability=per_capability,
    )


def submitted(task_id, priority=5, submitter="client", capability="python", deadline=None):
    return TaskSubmitted(
        task_id=task_id,
        requirements=(CapabilityRequirement(name=capability),),
        priority=priority,
        submitter=submitter,
        deadline=deadline,
    )


def routed(task_id, *ranked, chosen=None):
    return TaskRouted(
        task_id=task_id,
        chosen_agent_id=chosen or ranked[0],
        policy="test",
        reason="test",
        candidates=tuple(
            Candidate(
                agent_id=a,
                score=1.0 - i / 10,
                predicted_success=0.8,
                propensity=1.0 if a == (chosen or ranked[0]) else 0.0,
            )
            for i, a in enumerate(ranked)
        ),
    )


def assigned(task_id, agent_id, attempt=1, propensity=1.0):
    # The router in these scenarios draws its choice with certainty, so every assignment it leads to is certain.
    return TaskAssigned(agent_id=agent_id, task_id=task_id, attempt=attempt, capability="python", propensity=propensity)


def unhealthy(agent_id, *task_ids):
    return AgentHealthChanged(agent_id=agent_id, previous="degraded", current="unhealthy", in_flight_task_ids=task_ids)


def given_up(task_id, attempt, reason):
    return TaskTimedOut(task_id=task_id, attempt=attempt, stage="deadline", reason=f"given up: {reason}")


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
    s = Scenario().given(
        agent("a1", capacity=3, sql=1),
        submitted("t1", capability="sql"),
        routed("t1", "a1"),
        submitted("t2", capability="sql"),
    )
    assert isinstance(s.when(routed("t2", "a1"))[0], TaskQueued)
    s.given(submitted("t3"))
    assert s.when(routed("t3", "a1")) == [assigned("t3", "a1")]


def test_a_completion_frees_the_slot_for_the_most_urgent_waiting_task():
    s = Scenario().given(
        agent("a1"),
        submitted("t1"),
        routed("t1", "a1"),
        submitted("low", priority=7),
        routed("low", "a1"),
        submitted("urgent", priority=1),
        routed("urgent", "a1"),
    )
    out = s.when(TaskCompleted(task_id="t1", agent_id="a1", attempt=1))
    assert out == [assigned("urgent", "a1")]


def test_contention_for_the_last_slot_goes_to_priority_then_age():
    s = Scenario().given(
        agent("a1"),
        submitted("t0"),
        routed("t0", "a1"),
        submitted("older", priority=3),
        routed("older", "a1"),
        submitted("newer", priority=3),
        routed("newer", "a1"),
    )
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
    assert out == [
        TaskReassigned(task_id="t1", from_agent_id="a1", to_agent_id="a2", attempt=2, reason="failed on a1: boom"),
        assigned("t1", "a2", attempt=2),
    ]


def test_a_rejection_is_reassigned_and_attempts_are_bounded():
    s = Scenario(Limits(max_attempts=2)).given(
        agent("a1"),
        agent("a2"),
        agent("a3"),
        submitted("t1"),
        routed("t1", "a1", "a2", "a3"),
        TaskRejected(task_id="t1", agent_id="a1", attempt=1, reason="busy"),
    )
    assert s.in_flight("a2") == {"t1"}
    assert s.when(TaskFailed(task_id="t1", agent_id="a2", attempt=2, error="x", retryable=True)) == [
        given_up("t1", 2, "failed on a2: x, and all 2 attempts are used")
    ]
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
    s = Scenario().given(
        agent("a1", capacity=2),
        agent("a2", capacity=2),
        submitted("t1"),
        submitted("t2"),
        routed("t1", "a1", "a2"),
        routed("t2", "a1", "a2"),
    )
    out = s.when(
        AgentHealthChanged(agent_id="a1", previous="degraded", current="unhealthy", in_flight_task_ids=("t1", "t2"))
    )
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
        agent("a1"), agent("a2"), submitted("t1"), routed("t1", "a1", "a2")
    )
    assert tick(s.state, s.now + timedelta(seconds=10), s.limits) == []
    out = tick(s.state, s.now + timedelta(seconds=31), s.limits)
    assert out[0] == TaskTimedOut(task_id="t1", agent_id="a1", attempt=1, stage="start")
    assert out[-1] == assigned("t1", "a2", attempt=2)


def test_a_started_task_is_not_timed_out():
    s = Scenario(Limits(start_timeout=timedelta(seconds=30))).given(
        agent("a1"), submitted("t1"), routed("t1", "a1"), TaskStarted(task_id="t1", agent_id="a1", attempt=1)
    )
    assert tick(s.state, s.now + timedelta(minutes=5), s.limits) == []


def test_a_queued_task_past_its_deadline_expires():
    s = Scenario().given(
        agent("a1"),
        submitted("t0"),
        routed("t0", "a1"),
        TaskStarted(task_id="t0", agent_id="a1", attempt=1),
        submitted("t1", deadline=T0 + timedelta(minutes=1)),
        routed("t1", "a1"),
    )
    assert tick(s.state, T0 + timedelta(minutes=2), s.limits) == [
        TaskTimedOut(task_id="t1", attempt=0, stage="deadline", reason="its deadline passed while it waited")
    ]


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
            outcome = rng.choice(
                [
                    TaskCompleted(task_id=task_id, agent_id=agent_id, attempt=attempt),
                    TaskFailed(task_id=task_id, agent_id=agent_id, attempt=attempt, error="e", retryable=True),
                    TaskRejected(task_id=task_id, agent_id=agent_id, attempt=attempt, reason="r"),
                ]
            )
            live.pop(task_id)
            out = s.when(outcome)
        else:
            continue
        live.update({e.task_id: (e.agent_id, e.attempt) for e in out if isinstance(e, TaskAssigned)})
        for agent_id, slot in s.state.slots.items():
            assert len(slot.in_flight) <= slot.capacity, agent_id
    assert sum(len(slot.in_flight) for slot in s.state.slots.values()) == len(live)


def test_the_assignment_carries_the_submitted_payload():
    s = Scenario().given(
        agent("a1"),
        TaskSubmitted(
            task_id="t1",
            requirements=(CapabilityRequirement(name="python"),),
            submitter="c",
            payload={"prompt": "fix it"},
        ),
    )
    [assignment] = s.when(routed("t1", "a1"))
    assert assignment.payload == {"prompt": "fix it"}


def test_a_routing_repeated_after_the_task_ended_does_not_start_it_again():
    s = Scenario().given(
        agent("a1"), submitted("t1"), routed("t1", "a1"), TaskCompleted(task_id="t1", agent_id="a1", attempt=1)
    )
    assert s.when(routed("t1", "a1")) == []
    assert s.in_flight("a1") == set()


def test_a_subtask_handed_off_leaves_the_task_with_its_agent():
    s = Scenario().given(agent("a1"), agent("a2"), submitted("t1"), routed("t1", "a1", "a2"))
    assert (
        s.when(
            TaskHandedOff(
                task_id="t1",
                from_agent_id="a1",
                attempt=1,
                subtask_id="t1.review",
                to_agent_id="a2",
                reason="needs a reviewer",
            )
        )
        == []
    )
    assert s.in_flight("a1") == {"t1"}


# --- giving up: every task the balancer drops ends with a terminal event saying why ---------


def test_a_task_out_of_attempts_after_an_unhealthy_verdict_ends_with_the_reason():
    s = Scenario(Limits(max_attempts=1)).given(agent("a1"), agent("a2"), submitted("t1"), routed("t1", "a1", "a2"))
    out = s.when(unhealthy("a1", "t1"))
    assert out == [given_up("t1", 1, "a1 is unhealthy, and all 1 attempts are used")]
    assert "t1" not in s.state.tasks and s.in_flight("a1") == s.in_flight("a2") == set()


def test_the_give_up_event_makes_the_tasks_row_terminal():
    s = Scenario(Limits(max_attempts=1)).given(agent("a1"), submitted("t1"), routed("t1", "a1"))
    [event] = s.when(unhealthy("a1", "t1"))
    [row] = task_timed_out(make_event(event, producer="balancer"))
    assert row.values["status_terminal"] is True and row.values["status"] == "expired"


def test_a_task_no_untried_agent_can_take_ends_with_the_reason():
    s = Scenario().given(agent("a1"), submitted("t1"), routed("t1", "a1"))
    out = s.when(TaskRejected(task_id="t1", agent_id="a1", attempt=1, reason="busy"))
    assert out == [given_up("t1", 1, "rejected by a1: busy, and no agent it has not tried can take it")]


def test_a_task_out_of_attempts_after_a_start_timeout_ends_with_the_reason():
    s = Scenario(Limits(max_attempts=1, start_timeout=timedelta(seconds=30))).given(
        agent("a1"), agent("a2"), submitted("t1"), routed("t1", "a1", "a2")
    )
    assert tick(s.state, s.now + timedelta(seconds=31), s.limits) == [
        TaskTimedOut(task_id="t1", agent_id="a1", attempt=1, stage="start"),
        given_up("t1", 1, "a1 did not start it within 30s, and all 1 attempts are used"),
    ]
    assert s.state.tasks == {}


def test_an_agents_long_error_still_fits_in_the_reassignment():
    s = Scenario().given(agent("a1"), agent("a2"), submitted("t1"), routed("t1", "a1", "a2"))
    [reassigned, assignment] = s.when(
        TaskFailed(task_id="t1", agent_id="a1", attempt=1, error="x" * 4000, retryable=True)
    )
    assert reassigned.to_agent_id == "a2" and assignment == assigned("t1", "a2", attempt=2)


def test_a_version_1_timeout_without_a_reason_still_reads():
    raw = orjson.dumps(
        {
            "event_id": "0b9e5c36-2f0d-4d8e-9a51-7c7f3f2b4a11",
            "event_type": "TaskTimedOut",
            "version": 1,
            "occurred_at": "2025-06-01T12:00:00Z",
            "producer": "balancer",
            "key": "t1",
            "body": {"task_id": "t1", "agent_id": "a1", "attempt": 1, "stage": "start"},
        }
    )
    assert decode(raw).body == TaskTimedOut(task_id="t1", agent_id="a1", attempt=1, stage="start")


# --- a task started but never finished ----------------------------------------------


def test_a_started_task_not_finished_in_time_is_timed_out_and_reassigned():
    limits = Limits(completion_timeout=timedelta(minutes=10))
    s = Scenario(limits).given(
        agent("a1"),
        agent("a2"),
        submitted("t1"),
        routed("t1", "a1", "a2"),
        TaskStarted(task_id="t1", agent_id="a1", attempt=1),
    )
    assert tick(s.state, s.now + timedelta(minutes=9), limits) == []
    assert tick(s.state, s.now + timedelta(minutes=11), limits) == [
        TaskTimedOut(task_id="t1", agent_id="a1", attempt=1, stage="completion"),
        TaskReassigned(
            task_id="t1",
            from_agent_id="a1",
            to_agent_id="a2",
            attempt=2,
            reason="a1 did not finish it within 600s of starting it",
        ),
        assigned("t1", "a2", attempt=2),
    ]
    assert s.in_flight("a1") == set() and s.in_flight("a2") == {"t1"}


def test_the_completion_deadline_counts_from_the_start_not_the_assignment():
    limits = Limits(start_timeout=timedelta(minutes=5), completion_timeout=timedelta(minutes=10))
    s = Scenario(limits).given(agent("a1"), agent("a2"), submitted("t1"), routed("t1", "a1", "a2"))
    started_at = s.now + timedelta(minutes=4)
    decide(s.state, TaskStarted(task_id="t1", agent_id="a1", attempt=1), started_at, limits)
    assert tick(s.state, started_at + timedelta(minutes=9), limits) == []
    assert [
        e.stage for e in tick(s.state, started_at + timedelta(minutes=11), limits) if isinstance(e, TaskTimedOut)
    ] == ["completion"]


def test_a_hung_task_out_of_attempts_ends_with_the_reason():
    limits = Limits(max_attempts=1, completion_timeout=timedelta(minutes=10))
    s = Scenario(limits).given(
        agent("a1"),
        agent("a2"),
        submitted("t1"),
        routed("t1", "a1", "a2"),
        TaskStarted(task_id="t1", agent_id="a1", attempt=1),
    )
    assert tick(s.state, s.now + timedelta(minutes=11), limits) == [
        TaskTimedOut(task_id="t1", agent_id="a1", attempt=1, stage="completion"),
        given_up("t1", 1, "a1 did not finish it within 600s of starting it, and all 1 attempts are used"),
    ]


# --- work-conserving: no task waits while a capable agent has room -------------------


def skilled(agent_id, capacity=1, **proficiency):
    return AgentRegistered(
        agent_id=agent_id,
        display_name=agent_id,
        capacity=capacity,
        capabilities=tuple(Capability(name=n, proficiency=p) for n, p in proficiency.items()),
    )


def needing(task_id, **least):
    return TaskSubmitted(
        task_id=task_id,
        submitter="client",
        requirements=tuple(CapabilityRequirement(name=n, min_proficiency=p) for n, p in least.items()),
    )


def fallback(task_id, agent_id, attempt=1):
    return TaskReassigned(
        task_id=task_id,
        to_agent_id=agent_id,
        attempt=attempt,
        reason=(
            f"none of the router's candidates has room: {agent_id} meets the requirements and is the least "
            f"loaded other agent with room, picked with probability 1"
        ),
    )


def test_when_no_candidate_has_room_another_capable_agent_takes_the_task():
    s = Scenario().given(agent("a1"), agent("a3"), agent("a2"), submitted("t0"), routed("t0", "a1"), submitted("t1"))
    assert s.when(routed("t1", "a1")) == [fallback("t1", "a2"), assigned("t1", "a2")]  # a tie goes by id


def test_the_fallback_meets_the_requirements_as_the_router_would_and_prefers_the_least_loaded():
    s = Scenario().given(
        skilled("busy", python=0.9),
        skilled("novice", python=0.3),
        skilled("other", sql=0.9),
        skilled("expert", capacity=4, python=0.9, sql=0.6),
        skilled("half", capacity=2, python=0.7),
        needing("t0", python=0.5),
        routed("t0", "busy"),
        needing("t1", python=0.5),
        routed("t1", "half"),
    )
    s.given(needing("t2", python=0.5, sql=0.5))
    assert s.when(routed("t2", "busy"))[-1] == assigned("t2", "expert")
    s.given(needing("t3", python=0.5))
    assert s.when(routed("t3", "busy"))[-1] == assigned("t3", "expert")  # 1/4 loaded, `half` 1/2


def test_a_fallback_never_goes_to_an_unhealthy_draining_or_tried_agent():
    s = Scenario().given(
        agent("a1"),
        agent("sick"),
        agent("leaving"),
        agent("a2"),
        unhealthy("sick"),
        AgentDeregistered(agent_id="leaving", drain=True),
        submitted("t1"),
        routed("t1", "a2"),
        TaskRejected(task_id="t1", agent_id="a2", attempt=1, reason="not now"),
    )
    assert s.in_flight("a1") == {"t1"}
    s.given(submitted("t2"))
    assert isinstance(s.when(routed("t2", "a1"))[-1], TaskAssigned)  # a2 has room, and never tried t2
    s.given(submitted("t3"))
    [queued] = s.when(routed("t3", "a1"))
    assert isinstance(queued, TaskQueued)


def test_a_retry_may_fall_back_and_its_reassignment_says_why():
    s = Scenario().given(agent("a1"), agent("a2"), submitted("t1"), routed("t1", "a1"))
    out = s.when(TaskFailed(task_id="t1", agent_id="a1", attempt=1, error="boom", retryable=True))
    assert out == [
        TaskReassigned(
            task_id="t1",
            from_agent_id="a1",
            to_agent_id="a2",
            attempt=2,
            reason=f"failed on a1: boom; {fallback('t1', 'a2').reason}",
        ),
        assigned("t1", "a2", attempt=2),
    ]


def test_a_waiting_task_goes_to_whichever_capable_agent_frees_up_first():
    s = Scenario().given(
        agent("a1"),
        agent("a2"),
        submitted("t0"),
        routed("t0", "a1"),
        submitted("t1"),
        routed("t1", "a2"),
        submitted("t2"),
    )
    assert isinstance(s.when(routed("t2", "a1"))[0], TaskQueued)
    assert s.when(TaskCompleted(task_id="t1", agent_id="a2", attempt=1)) == [fallback("t2", "a2"), assigned("t2", "a2")]


def test_a_waiting_task_goes_to_a_capable_agent_that_registers_or_gains_the_capability():
    s = Scenario().given(
        agent("a1"),
        submitted("t0"),
        routed("t0", "a1"),
        submitted("t1"),
        routed("t1", "a1"),
        skilled("newcomer", sql=0.9),
        submitted("t2"),
        routed("t2", "a1"),
    )
    assert s.when(skilled("late", python=0.9)) == [fallback("t1", "late"), assigned("t1", "late")]
    assert s.when(
        AgentCapabilitiesChanged(
            agent_id="newcomer", changed_by="operator", added=(Capability(name="python", proficiency=0.7),)
        )
    ) == [fallback("t2", "newcomer"), assigned("t2", "newcomer")]


def test_a_slot_freed_by_a_timeout_goes_to_a_task_waiting_for_it():
    # Found by tests/unit/test_bad_input.py: the clock freed the late agent's slot, nothing else
    # happened, and the task queued for that agent waited while it sat idle.
    s = Scenario(Limits(start_timeout=timedelta(seconds=30))).given(
        agent("a1"), submitted("t1"), routed("t1", "a1"), submitted("t2"), routed("t2", "a1")
    )
    assert s.state.tasks["t2"].queued_at is not None

    out = tick(s.state, s.now + timedelta(seconds=31), s.limits)

    assert [type(e).__name__ for e in out] == ["TaskTimedOut", "TaskTimedOut", "TaskAssigned"]
    assert out[-1].task_id == "t2" and out[-1].agent_id == "a1"
    assert s.state.slots["a1"].in_flight == {"t2": "python"}


# --- the probability the assignment carries ---------------------------------------------


def drawn(task_id, chances: dict[str, float], chosen: str):
    """A routing whose draw was a real one: each candidate with its chance, best first."""
    return TaskRouted(
        task_id=task_id,
        chosen_agent_id=chosen,
        policy="test",
        reason="test",
        candidates=tuple(
            Candidate(agent_id=a, score=1.0 - i / 10, predicted_success=0.8, propensity=p)
            for i, (a, p) in enumerate(chances.items())
        ),
    )


def test_the_routers_draw_given_room_is_the_assignments_propensity():
    s = Scenario().given(agent("a1"), agent("a2"), submitted("t1"))
    assert s.when(drawn("t1", {"a1": 0.7, "a2": 0.3}, chosen="a2")) == [assigned("t1", "a2", propensity=0.3)]


def test_an_override_carries_the_chance_of_every_draw_that_leads_to_it():
    # a1 is full: whichever of a1 and a2 the router drew, a2 gets the task; a3 only if drawn.
    s = Scenario().given(agent("a1"), agent("a2"), agent("a3"), submitted("t0"), routed("t0", "a1"), submitted("t1"))
    out = s.when(drawn("t1", {"a1": 0.5, "a2": 0.3, "a3": 0.2}, chosen="a1"))
    assert out == [assigned("t1", "a2", propensity=0.8)]


def test_a_fallback_beyond_the_candidates_is_certain():
    s = Scenario().given(agent("a1"), agent("a2"), submitted("t0"), routed("t0", "a1"), submitted("t1"))
    reassigned, assignment = s.when(drawn("t1", {"a1": 1.0}, chosen="a1"))
    assert isinstance(reassigned, TaskReassigned) and reassigned.from_agent_id is None
    assert assignment == assigned("t1", "a2", propensity=1.0)


def test_a_task_assigned_after_waiting_carries_the_chance_of_the_agent_that_freed_up():
    s = Scenario().given(
        agent("a1"),
        agent("a2"),
        submitted("t0"),
        routed("t0", "a1"),
        submitted("t9"),
        routed("t9", "a2"),
        submitted("t1"),
        drawn("t1", {"a1": 0.6, "a2": 0.4}, chosen="a1"),
    )
    out = s.when(TaskCompleted(task_id="t9", agent_id="a2", attempt=1))
    # Only a2 has room now: drawn a1 or a2, a2 gets it.
    assert out == [assigned("t1", "a2", propensity=1.0)]


def test_without_logged_chances_the_propensity_stays_unknown():
    s = Scenario().given(agent("a1"), submitted("t1"))
    assert s.when(drawn("t1", {"a1": 0.0}, chosen="a1")) == [assigned("t1", "a1", propensity=None)]


def completed(task_id, agent_id, attempt):
    return TaskCompleted(
        task_id=task_id, agent_id=agent_id, attempt=attempt, success=True, duration_ms=5.0, result_summary="done"
    )


def test_a_task_done_by_an_attempt_already_timed_out_is_not_tried_again():
    # a1 is late to say it started; its attempt is timed out and the task waits for another agent
    s = Scenario(Limits(start_timeout=timedelta(seconds=30))).given(
        agent("a1"),
        agent("a2"),
        submitted("t2"),
        routed("t2", "a2"),
        TaskStarted(task_id="t2", agent_id="a2", attempt=1),
        submitted("t1"),
        routed("t1", "a1", "a2"),
    )
    out = tick(s.state, s.now + timedelta(seconds=31), s.limits)
    assert isinstance(out[-1], TaskQueued) and "t1" in s.state.tasks
    # ... then says it completed it: the task is done, and the queue no longer holds it
    assert s.when(completed("t1", "a1", attempt=1)) == []
    assert "t1" not in s.state.tasks
    assert s.when(completed("t2", "a2", attempt=1)) == []  # a2's room goes to nothing


def test_a_task_done_late_while_a_later_attempt_runs_ends_with_that_attempt():
    s = Scenario(Limits(start_timeout=timedelta(seconds=30))).given(
        agent("a1"), agent("a2"), agent("a3"), submitted("t1"), routed("t1", "a1", "a2", "a3")
    )
    assert tick(s.state, s.now + timedelta(seconds=31), s.limits)[-1] == assigned("t1", "a2", attempt=2)
    s.now += timedelta(seconds=31)
    assert s.when(completed("t1", "a1", attempt=1)) == []  # late: a2's attempt goes on
    out = tick(s.state, s.now + timedelta(seconds=31), s.limits)  # a2 never starts it either
    assert out == [TaskTimedOut(task_id="t1", agent_id="a2", attempt=2, stage="start")]  # and no third attempt
    assert "t1" not in s.state.tasks and s.in_flight("a2") == set()
