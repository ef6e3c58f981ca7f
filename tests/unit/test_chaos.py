"""The chaos run's pure parts: the seeded plan of faults and the invariants judged from the log."""

import subprocess
import sys

from bench.chaos.invariants import (
    InboxEntry,
    acknowledged_are_written,
    assigned_while_the_end_was_on_its_way,
    attempts_decided_once,
    every_task_ended,
    never_held_twice,
    never_over_capacity,
    nothing_after_the_end,
)
from bench.chaos.plan import kinds, plan
from bench.chaos.run import Processes, longest_pause
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


def ms(t: float) -> int:
    return round(f.at(t).timestamp() * 1000)


def _decided_from(event, cause=None, t: float = 9):
    """A balancer decision as the inbox decider makes it: caused by the record it read, at that record's time."""
    return make_event(event.body, producer="balancer", cause=cause, occurred_at=f.at(t), event_id=event.event_id)


def test_a_task_assigned_again_after_the_balancer_read_its_completion_is_a_violation():
    # Given a task completed by agent a, and a verdict on a that the balancer reassigns it on
    done = f.completed("t-1", "a", t=5)
    verdict = f.load_summarized("a", t=6)  # any input the balancer reads; its id is what matters here
    again = _decided_from(f.assigned("t-1", "b", attempt=2), cause=verdict)
    events = [f.assigned("t-1", "a", t=1), done, verdict, again]

    # When the balancer read the completion first, the assignment broke the promise
    read_first = [InboxEntry(5, ms(5), done.event_id), InboxEntry(7, ms(7), verdict.event_id)]
    assert nothing_after_the_end(events, read_first).violations == ("t-1 attempt 2",)
    # and when the completion was still on its way (read after the verdict), it did not, though it is seen
    still_coming = [InboxEntry(3, ms(7), verdict.event_id), InboxEntry(5, ms(7.5), done.event_id)]
    assert nothing_after_the_end(events, still_coming).held
    assert assigned_while_the_end_was_on_its_way(events).violations == ("t-1 attempt 2",)
    assert assigned_while_the_end_was_on_its_way(events).held  # observed, not counted


def test_a_decision_from_a_tick_is_placed_by_the_tick_and_one_not_in_the_inbox_counts_against():
    done = f.completed("t-1", "a", t=5)
    on_tick = _decided_from(f.assigned("t-1", "b", attempt=2), t=9)
    events = [done, on_tick]
    assert nothing_after_the_end(events, [InboxEntry(5, ms(5), done.event_id), InboxEntry(8, ms(9), None)]).violations
    assert nothing_after_the_end(events, [InboxEntry(8, ms(9), None), InboxEntry(9, ms(9.5), done.event_id)]).held
    assert nothing_after_the_end(events, [InboxEntry(5, ms(5), done.event_id)]).violations == ("t-1 attempt 2",)
    assert nothing_after_the_end(f.lifecycle("t-2", "a"), []).held


def test_the_longest_pause_counts_the_edges_of_the_window():
    assert longest_pause([1.0, 2.0, 6.0, 7.0], start=0.5, end=8.0) == 4.0
    assert longest_pause([], start=0.0, end=3.0) == 3.0


def test_a_process_that_ended_by_itself_is_reported_with_its_last_words(tmp_path):
    processes = Processes(settings=None, directory=tmp_path)
    log = "INFO started\nTraceback (most recent call last):\n  ...\nValueError: bad\n\n"
    (tmp_path / "audit-2.log").write_text(log)
    processes.running["audit-2"] = subprocess.Popen([sys.executable, "-c", "raise SystemExit(1)"])
    processes.running["audit-2"].wait()

    assert processes.exited() == ["audit-2 (exit 1): ValueError: bad"]
