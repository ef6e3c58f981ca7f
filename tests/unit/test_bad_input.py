"""Bad input, systematically: malformed and edge-case records of every event type, and well-formed
events in any order, through each processor's decode path and decision code.

Each record is either handled or refused with an explanation that goes to the dead-letter topic;
no processor raises, and the state each one keeps stays consistent after every record.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from datetime import datetime, timezone

import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from events.catalog import EVENT_TYPES
from events.codec import EVENT_TYPE_HEADER, EventDecodeError, decode, encode, header_type
from events.envelope import Envelope
from events.errors import MisplacedEvent
from events.examples import example_event
from events.tasks import TaskAssigned, TaskCompleted, TaskFailed, TaskRouted, TaskSubmitted, TaskTimedOut
from events.topics import misplaced
from projections.batch import prepare
from projections.memory_view import InMemoryView
from services.audit.app import entry_of
from services.audit.chain import Head, check_chain, extend
from services.balancer import state as balancer_state
from services.balancer.inbox import ORIGIN_HEADER, TICK_HEADER, InboxDecider, InboxRecord, inbox_headers
from services.balancer.logic import Limits
from services.deadletter.park import H_ATTEMPT, park_on, parked_from
from services.health.logic import Policy, agent_of, decode_state, encode_state, new_state, on_event, on_tick
from services.learner.follower import LearnerFollower
from services.learner.state import LearnerFold
from services.metrics import ProcessorMetrics
from services.router.follower import LogFollower
from services.router.logic import Weights
from services.router.policies import policy
from services.router.state import RouterFold
from tests.unit.malformed import Record, malformed_records, mixed_records

# Derandomized, so that CI runs the same examples every time; sized so the whole module runs in seconds.
FAST = settings(
    max_examples=100,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)
SEQUENCES = settings(FAST, max_examples=80)


def _verdict(record) -> Envelope | EventDecodeError:
    """What every processor's shell makes of a record: the event, or why it cannot be one."""
    try:
        return decode(record.value, header_type(record.headers))
    except EventDecodeError as error:
        return error


# --- the codec: every shell's one way in -------------------------------------------------------


def _with_version(version) -> bytes:
    data = orjson.loads(encode(example_event("TaskStarted")))
    return orjson.dumps({**data, "version": version})


@FAST
@given(malformed_records())
@example(Record("task-outcomes", 0, 0, b"task-0001", _with_version(True), ((EVENT_TYPE_HEADER, b"TaskStarted"),)))
@example(Record("task-outcomes", 0, 0, b"task-0001", _with_version(1.0), ((EVENT_TYPE_HEADER, b"TaskStarted"),)))
def test_a_record_decodes_to_a_catalog_event_or_says_why_not(record):
    verdict = _verdict(record)
    if isinstance(verdict, EventDecodeError):
        assert str(verdict)
        return
    assert type(verdict.body) is EVENT_TYPES[verdict.event_type]
    assert verdict.key == verdict.body.key
    # The header's fast path accepts nothing the body alone would refuse, and reads it the same way.
    assert decode(record.value) == verdict


# --- the dead-letter path ----------------------------------------------------------------------


class RecordingTopic:
    def __init__(self) -> None:
        self.sent: list[dict] = []

    async def send(self, **record) -> None:
        self.sent.append(record)


@FAST
@given(malformed_records())
@example(Record("tasks", 1, 7, b"t1", b"{}", ((H_ATTEMPT, b"x"),)))
@example(Record("tasks", 1, 7, b"t1", b"{}", ((H_ATTEMPT, b"\xff"),)))
def test_a_parked_record_keeps_its_bytes_and_names_its_origin_and_error(record):
    error = _verdict(record) if isinstance(_verdict(record), EventDecodeError) else MisplacedEvent("misplaced")
    dead_letters = RecordingTopic()
    asyncio.run(park_on(dead_letters, record, error, "router", ProcessorMetrics("router")))

    [sent] = dead_letters.sent
    assert (sent["key"], sent["value"]) == (record.key, record.value)
    parked = parked_from(Record("dlq", 0, 0, sent["key"], sent["value"], tuple(sent["headers"])))
    assert (parked.origin_topic, parked.origin_partition, parked.origin_offset) == (
        record.topic,
        record.partition,
        record.offset,
    )
    assert parked.error_class == type(error).__name__
    assert parked.error_message == str(error)[:2000]
    assert parked.attempt >= 1 and parked.processor == "router"


# --- router: the view it folds from the log, and its decisions ---------------------------------


def _router_view_is_consistent(view: RouterFold) -> None:
    held = Counter(holding.agent_id for holding in view.holdings.values())
    assert {a: n for a, n in view.loads.items() if n} == dict(held), "loads differ from the attempts held"
    for agent_id, agent in view.state.agents.items():
        assert agent.in_flight == held.get(agent_id, 0) >= 0


@SEQUENCES
@given(mixed_records(), st.sampled_from(["orchestrator", "least_loaded"]))
def test_the_router_folds_any_log_and_decides_every_submission(records, name):
    view = RouterFold()
    follower = LogFollower(None, view, ProcessorMetrics("router"), "router")
    route = policy(name)
    for record, body in records:
        follower._apply(record)
        _router_view_is_consistent(view)
        verdict = _verdict(record)  # a broken record may still be a valid, if odd, submission
        if isinstance(verdict, Envelope) and isinstance(verdict.body, TaskSubmitted):
            body = verdict.body
            decision = route(body, view.state, Weights(), random.Random(1))
            assert decision.task_id == body.task_id
            if isinstance(decision, TaskRouted) and decision.chosen_agent_id is not None:
                chosen = view.state.agents[decision.chosen_agent_id]
                assert chosen.routable
                assert decision.chosen_agent_id in {c.agent_id for c in decision.candidates}


# --- balancer: one ordered inbox, capacity and terminal tasks ----------------------------------


def _inbox(record: Record, offset: int) -> InboxRecord:
    return InboxRecord(offset, record.timestamp, record.key, record.value, tuple(record.headers))


def _tick(offset: int, timestamp_ms: int) -> InboxRecord:
    return InboxRecord(offset, timestamp_ms, None, None, ((TICK_HEADER, b"1"),))


def _balancer_state_is_consistent(state) -> None:
    for agent_id, slot in state.slots.items():
        for task_id in slot.in_flight:
            task = state.tasks.get(task_id)
            assert task is not None and task.agent_id == agent_id, f"{agent_id} holds {task_id}, which is not its"
    for task in state.tasks.values():
        if task.agent_id is not None:
            assert task.task_id in state.slots[task.agent_id].in_flight
        assert not (task.agent_id and task.queued_at), f"{task.task_id} is both assigned and queued"
        if task.queued_at:
            able = [
                agent_id
                for agent_id, slot in state.slots.items()
                if agent_id not in task.tried
                and slot.available
                and slot.has_room(task.capability)
                and (agent_id in {c[0] for c in task.candidates} or task.requirements and slot.meets(task.requirements))
            ]
            assert not able, f"{task.task_id} waits while {able} could take it"


@SEQUENCES
@given(mixed_records(max_size=60))
def test_the_balancer_never_exceeds_capacity_and_ended_tasks_stay_ended(records):
    decider = InboxDecider(Limits(), "fuzz")
    ended: set[str] = set()
    offset = 0
    for record, body in records:
        for inbox_record in (_inbox(record, offset), _tick(offset + 1, record.timestamp)):
            offset += 1
            before = {agent_id: len(slot.in_flight) for agent_id, slot in decider.state.slots.items()}
            decided = decider.apply(inbox_record)
            if body is not None or inbox_record.is_tick:
                assert decided.error is None, f"a well-formed input failed: {decided.error!r}"
            else:
                assert decided.error is None or isinstance(decided.error, EventDecodeError)
            state = decider.state
            _balancer_state_is_consistent(state)
            for event in decided.events:
                emitted = event.body
                if isinstance(emitted, TaskAssigned):
                    slot = state.slots[emitted.agent_id]
                    assert len(slot.in_flight) <= max(slot.capacity, before.get(emitted.agent_id, 0))
                    assert emitted.task_id not in ended, f"{emitted.task_id} was assigned after it ended"
                if isinstance(emitted, TaskTimedOut) and emitted.stage == "deadline":
                    ended.add(emitted.task_id)
            if isinstance(body, TaskSubmitted):
                ended.discard(body.task_id)  # submitted anew: a new task under an old id
    # A restart rebuilds the same state from the snapshot.
    restored = InboxDecider(Limits(), "fuzz")
    restored.restore(decider.snapshot())
    assert balancer_state.encode_state(restored.state) == balancer_state.encode_state(decider.state)


balancer_headers = st.lists(
    st.tuples(
        st.sampled_from([TICK_HEADER, ORIGIN_HEADER]),
        st.sampled_from([b"1", b"", b"x", b"\xff", b"tasks:0:999999999", b"a:b:c"]),
    ),
    max_size=2,
)


@FAST
@given(malformed_records(), balancer_headers)
@example(Record("tasks", 0, 3, b"t1", b"{}"), [(ORIGIN_HEADER, b"x")])
@example(Record("tasks", 0, 3, b"t1", b"{}"), [(ORIGIN_HEADER, b"tasks:0:999999999")])
@example(Record("tasks", 0, 3, b"t1", b"{}"), [(TICK_HEADER, b"1")])
def test_headers_only_the_balancer_may_set_do_not_survive_the_copy_into_its_inbox(record, forged):
    # A producer's `balancer.origin` would stand for where its record came from (a garbled one
    # crashed the decider, a high offset made it skip every later record of that partition), and
    # its `balancer.tick` would make it a tick.
    origin = (ORIGIN_HEADER, f"{record.topic}:{record.partition}:{record.offset}".encode())
    for headers in (
        inbox_headers((*record.headers, *forged), record.topic, record.partition, record.offset),
        [*record.headers, *forged, origin],
    ):  # as copied before: such records stay in the inbox
        copied = InboxRecord(0, record.timestamp, record.key, record.value, tuple(headers))
        assert copied.origin() == (record.topic, record.partition, record.offset)
        assert not copied.is_tick
        decider = InboxDecider(Limits(), "fuzz")
        decided = decider.apply(copied)
        assert decided.error is None or isinstance(decided.error, EventDecodeError)
        assert decider.forwarded == {f"{record.topic}:{record.partition}": record.offset}


# --- health monitor ----------------------------------------------------------------------------


@SEQUENCES
@given(mixed_records())
def test_the_health_monitor_keeps_a_readable_state_whatever_it_reads(records):
    policy_ = Policy()
    table: dict[str, bytes] = {}
    for record, body in records:
        now = datetime.fromtimestamp(record.timestamp / 1000, timezone.utc)
        verdict = _verdict(record)
        if isinstance(verdict, EventDecodeError):
            assert body is None
            continue
        if misplaced(verdict.event_type, record.topic):
            continue  # parked by the shell
        agent_id = agent_of(verdict.body)
        if agent_id is None:
            continue
        state = decode_state(table[agent_id]) if agent_id in table else new_state(agent_id)
        step = on_event(state, verdict, now=now, policy=policy_)
        for stored in (step.state, on_tick(step.state, now=now, policy=policy_).state):
            if stored is not None:
                assert decode_state(encode_state(stored)) == stored
                table[agent_id] = encode_state(stored)
        stored = decode_state(table[agent_id])
        for change in on_tick(stored, now=now + policy_.heartbeat_interval * 5, policy=policy_).emitted:
            if change.event_type == "AgentHealthChanged":
                assert change.previous == stored.health != change.current


# --- learner -----------------------------------------------------------------------------------


class _Marks:
    async def read(self):
        return {}


@settings(SEQUENCES, suppress_health_check=[*SEQUENCES.suppress_health_check, HealthCheck.function_scoped_fixture])
@given(records=mixed_records())
def test_the_learner_learns_from_what_it_can_read_and_passes_over_the_rest(caplog, records):
    view = LearnerFold(publish_every=3)
    follower = LearnerFollower(None, view, ProcessorMetrics("learner"), "learner", marks=_Marks())
    for record, body in records:
        envelope, emitted = follower._apply(record)
        if body is not None:
            assert envelope is not None and envelope.body == body
        assert all(e.event_type in EVENT_TYPES for e in emitted)
    for estimate in view.snapshot():
        if estimate.event_type == "SkillEstimated":
            assert 0.0 <= estimate.proficiency <= 1.0 and estimate.successes <= estimate.attempts
    assert "could not learn" not in caplog.text, "a well-formed event made the learner raise"


# --- audit: every record is chained, readable or not ------------------------------------------


@FAST
@given(st.lists(malformed_records(), min_size=1, max_size=5))
def test_the_audit_chain_takes_every_record_and_verifies(records):
    records = [
        Record(r.topic, r.partition, offset, r.key, r.value, r.headers, r.timestamp) for offset, r in enumerate(records)
    ]
    rows, head = extend(Head(), [entry_of(r) for r in records])
    assert head.seq == len(records)
    check = check_chain(rows)
    assert check.problem is None and check.rows == len(records)


# --- projector (pure part; the PostgreSQL one is in tests/integration) -------------------------


def _submission_named(header: bytes) -> Record:
    submitted = example_event("TaskSubmitted")
    return Record("tasks", 0, 0, submitted.key.encode(), encode(submitted), ((EVENT_TYPE_HEADER, header),))


@FAST
@given(malformed_records())
@example(_submission_named(b"TaskRouted"))
@example(_submission_named(b"NoSuchEvent"))
@example(_submission_named(b"Task\xffSubmitted"))
def test_the_projector_projects_exactly_what_the_deciding_processors_read(record):
    # A submission whose header names another type is passed over unread by the router and the
    # balancer: projected, it would show a task that waits forever for a routing that never comes.
    verdict = _verdict(record)
    readable = not isinstance(verdict, EventDecodeError) and not misplaced(verdict.event_type, record.topic)
    prepared = prepare([record])
    assert len(prepared.batch) == readable and len(prepared.rejected) == (not readable)


TERMINAL_STATUSES = {"completed", "expired", "failed"}


@SEQUENCES
@given(mixed_records())
def test_the_projector_parks_what_it_cannot_use_and_keeps_final_states_final(records):
    view = InMemoryView()
    final: dict[str, dict] = {}
    for record, body in records:
        before = {table: [dict(row) for row in view.rows(table)] for table in view.tables}
        prepared = prepare([record])
        if prepared.rejected:
            [(rejected, error)] = prepared.rejected
            assert rejected is record and str(error)
            assert body is None or misplaced(body.event_type, record.topic)
            asyncio.run(view.apply([(_position(record), [])]))
            assert {table: view.rows(table) for table in view.tables} == before, "a rejected record changed rows"
            continue
        asyncio.run(view.apply(prepared.batch))
        for row in view.rows("tasks"):
            task_id = row["task_id"]
            if task_id in final:
                # A late outcome may still say how it ended (completed after it expired), never reopen it.
                assert row["status_terminal"] and row["status"] in final[task_id], f"{task_id} left a final state"
            elif row.get("status_terminal"):
                final[task_id] = TERMINAL_STATUSES


def _position(record):
    from projections.batch import position_of

    return position_of(record)


@pytest.mark.parametrize(
    "outcome",
    [
        TaskCompleted(task_id="t1", agent_id="a1", attempt=1, success=True),
        TaskFailed(task_id="t1", agent_id="a1", attempt=1, error="no", retryable=False),
    ],
)
def test_a_final_task_is_not_reopened_by_a_later_routing(outcome):
    from tests.unit.malformed import envelope_of, record_of

    view = InMemoryView()
    routed = TaskRouted(task_id="t1", candidates=(), chosen_agent_id=None, model_version="m", policy="p", reason="r")
    for offset, body in enumerate([outcome, routed]):
        asyncio.run(view.apply(prepare([record_of(envelope_of(body), offset)]).batch))
    [row] = view.rows("tasks")
    assert row["status"] == ("completed" if isinstance(outcome, TaskCompleted) else "failed")
