"""The chaos run's pure parts: the seeded plan of faults and the invariants judged from the log."""

from bench.chaos.invariants import (
    acknowledged_are_written,
    attempts_decided_once,
    every_task_ended,
    never_held_twice,
    never_over_capacity,
    nothing_after_the_end,
)
from bench.chaos.plan import kinds, plan
from bench.chaos.run import longest_pause
from events.envelope import make_event
from events.tasks import TaskReassigned, TaskTimedOut
from tests import factories as f


def test_the_plan_is_the_same_for_the_same_seed_and_spreads_every_kind_before_repeating_one():
    menu = kinds()
    first = plan(300, len(menu) + 3, seed=4)
    assert first == plan(300, len(menu) + 3, seed=4) != plan(300, len(menu) + 3, seed=5)
    assert {(x.kind, x.target) for x in first[: len(menu)]} == set(menu)
    starts = [x.at_s for x in first]
    assert starts == sorted(starts) and 0.1 * 300 <= starts[0] and starts[-1] <= 0.8 * 300
    # One fault at a time: each is over before the next begins.
    assert all(a.at_s + a.hold_s <= b.at_s for a, b in zip(first, first[1:]))
    assert plan(60, 0, seed=1) == []


def test_a_submission_acknowledged_but_not_in_the_log_is_lost():
    events = [f.submitted("t-1")]
    assert acknowledged_are_written(["t-1"], events).held
    assert acknowledged_are_written(["t-1", "t-2"], events).violations == ("t-2",)


def test_a_task_must_end_for_good_or_wait_with_a_reason():
    events = [
        *f.lifecycle("done"),
        f.submitted("retrying"),
        f.failed("retrying", retryable=True),
        f.submitted("given-up"),
        make_event(TaskTimedOut(task_id="given-up", attempt=0, stage="deadline"), producer="balancer"),
        f.submitted("queued"),
    ]
    check = every_task_ended(events)
    assert check.violations == ("queued", "retrying")
    assert every_task_ended(events, {"queued": "no capacity", "retrying": "waiting"}).held


def test_two_decisions_for_one_attempt_are_a_violation_but_a_redelivered_one_is_not():
    once = f.assigned("t-1", "a")
    assert attempts_decided_once([once, once]).held
    assert attempts_decided_once([once, f.assigned("t-1", "b")]).violations == ("t-1 attempt 1",)


def test_capacity_is_rebuilt_from_assignments_and_endings_in_time_order():
    events = [
        f.assigned("t-1", "a", t=1),
        f.assigned("t-2", "a", t=2),
        f.completed("t-1", "a", t=3),
        f.assigned("t-3", "a", t=3),  # the slot freed at the same instant: not over
    ]
    assert never_over_capacity(events, {"a": 2}).held
    over = never_over_capacity([*events, f.assigned("t-4", "a", t=4)], {"a": 2})
    assert over.violations == ("a held 3 at capacity 2",)


def test_a_task_reassigned_only_after_its_attempt_ended_is_not_held_twice():
    reassigned = TaskReassigned(task_id="t-1", from_agent_id="a", to_agent_id="b", attempt=2, reason="unhealthy")
    events = [
        f.assigned("t-1", "a", t=1),
        make_event(reassigned, producer="balancer", occurred_at=f.at(3)),
        f.assigned("t-1", "b", attempt=2, t=5),
    ]
    assert never_held_twice(events).held
    overlapping = [f.assigned("t-1", "a", t=1), f.assigned("t-1", "b", attempt=2, t=5)]
    assert never_held_twice(overlapping).violations == ("t-1: [('a', 1), ('b', 2)]",)


def test_an_attempt_ends_at_its_earliest_ending_whatever_order_the_log_is_read_in():
    timed_out = TaskTimedOut(task_id="t-1", agent_id="a", attempt=1, stage="start")
    events = [
        f.completed("t-1", "a", t=9),  # the agent's late report, read first
        f.assigned("t-1", "a", t=1),
        make_event(timed_out, producer="balancer", occurred_at=f.at(4)),
        f.assigned("t-2", "a", t=5),
    ]
    assert never_over_capacity(events, {"a": 1}).held


def test_an_attempt_reassigned_in_the_decision_that_made_it_held_nothing():
    reassigned = TaskReassigned(task_id="t-1", from_agent_id="a", to_agent_id="b", attempt=3, reason="unhealthy")
    events = [
        f.assigned("t-1", "a", attempt=2, t=4),
        make_event(reassigned, producer="balancer", occurred_at=f.at(4)),
        f.assigned("t-1", "b", attempt=3, t=5),
    ]
    assert never_held_twice(events).held
    assert never_over_capacity([*events, f.assigned("t-2", "a", t=6)], {"a": 1, "b": 1}).held


def test_a_task_assigned_again_after_it_completed_is_a_violation():
    events = [*f.lifecycle("t-1", "a", t=1), f.assigned("t-1", "b", attempt=2, t=9)]
    assert nothing_after_the_end(events).violations == ("t-1 attempt 2",)
    assert nothing_after_the_end(f.lifecycle("t-2", "a")).held


def test_the_longest_pause_counts_the_edges_of_the_window():
    assert longest_pause([1.0, 2.0, 6.0, 7.0], start=0.5, end=8.0) == 4.0
    assert longest_pause([], start=0.0, end=3.0) == 3.0
