import math

import orjson
import pytest

from events.catalog import EVENT_TYPES
from events.codec import (
    EVENT_TYPE_HEADER,
    EventDecodeError,
    InvalidEvent,
    MalformedEvent,
    UnknownEventType,
    UnsupportedVersion,
    decode,
    encode,
    header_type,
    type_header,
    wanted,
)
from events.examples import example_event


def wire_message(example_type: str, body_changes: dict | None = None, **envelope_changes) -> dict:
    message = orjson.loads(encode(example_event(example_type)))
    message["body"].update(body_changes or {})
    message.update(envelope_changes)
    return message


@pytest.mark.parametrize("event_type", sorted(EVENT_TYPES))
def test_every_event_type_survives_a_round_trip(event_type):
    event = example_event(event_type)

    raw = encode(event)

    assert decode(raw) == event
    assert encode(decode(raw)) == raw
    assert type(decode(raw).body) is EVENT_TYPES[event_type]


def test_decode_accepts_text_and_parsed_objects():
    raw = encode(example_event("TaskSubmitted"))

    assert decode(raw.decode()) == decode(raw) == decode(orjson.loads(raw))


def test_encoding_is_deterministic_with_utc_timestamps():
    raw = encode(example_event("TaskSubmitted"))
    keys = list(orjson.loads(raw))

    assert keys == sorted(keys)
    assert b'"occurred_at":"2025-01-15T09:30:00Z"' in raw


def test_offset_timestamps_are_normalized_to_utc():
    message = wire_message("TaskStarted", occurred_at="2025-01-15T11:30:00+02:00")

    assert decode(message).occurred_at.isoformat() == "2025-01-15T09:30:00+00:00"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "expected a JSON object, got list"),
        (b'"TaskSubmitted"', "expected a JSON object, got str"),
        (b'{"version": 1}', "no string 'event_type'"),
        (b'{"event_type": "TaskStarted", "version": "1"}', "TaskStarted event has no integer 'version'"),
        (b'{"event_type": "TaskStarted", "version": true}', "no integer 'version'"),
    ],
)
def test_malformed_messages_are_rejected(raw, expected):
    with pytest.raises(MalformedEvent, match=expected):
        decode(raw)


def test_unknown_event_types_are_named():
    with pytest.raises(UnknownEventType, match="'TaskTeleported'") as caught:
        decode(wire_message("TaskStarted", event_type="TaskTeleported"))

    assert caught.value.event_type == "TaskTeleported"


def test_versions_from_the_future_are_refused():
    with pytest.raises(UnsupportedVersion, match="TaskStarted v2 is newer than v1") as caught:
        decode(wire_message("TaskStarted", version=2))

    assert (caught.value.event_type, caught.value.version) == ("TaskStarted", 2)


def test_a_missing_body_field_is_named():
    message = wire_message("TaskFailed")
    del message["body"]["error"]

    with pytest.raises(InvalidEvent, match=r"TaskFailed v1 is invalid: body\.error: Field required"):
        decode(message)


def test_an_extra_field_is_named():
    with pytest.raises(InvalidEvent, match=r"body\.colour: Extra inputs are not permitted"):
        decode(wire_message("TaskStarted", {"colour": "blue"}))


def test_an_extra_envelope_field_is_named():
    with pytest.raises(InvalidEvent, match=r"^TaskStarted v1 is invalid: partition: Extra inputs"):
        decode(wire_message("TaskStarted", partition=3))


def test_a_naive_timestamp_is_refused():
    with pytest.raises(InvalidEvent, match=r"occurred_at: .*timezone"):
        decode(wire_message("TaskStarted", occurred_at="2025-01-15T09:30:00"))


def test_a_proficiency_above_one_is_refused_and_shown():
    message = wire_message("AgentRegistered")
    message["body"]["capabilities"][0]["proficiency"] = 1.5

    with pytest.raises(InvalidEvent, match=r"body\.capabilities\.0\.proficiency: .*less than or equal to 1") as caught:
        decode(message)

    assert "(got 1.5)" in str(caught.value)


def test_duplicate_capabilities_are_refused():
    message = wire_message("AgentRegistered")
    message["body"]["capabilities"].append({"name": "python", "proficiency": 0.1})

    with pytest.raises(InvalidEvent, match="duplicate names: python"):
        decode(message)


def test_a_key_that_disagrees_with_the_body_is_refused():
    with pytest.raises(InvalidEvent, match="key 'other' differs from body.agent_id 'coder-1'"):
        decode(wire_message("TaskAssigned", key="other"))


def test_not_a_number_is_refused():
    with pytest.raises(InvalidEvent, match=r"body\.duration_ms"):
        decode(wire_message("TaskCompleted", {"duration_ms": math.nan}))


def test_many_errors_are_summarized():
    message = wire_message("TaskSubmitted")
    message["body"] = {f"unexpected_{i}": i for i in range(8)}

    with pytest.raises(InvalidEvent, match=r"and \d+ more$"):
        decode(message)


@pytest.mark.parametrize("error", [MalformedEvent, UnknownEventType, UnsupportedVersion, InvalidEvent])
def test_every_decode_error_is_one_family(error):
    assert issubclass(error, EventDecodeError)


# --- the event type in a record header ------------------------------------------------


@pytest.mark.parametrize("event_type", sorted(EVENT_TYPES))
def test_an_event_read_with_its_type_header_equals_the_event_read_without(event_type):
    event = example_event(event_type)
    name, value = type_header(event)

    assert (name, value) == (EVENT_TYPE_HEADER, event_type.encode())
    assert decode(encode(event), header_type([(name, value)])) == decode(encode(event)) == event


def test_a_header_that_names_another_type_makes_the_record_invalid():
    raw = encode(example_event("TaskCompleted"))

    with pytest.raises(InvalidEvent, match="header says TaskFailed but it holds TaskCompleted"):
        decode(raw, "TaskFailed")


def test_an_invalid_event_with_its_header_gets_the_same_explanation_as_without():
    raw = orjson.dumps(wire_message("TaskSubmitted", {"priority": 99}))

    with pytest.raises(InvalidEvent) as without:
        decode(raw)
    with pytest.raises(InvalidEvent) as with_header:
        decode(raw, "TaskSubmitted")

    assert str(with_header.value) == str(without.value)


def test_an_older_version_with_its_header_is_upcast_as_without():
    message = wire_message("TaskSubmitted")
    raw = orjson.dumps(
        {
            **message,
            "version": 1,
            "body": {"task_id": message["key"], "required_capability": "python", "submitter": "me"},
        }
    )

    assert decode(raw, "TaskSubmitted") == decode(raw)
    assert decode(raw, "TaskSubmitted").body.requirements[0].name == "python"


def test_an_unknown_type_in_the_header_is_read_from_the_record():
    raw = encode(example_event("TaskSubmitted"))

    with pytest.raises(InvalidEvent, match="header says NoSuchEvent"):
        decode(raw, "NoSuchEvent")


@pytest.mark.parametrize(
    "headers, expected",
    [
        (None, None),
        ((), None),
        ([("other", b"x")], None),
        ([("other", b"x"), (EVENT_TYPE_HEADER, b"TaskStarted")], "TaskStarted"),
        ({EVENT_TYPE_HEADER: b"TaskStarted"}, "TaskStarted"),  # Faust hands headers as a mapping
    ],
)
def test_the_type_is_found_in_either_form_of_headers(headers, expected):
    assert header_type(headers) == expected


def test_only_a_record_whose_header_names_another_type_is_unwanted():
    wanted_types = frozenset({"TaskCompleted"})

    assert wanted([(EVENT_TYPE_HEADER, b"TaskCompleted")], wanted_types)
    assert not wanted([(EVENT_TYPE_HEADER, b"TaskStarted")], wanted_types)
    assert wanted([], wanted_types), "a record without the header is read, as from any older producer"
