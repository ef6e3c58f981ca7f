"""Hypothesis strategies for records as a processor meets them on Kafka: well-formed events of a
small fleet in any order, and malformed records of every event type in the catalog.

A malformed record starts from the catalog's example of its type and breaks one thing: a field
missing, of the wrong type or huge; an unknown version or type; a key that is not the body's; bytes
that are not UTF-8 or not JSON; a type header that is missing, wrong or unreadable.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import orjson
from hypothesis import strategies as st

from events.agents import (
    AgentCapabilitiesChanged,
    AgentDeregistered,
    AgentHealthChanged,
    AgentHeartbeat,
    AgentRegistered,
)
from events.catalog import EVENT_TYPES, body_class
from events.codec import EVENT_TYPE_HEADER, encode, type_header
from events.envelope import Envelope, EventBody, make_event
from events.examples import example_event
from events.tasks import (
    TaskAssigned,
    TaskCompleted,
    TaskFailed,
    TaskHandedOff,
    TaskReassigned,
    TaskRejected,
    TaskRouted,
    TaskStarted,
    TaskSubmitted,
    TaskTimedOut,
)
from events.topics import EVENT_TOPICS, topic_for_event
from events.values import Candidate, Capability, CapabilityRequirement
from services.deadletter.park import H_ATTEMPT

START = datetime(2026, 1, 5, 9, 0, tzinfo=timezone.utc)
START_MS = int(START.timestamp() * 1000)
AGENTS = ("a1", "a2", "a3")
TASKS = ("t1", "t2", "t3", "t4")
SKILLS = ("python", "review")
EVENT_TYPE_NAMES = tuple(sorted(EVENT_TYPES))
TOPICS = tuple(spec.name for spec in EVENT_TOPICS)
HUGE = 1_100_000  # past a Kafka record's default 1 MB limit


@dataclass(frozen=True)
class Record:
    """A consumed Kafka record, as aiokafka hands it over (Faust's messages have the same fields)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple = ()
    timestamp: int = START_MS


def record_of(envelope: Envelope, offset: int = 0, *, topic: str | None = None, timestamp: int = START_MS) -> Record:
    """The record a well-behaved producer writes for `envelope`, on the topic the catalog gives it."""
    return Record(
        topic or topic_for_event(envelope.event_type).name,
        0,
        offset,
        envelope.key.encode(),
        encode(envelope),
        (type_header(envelope),),
        timestamp,
    )


# --- malformed records ---------------------------------------------------------------------

json_ints = st.integers(min_value=-(2**63), max_value=2**64 - 1)  # what orjson writes; more in `odd_json`
odd_values = st.one_of(
    st.none(),
    st.booleans(),
    json_ints,
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
    st.lists(json_ints, max_size=3),
    st.dictionaries(st.text(max_size=5), json_ints, max_size=3),
    st.sampled_from(["", " ", "\x00", "-1", "1e309", "NaN", "2026-13-45T99:00:00Z", "not-a-uuid", "../../etc"]),
)
# JSON that orjson writes but no event field accepts: numbers beyond 64 bits, non-finite floats as text
odd_json = st.sampled_from([b"1e400", b"-1e400", b"123456789012345678901234567890", b"-0", b"NaN", b"Infinity"])


def _example_dict(event_type: str) -> dict:
    return orjson.loads(encode(example_event(event_type)))


@st.composite
def broken_event(draw, event_type: str | None = None) -> tuple[str, dict | list | str | int | None]:
    """(type, JSON value): an example event of the type with one thing broken."""
    event_type = event_type or draw(st.sampled_from(EVENT_TYPE_NAMES))
    data = _example_dict(event_type)
    body = data["body"]
    how = draw(
        st.sampled_from(
            [
                "drop body field",
                "drop envelope field",
                "odd body value",
                "odd envelope value",
                "extra body field",
                "extra envelope field",
                "huge string",
                "huge list",
                "newer version",
                "older version",
                "odd version",
                "wrong key",
                "unknown type",
                "other type",
                "body not an object",
                "not an object",
            ]
        )
    )
    if how == "drop body field" and body:
        del body[draw(st.sampled_from(sorted(body)))]
    elif how == "drop envelope field":
        del data[draw(st.sampled_from(sorted(data)))]
    elif how == "odd body value" and body:
        body[draw(st.sampled_from(sorted(body)))] = draw(odd_values)
    elif how == "odd envelope value":
        data[draw(st.sampled_from(sorted(data)))] = draw(odd_values)
    elif how == "extra body field":
        body[draw(st.sampled_from(["unexpected", "__class__", "", "task_id ", "AGENT_ID"]))] = draw(odd_values)
    elif how == "extra envelope field":
        data[draw(st.sampled_from(["unexpected", "signature", "Body"]))] = draw(odd_values)
    elif how == "huge string":
        strings = sorted(k for k, v in body.items() if isinstance(v, str)) or ["unexpected"]
        body[draw(st.sampled_from(strings))] = "x" * draw(st.sampled_from([5000, HUGE]))
    elif how == "huge list":
        body[draw(st.sampled_from(sorted(body) or ["unexpected"]))] = [{"name": "python"}] * 50_000
    elif how == "newer version":
        data["version"] = body_class(event_type).version + draw(st.integers(min_value=1, max_value=2**40))
    elif how == "older version":
        data["version"] = draw(st.integers(min_value=-5, max_value=body_class(event_type).version - 1))
    elif how == "odd version":
        data["version"] = draw(st.one_of(st.booleans(), st.floats(), st.text(max_size=3), st.none()))
    elif how == "wrong key":
        data["key"] = draw(st.one_of(st.sampled_from(["someone-else", "", "-x", "a" * 200]), st.text(max_size=10)))
    elif how == "unknown type":
        data["event_type"] = draw(st.sampled_from(["TaskExploded", "taskcompleted", "TaskCompleted ", ""]))
    elif how == "other type":
        data["event_type"] = draw(st.sampled_from(EVENT_TYPE_NAMES))
    elif how == "body not an object":
        data["body"] = draw(st.one_of(st.none(), st.text(max_size=5), st.lists(json_ints, max_size=2)))
    elif how == "not an object":
        return event_type, draw(st.one_of(st.none(), json_ints, st.text(max_size=10), st.lists(st.none())))
    return event_type, data


@st.composite
def broken_bytes(draw, event_type: str | None = None) -> tuple[str, bytes | None]:
    """(type, bytes): a broken event, or the bytes of a valid one damaged."""
    event_type, data = draw(broken_event(event_type))
    raw = orjson.dumps(data)
    how = draw(
        st.sampled_from(
            [
                "as is",
                "as is",
                "as is",
                "invalid utf-8",
                "truncated",
                "garbage",
                "odd number",
                "deep nesting",
                "tombstone",
                "empty",
            ]
        )
    )
    if how == "invalid utf-8":
        at = draw(st.integers(min_value=0, max_value=len(raw)))
        raw = raw[:at] + draw(st.sampled_from([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf4\x90\x80\x80"])) + raw[at:]
    elif how == "truncated":
        raw = raw[: draw(st.integers(min_value=0, max_value=max(0, len(raw) - 1)))]
    elif how == "garbage":
        raw = draw(st.binary(max_size=64))
    elif how == "odd number" and b'"attempt":1' in raw:
        raw = raw.replace(b'"attempt":1', b'"attempt":' + draw(odd_json), 1)
    elif how == "deep nesting":
        raw = b'{"event_type":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    elif how == "tombstone":
        return event_type, None
    elif how == "empty":
        raw = b""
    return event_type, raw


@st.composite
def headers_for(draw, event_type: str) -> tuple:
    """Headers a producer might send: the right type, none, another, an unreadable one, and odd extras."""
    named = draw(st.sampled_from(["right", "right", "none", "other", "unknown", "not utf-8", "null", "twice"]))
    headers: list = []
    if named == "right":
        headers.append((EVENT_TYPE_HEADER, event_type.encode()))
    elif named == "other":
        headers.append((EVENT_TYPE_HEADER, draw(st.sampled_from(EVENT_TYPE_NAMES)).encode()))
    elif named == "unknown":
        headers.append((EVENT_TYPE_HEADER, b"NoSuchEvent"))
    elif named == "not utf-8":
        headers.append((EVENT_TYPE_HEADER, b"Task\xffSubmitted"))
    elif named == "null":
        headers.append((EVENT_TYPE_HEADER, None))
    elif named == "twice":
        headers += [(EVENT_TYPE_HEADER, b"NoSuchEvent"), (EVENT_TYPE_HEADER, event_type.encode())]
    if draw(st.booleans()):  # headers a re-injected or hostile record may carry
        headers.append((H_ATTEMPT, draw(st.sampled_from([b"1", b"2", b"x", b"", b"\xff", b"-1", b"99999999999"]))))
    return tuple(headers)


@st.composite
def malformed_records(draw, offset: int = 0, timestamp: int = START_MS) -> Record:
    """A record a processor may meet on its topics, of any catalog type, broken in some way."""
    event_type, value = draw(broken_bytes())
    topic = draw(st.one_of(st.just(topic_for_event(event_type).name), st.sampled_from(TOPICS)))
    key = draw(st.sampled_from([b"a1", b"t1", b"", None, b"\xff\xfe", b"k" * 300]))
    return Record(
        topic, draw(st.integers(min_value=0, max_value=5)), offset, key, value, draw(headers_for(event_type)), timestamp
    )


# --- well-formed events of a small fleet, in any order ----------------------------------------

agents = st.sampled_from(AGENTS)
tasks = st.sampled_from(TASKS)
skills = st.sampled_from(SKILLS)
attempts = st.integers(min_value=1, max_value=4)


@st.composite
def _registered(draw):
    declared = draw(st.lists(skills, min_size=1, max_size=2, unique=True))
    return AgentRegistered(
        agent_id=draw(agents),
        display_name="agent",
        capacity=draw(st.integers(1, 3)),
        capabilities=tuple(Capability(name=s, proficiency=draw(st.sampled_from([0.2, 0.9]))) for s in declared),
        capacity_per_capability=draw(st.sampled_from([{}, {declared[0]: 1}])),
    )


@st.composite
def _submitted(draw):
    return TaskSubmitted(
        task_id=draw(tasks),
        submitter=draw(st.sampled_from(["alice", "bob"])),
        requirements=(CapabilityRequirement(name=draw(skills), min_proficiency=draw(st.sampled_from([0.0, 0.5]))),),
        priority=draw(st.integers(0, 9)),
        deadline=draw(st.one_of(st.none(), st.just(START + timedelta(minutes=5)))),
    )


@st.composite
def _routed(draw):
    chosen = draw(st.lists(agents, min_size=0, max_size=3, unique=True))
    candidates = tuple(
        Candidate(agent_id=a, score=0.5, predicted_success=0.5, propensity=1 / len(chosen)) for a in chosen
    )
    return TaskRouted(
        task_id=draw(tasks),
        candidates=candidates,
        chosen_agent_id=chosen[0] if chosen else None,
        model_version="m1",
        policy="thompson",
        reason="fuzz",
    )


@st.composite
def _outcome(draw):
    kind = draw(st.sampled_from(["started", "completed", "failed", "rejected", "handed off"]))
    task, agent, attempt = draw(tasks), draw(agents), draw(attempts)
    if kind == "started":
        return TaskStarted(task_id=task, agent_id=agent, attempt=attempt)
    if kind == "completed":
        return TaskCompleted(
            task_id=task,
            agent_id=agent,
            attempt=attempt,
            success=draw(st.booleans()),
            duration_ms=draw(st.integers(0, 10**6)),
        )
    if kind == "failed":
        return TaskFailed(task_id=task, agent_id=agent, attempt=attempt, error="boom", retryable=draw(st.booleans()))
    if kind == "rejected":
        return TaskRejected(task_id=task, agent_id=agent, attempt=attempt, reason="busy")
    return TaskHandedOff(
        task_id=task,
        from_agent_id=agent,
        attempt=attempt,
        to_agent_id=draw(st.one_of(st.none(), agents)),
        reason="not mine",
    )


@st.composite
def _agent_change(draw):
    agent = draw(agents)
    kind = draw(st.sampled_from(["health", "deregistered", "capabilities", "heartbeat"]))
    if kind == "health":
        previous, current = draw(
            st.sampled_from(
                [("healthy", "unhealthy"), ("unhealthy", "healthy"), ("healthy", "degraded"), ("unknown", "healthy")]
            )
        )
        return AgentHealthChanged(
            agent_id=agent,
            previous=previous,
            current=current,
            reason="fuzz",
            missed_heartbeats=3,
            in_flight_task_ids=tuple(draw(st.lists(tasks, max_size=2, unique=True))),
        )
    if kind == "deregistered":
        return AgentDeregistered(agent_id=agent, reason="fuzz", drain=draw(st.booleans()))
    if kind == "capabilities":
        return AgentCapabilitiesChanged(agent_id=agent, removed=(draw(skills),), changed_by=agent, reason="fuzz")
    return AgentHeartbeat(agent_id=agent, in_flight=draw(st.integers(0, 5)), queue_depth=0)


@st.composite
def _system(draw):
    task, agent, attempt = draw(tasks), draw(agents), draw(attempts)
    kind = draw(st.sampled_from(["assigned", "timed out", "reassigned"]))
    if kind == "assigned":
        return TaskAssigned(agent_id=agent, task_id=task, attempt=attempt, capability=draw(skills))
    if kind == "timed out":
        return TaskTimedOut(
            task_id=task,
            agent_id=draw(st.one_of(st.none(), st.just(agent))),
            attempt=attempt,
            stage=draw(st.sampled_from(["start", "completion", "deadline"])),
            reason="fuzz",
        )
    return TaskReassigned(task_id=task, from_agent_id=agent, to_agent_id=draw(agents), attempt=attempt, reason="fuzz")


lifecycle_bodies = st.one_of(_registered(), _submitted(), _routed(), _outcome(), _agent_change(), _system())


def envelope_of(body: EventBody, at: datetime = START) -> Envelope:
    return make_event(body, producer="fuzz", occurred_at=at)


@st.composite
def mixed_records(draw, max_size: int = 40) -> list[tuple[Record, EventBody | None]]:
    """Records in log order, each with its body if it is well formed: lifecycle events of a small
    fleet in any order, malformed records among them, and the clock moving on (sometimes far)."""
    records, now_ms = [], START_MS
    for offset in range(draw(st.integers(min_value=1, max_value=max_size))):
        now_ms += draw(st.sampled_from([0, 1000, 30_000, 700_000]))
        if draw(st.integers(0, 4)) == 0:
            records.append((draw(malformed_records(offset, now_ms)), None))
        else:
            body = draw(lifecycle_bodies)
            at = datetime.fromtimestamp(now_ms / 1000, timezone.utc)
            records.append((record_of(envelope_of(body, at), offset, timestamp=now_ms), body))
    return records
