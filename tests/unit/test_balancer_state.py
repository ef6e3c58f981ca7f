"""The balancer's state as JSON, and deciding from the inbox so that a replay changes nothing."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

import orjson

from events.agents import AgentCapabilitiesChanged, AgentHealthChanged, AgentRegistered
from events.codec import encode
from events.envelope import make_event
from events.tasks import TaskAssigned, TaskCompleted, TaskRouted, TaskStarted, TaskSubmitted
from events.values import Candidate, Capability, CapabilityRequirement
from services.balancer.inbox import ORIGIN_HEADER, TICK_HEADER, InboxDecider, InboxRecord, OrderedDecisions
from services.balancer.logic import BalancerState, Limits, decide
from services.balancer.state import decode_state, encode_state, waits_on_time

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
LIMITS = Limits(start_timeout=timedelta(seconds=30))


def agent(agent_id, capacity=1):
    return AgentRegistered(
        agent_id=agent_id,
        display_name=agent_id,
        capacity=capacity,
        capabilities=(Capability(name="python", proficiency=0.8),),
        capacity_per_capability={"python": capacity},
    )


def submitted(task_id, **extra):
    return TaskSubmitted(
        task_id=task_id,
        submitter="client",
        payload={"prompt": task_id, "n": [1, 2.5]},
        requirements=(CapabilityRequirement(name="python", min_proficiency=0.5),),
        **extra,
    )


def routed(task_id, *ranked):
    return TaskRouted(
        task_id=task_id,
        chosen_agent_id=ranked[0],
        policy="test",
        reason="test",
        candidates=tuple(
            Candidate(
                agent_id=a, score=1.0, predicted_success=0.7, propensity=0.5, features={"expected_duration_s": 2.0}
            )
            for a in ranked
        ),
    )


def record(offset, body=None, *, seconds=None, key=b"k", origin=None):
    """An inbox record: an event as forwarded (from `origin`, "topic:partition:offset"), or a tick."""
    stamp = int((T0 + timedelta(seconds=offset if seconds is None else seconds)).timestamp() * 1000)
    if body is None:
        return InboxRecord(offset, stamp, None, b"", ((TICK_HEADER, b"1"),))
    headers = ((ORIGIN_HEADER, origin.encode()),) if origin else ()
    return InboxRecord(offset, stamp, key, encode(make_event(body, producer="test", occurred_at=T0)), headers)


def busy_state() -> BalancerState:
    state, now = BalancerState(), T0
    events = [
        agent("a1", capacity=2),
        agent("a2"),
        submitted("t1", deadline=T0 + timedelta(hours=1)),
        routed("t1", "a1", "a2"),
        submitted("t2"),
        routed("t2", "a1"),
        TaskStarted(task_id="t2", agent_id="a1", attempt=1),
        submitted("t3", priority=1),
        routed("t3", "a1"),
        submitted("t4"),
        routed("t4", "a2"),
        AgentHealthChanged(agent_id="a2", previous="healthy", current="unhealthy", in_flight_task_ids=("t4",)),
    ]
    for event in events:
        now += timedelta(seconds=1)
        decide(state, event, now, LIMITS)
    return state


# --- the state as JSON --------------------------------------------------------------


def test_the_state_survives_a_round_trip_through_json_unchanged():
    state = busy_state()
    assert state.tasks["t3"].queued_at and state.slots["a1"].in_flight and not state.slots["a2"].available
    restored = decode_state(orjson.loads(orjson.dumps(encode_state(state))))
    assert restored == state
    assert list(restored.tasks) == list(state.tasks) and list(restored.slots) == list(state.slots)


def test_a_restored_state_decides_exactly_as_the_original():
    original = busy_state()
    restored = decode_state(orjson.loads(orjson.dumps(encode_state(original))))
    done = TaskCompleted(task_id="t1", agent_id="a1", attempt=1)
    later = T0 + timedelta(minutes=1)
    assert decide(restored, done, later, LIMITS) == decide(original, done, later, LIMITS) != []
    assert restored == original


def test_only_tasks_with_an_agent_or_queued_with_a_deadline_wait_on_time():
    state = BalancerState()
    assert not waits_on_time(state)
    decide(state, agent("a1"), T0, LIMITS)
    decide(state, submitted("t1"), T0, LIMITS)
    assert not waits_on_time(state)
    decide(state, routed("t1", "a1"), T0, LIMITS)
    assert waits_on_time(state)


def test_a_started_task_waits_on_time_for_its_completion_deadline():
    state = BalancerState()
    for event in (
        agent("a1"),
        submitted("t1"),
        routed("t1", "a1"),
        TaskStarted(task_id="t1", agent_id="a1", attempt=1),
    ):
        decide(state, event, T0, LIMITS)
    assert waits_on_time(state)
    decide(state, TaskCompleted(task_id="t1", agent_id="a1", attempt=1), T0, LIMITS)
    assert not waits_on_time(state)


def test_what_the_fallback_and_the_completion_deadline_need_survives_a_snapshot():
    state = busy_state()
    restored = decode_state(orjson.loads(orjson.dumps(encode_state(state))))
    assert restored.slots["a1"].capabilities == {"python": 0.8}
    assert restored.tasks["t2"].started_at == T0 + timedelta(seconds=7)
    assert restored.tasks["t3"].requirements == (("python", 0.5),)
    assert restored.open_by_capability == state.open_by_capability


# A version 1 snapshot: one agent holding a started task, another task waiting.
SNAPSHOT_V1 = {
    "version": 1,
    "slots": [["a1", {"capacity": 1, "per_capability": {}, "in_flight": [["t1", "python"]], "available": True}]],
    "tasks": [
        {
            "task_id": "t1",
            "priority": 5,
            "submitter": "c",
            "submitted_at": "2026-01-01T00:00:00+00:00",
            "deadline": None,
            "capability": "python",
            "payload": {},
            "candidates": [["a1", 0.7, 2.0]],
            "chosen": "a1",
            "attempt": 1,
            "tried": ["a1"],
            "agent_id": "a1",
            "assigned_at": "2026-01-01T00:00:01+00:00",
            "started": True,
            "queued_at": None,
        },
        {
            "task_id": "t2",
            "priority": 5,
            "submitter": "c",
            "submitted_at": "2026-01-01T00:00:02+00:00",
            "deadline": None,
            "capability": "python",
            "payload": {},
            "candidates": [["a1", 0.7, 2.0]],
            "chosen": "a1",
            "attempt": 0,
            "tried": [],
            "agent_id": None,
            "assigned_at": None,
            "started": False,
            "queued_at": "2026-01-01T00:00:03+00:00",
        },
    ],
    "served": [["c", 1]],
}


def test_a_version_1_snapshot_is_still_read_and_keeps_deciding():
    state = decode_state(SNAPSHOT_V1)
    assert state.tasks["t1"].started_at == T0 + timedelta(seconds=1)  # its start is unknown: the assignment's time
    assert state.tasks["t2"].queued_at and "t2" in state.waiting
    # Nothing says what a version 1 task requires, so it waits for the router's candidates only.
    decide(state, agent("a2"), T0 + timedelta(seconds=4), LIMITS)
    assert decide(state, TaskCompleted(task_id="t1", agent_id="a1", attempt=1), T0 + timedelta(seconds=5), LIMITS) == [
        TaskAssigned(agent_id="a1", task_id="t2", attempt=1, capability="python")
    ]
    assert encode_state(state)["version"] == 2


def test_a_change_of_capabilities_reaches_the_decider_through_the_inbox():
    decider = InboxDecider(LIMITS, "inbox")
    for r in [
        record(0, agent("a1")),
        record(1, submitted("t1")),
        record(2, routed("t1", "a1")),
        record(
            3,
            AgentRegistered(
                agent_id="a2", display_name="a2", capacity=1, capabilities=(Capability(name="sql", proficiency=0.9),)
            ),
        ),
        record(4, submitted("t2")),
        record(5, routed("t2", "a1")),
    ]:
        decider.apply(r)
    added = AgentCapabilitiesChanged(
        agent_id="a2", changed_by="operator", added=(Capability(name="python", proficiency=0.9),)
    )
    decided = decider.apply(record(6, added)).events
    assert [e.body.agent_id for e in decided if isinstance(e.body, TaskAssigned)] == ["a2"]


# --- deciding from the inbox --------------------------------------------------------


def test_the_same_records_give_the_same_events_ids_and_times_included():
    records = [record(0, agent("a1")), record(1, submitted("t1")), record(2, routed("t1", "a1"))]
    first, second = InboxDecider(LIMITS, "inbox"), InboxDecider(LIMITS, "inbox")
    out_first = [e for r in records for e in first.apply(r).events]
    out_second = [e for r in records for e in second.apply(r).events]
    assert [encode(e) for e in out_first] == [encode(e) for e in out_second]
    [assignment] = out_first
    assert isinstance(assignment.body, TaskAssigned) and assignment.body.payload == {"prompt": "t1", "n": [1, 2.5]}
    assert (
        assignment.occurred_at == datetime.fromtimestamp(records[2].timestamp_ms / 1000, timezone.utc)
        and assignment.producer == "balancer"
    )


def test_time_comes_from_the_inbox_so_a_tick_times_out_on_replay_as_it_did_live():
    decider = InboxDecider(LIMITS, "inbox")
    for r in [
        record(0, agent("a1")),
        record(1, agent("a2")),
        record(2, submitted("t1")),
        record(3, routed("t1", "a1", "a2")),
    ]:
        decider.apply(r)
    assert decider.apply(record(4, seconds=20)).events == []
    timed_out = decider.apply(record(5, seconds=40)).events
    assert [e.event_type for e in timed_out] == ["TaskTimedOut", "TaskReassigned", "TaskAssigned"]


def test_an_input_copied_into_the_inbox_again_after_a_restart_changes_nothing():
    decider = InboxDecider(LIMITS, "inbox")
    first_copy = [
        record(0, agent("a1")),
        record(1, submitted("t1"), origin="tasks:3:10"),
        record(2, routed("t1", "a1"), origin="tasks:3:11"),
        record(3, TaskCompleted(task_id="t1", agent_id="a1", attempt=1), origin="task-outcomes:1:5"),
    ]
    assert [len(decider.apply(r).events) for r in first_copy] == [0, 0, 1, 0]
    copied_again = [record(4, submitted("t1"), origin="tasks:3:10"), record(5, routed("t1", "a1"), origin="tasks:3:11")]
    assert [decider.apply(r).events for r in copied_again] == [[], []]
    assert decider.state.tasks == {} and decider.state.slots["a1"].in_flight == {}
    assert decider.apply(record(6, submitted("t2"), origin="tasks:3:12")).events == []
    assert "t2" in decider.state.tasks
    restored = InboxDecider(LIMITS, "inbox")
    restored.restore(decider.snapshot())
    assert restored.forwarded == {"tasks:3": 12, "task-outcomes:1": 5} and restored.state == decider.state


class FakeHistory:
    def __init__(self, records: list) -> None:
        self.log = records  # shared: a test may append while deciding
        self.snapshots: list[bytes] = []
        self.read_ranges: list[tuple[int, int]] = []
        self.published: list = []  # what reached the broker, for `emitted_since`

    async def latest_snapshot(self):
        return self.snapshots[-1] if self.snapshots else None

    async def save_snapshot(self, snapshot: bytes) -> None:
        self.snapshots.append(snapshot)

    async def records(self, start: int, stop: int):
        self.read_ranges.append((start, stop))
        for r in self.log[start:stop]:
            yield r

    async def emitted_since(self, timestamp_ms: int) -> set[str]:
        return {event.event_id for event in self.published if event.occurred_at.timestamp() * 1000 >= timestamp_ms}


class Shell:
    """The decider with recording fakes for what the Faust app gives it."""

    def __init__(self, history: FakeHistory, snapshot_every: int = 1000) -> None:
        self.history = history
        self.emitted: list = []
        self.parked: list = []
        self.flushed_before_snapshot: list[int] = []
        self.decisions = OrderedDecisions(
            InboxDecider(LIMITS, "inbox"),
            history,
            emit=self.emit,
            park=self.park,
            flush=self.flush,
            snapshot_every=snapshot_every,
        )

    async def emit(self, events) -> None:
        self.emitted += events
        self.history.published += events

    async def park(self, record, error) -> None:
        self.parked.append((record.offset, type(error).__name__))

    async def flush(self) -> None:
        self.flushed_before_snapshot.append(len(self.emitted))

    async def deliver(self, records) -> list:
        for r in records:
            await self.decisions.take(r)
        return self.emitted


def inbox_log():
    bodies = [
        agent("a1", capacity=2),
        submitted("t1"),
        routed("t1", "a1"),
        submitted("t2"),
        routed("t2", "a1"),
        submitted("t3"),
        routed("t3", "a1"),
        TaskCompleted(task_id="t1", agent_id="a1", attempt=1),
        submitted("t4"),
        routed("t4", "a1"),
    ]
    return [record(n, body) for n, body in enumerate(bodies)]


async def test_a_restart_replays_what_was_decided_before_silently_and_emits_only_what_follows():
    log = inbox_log()
    reference = await Shell(FakeHistory(log)).deliver(log)
    shell = Shell(FakeHistory(log))
    emitted = await shell.deliver(log[7:])  # the group's committed offset was 7
    assert shell.history.read_ranges == [(0, 7)]
    assert [encode(e) for e in emitted] == [encode(e) for e in reference if e.causation_id in _ids(log[7:])]


async def test_a_copy_taking_over_does_not_send_again_what_its_predecessor_had_published():
    log = inbox_log()
    history = FakeHistory(log)
    first = Shell(history)
    await first.deliver(log)  # decided everything, but its commit stayed at offset 2
    second = Shell(history)
    await second.deliver(log[2:])
    assert second.emitted == [] and second.decisions.decider.state == first.decisions.decider.state
    history.published = history.published[:-1]  # the last decision never reached the broker
    third = Shell(history)
    await third.deliver(log[2:])
    assert third.emitted == first.emitted[-1:]


async def test_given_the_inbox_back_a_copy_catches_up_with_what_another_decided_meanwhile():
    log = inbox_log()
    history = FakeHistory(log)
    other = Shell(history)
    await other.deliver(log)  # owned the inbox for a while, committed up to offset 7
    back = Shell(history)
    await back.deliver(log[:4])
    before = len(back.emitted)
    await back.deliver(log[7:])
    assert history.read_ranges == [(4, 7)]
    assert back.emitted[before:] == [] and back.decisions.decider.state == other.decisions.decider.state


async def test_records_at_or_below_a_snapshot_are_not_decided_again():
    log = inbox_log()
    history = FakeHistory(log)
    first = Shell(history, snapshot_every=4)
    await first.deliver(log[:6])
    # written at offset 3, once what was decided up to there had been flushed to the broker
    assert len(history.snapshots) == 1 and orjson.loads(history.snapshots[0])["offset"] == 3
    assert first.flushed_before_snapshot == [sum(e.causation_id in _ids(log[:4]) for e in first.emitted)]
    restarted = Shell(history, snapshot_every=4)
    emitted = await restarted.deliver(log[2:])  # the commit lagged behind the snapshot
    assert history.read_ranges == []
    assert restarted.decisions.decider.state == (await _decided(log)).state
    assert {e.causation_id for e in emitted} <= _ids(log[4:])


async def test_a_record_delivered_again_in_the_same_process_is_skipped():
    log = inbox_log()
    shell = Shell(FakeHistory(log))
    await shell.deliver(log[:5])
    before = list(shell.emitted)
    await shell.deliver(log[3:5])
    assert shell.emitted == before


async def test_an_input_that_cannot_be_decided_is_parked_and_the_inbox_moves_on():
    log = inbox_log()[:3] + [InboxRecord(3, 0, b"k", b"{not json")] + [record(4, submitted("t9"))]
    shell = Shell(FakeHistory(log))
    await shell.deliver(log)
    assert shell.parked == [(3, "MalformedEvent")]
    assert "t9" in shell.decisions.decider.state.tasks


async def test_crashes_at_random_points_never_assign_beyond_capacity_nor_differently_twice():
    rng = random.Random(11)
    agents = {f"a{i}": rng.randint(1, 3) for i in range(3)}
    log = [record(n, agent(a, capacity)) for n, (a, capacity) in enumerate(agents.items())]
    history = FakeHistory(log)
    shell, seen, committed, delivered = Shell(history, snapshot_every=25), 0, 0, 0
    versions: dict[tuple[str, int], set[bytes]] = {}  # (task, attempt) -> every TaskAssigned emitted for it
    held: dict[str, set[str]] = {a: set() for a in agents}  # what each agent was given and has not finished
    submitted_tasks, completed_tasks = 0, []

    def append(body) -> None:
        log.append(record(len(log), body))

    for step in range(700):
        roll = rng.random()
        if roll < 0.35 and submitted_tasks < 150:
            append(submitted(f"t{submitted_tasks}"))
            append(routed(f"t{submitted_tasks}", *rng.sample(sorted(agents), 2)))
            submitted_tasks += 1
        elif roll < 0.85 and (busy := sorted((a, t) for a, tasks in held.items() for t in tasks)):
            agent_id, task_id = rng.choice(busy)
            held[agent_id].discard(task_id)
            completed_tasks.append(task_id)
            attempt = max(n for (t, n) in versions if t == task_id)
            append(TaskCompleted(task_id=task_id, agent_id=agent_id, attempt=attempt))
        elif roll >= 0.85:  # the balancer dies; a new one resumes from the committed offset
            shell, seen, delivered = Shell(history, snapshot_every=25), 0, committed
        while delivered < len(log):
            await shell.decisions.take(log[delivered])
            delivered += 1
            for event in shell.emitted[seen:]:
                if isinstance(event.body, TaskAssigned):
                    key = (event.body.task_id, event.body.attempt)
                    if key not in versions:
                        held[event.body.agent_id].add(event.body.task_id)
                        assert len(held[event.body.agent_id]) <= agents[event.body.agent_id]
                    versions.setdefault(key, set()).add(encode(event))
            seen = len(shell.emitted)
        committed = rng.randint(committed, delivered)  # the commit lags what was decided

    assert all(len(emitted) == 1 for emitted in versions.values())  # redelivered at most, never re-decided
    assert len(completed_tasks) == len(set(completed_tasks)) > 100
    assert len(versions) >= len(completed_tasks)


async def _decided(log) -> InboxDecider:
    decider = InboxDecider(LIMITS, "inbox")
    for r in log:
        decider.apply(r)
    return decider


def _ids(records) -> set[str]:
    return {orjson.loads(r.value)["event_id"] for r in records if r.value}


def test_time_never_goes_back_in_the_inbox_order_and_survives_a_snapshot():
    # Given two copies' forwarders: a completion copied late, after a routing another copy stamped earlier
    decider = InboxDecider(Limits(), "inbox")
    for offset, body in enumerate([agent("a", capacity=1), submitted("t-1"), routed("t-1", "a")]):
        decider.apply(record(offset, body, seconds=offset))
    decider.apply(record(3, TaskStarted(task_id="t-1", agent_id="a", attempt=1), seconds=3))
    done = TaskCompleted(task_id="t-1", agent_id="a", attempt=1, success=True, duration_ms=1.0)
    decider.apply(record(4, done, seconds=10))
    decider.apply(record(5, submitted("t-2"), seconds=5))

    # When the routing stamped at 6 s arrives after the completion stamped at 10 s
    snapshot = decider.snapshot()
    late = record(6, routed("t-2", "a"), seconds=6)
    events = decider.apply(late).events

    # Then the assignment it makes is stamped no earlier than the completion that made room for it
    assert [type(e.body) for e in events] == [TaskAssigned]
    assert events[0].occurred_at == T0 + timedelta(seconds=10)
    # and a copy restored from the snapshot decides at the same time
    restored = InboxDecider(Limits(), "inbox")
    restored.restore(snapshot)
    assert restored.apply(late).events == events
