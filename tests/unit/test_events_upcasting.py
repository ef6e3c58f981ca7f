import pytest

from events.catalog import EVENT_TYPES
from events.codec import InvalidEvent, UnsupportedVersion, decode, encode
from events.tasks import TaskSubmitted
from events.upcasters import UPCASTERS
from events.values import CapabilityRequirement

TASK_SUBMITTED_V1 = b"""{
  "event_id": "0b9e5c36-2f0d-4d8e-9a51-7c7f3f2b4a10",
  "event_type": "TaskSubmitted",
  "version": 1,
  "occurred_at": "2024-06-01T12:00:00Z",
  "producer": "client:legacy-cli",
  "key": "task-legacy-1",
  "body": {
    "task_id": "task-legacy-1",
    "required_capability": "summarize",
    "priority": 2,
    "submitter": "client:legacy-cli",
    "payload": {"text": "a long report"}
  }
}"""


def test_a_version_1_task_submission_reads_as_today_s_model():
    event = decode(TASK_SUBMITTED_V1)

    assert event.version == TaskSubmitted.version == 2
    assert isinstance(event.body, TaskSubmitted)
    assert event.body.requirements == (CapabilityRequirement(name="summarize", min_proficiency=0.0),)
    assert event.body.priority == 2
    assert event.body.payload == {"text": "a long report"}


def test_an_upcast_event_is_written_back_at_the_current_version():
    assert b'"version":2' in encode(decode(TASK_SUBMITTED_V1))


def test_an_old_event_that_cannot_be_upcast_is_invalid():
    raw = TASK_SUBMITTED_V1.replace(b'"required_capability": "summarize",', b"")

    with pytest.raises(InvalidEvent, match="could not be upcast from v1: KeyError 'required_capability'"):
        decode(raw)


def test_a_version_without_an_upcaster_is_unsupported():
    raw = TASK_SUBMITTED_V1.replace(b'"version": 1', b'"version": 0')

    with pytest.raises(UnsupportedVersion, match="no upcaster from v0 to v1"):
        decode(raw)


@pytest.mark.parametrize("event_type", sorted(EVENT_TYPES))
def test_every_old_version_has_a_path_to_the_current_one(event_type):
    current = EVENT_TYPES[event_type].version

    assert all((event_type, version) in UPCASTERS for version in range(1, current))


def test_a_version_1_assignment_reads_with_its_propensity_unknown():
    raw = b"""{"event_id": "1c9e5c36-2f0d-4d8e-9a51-7c7f3f2b4a11", "event_type": "TaskAssigned", "version": 1,
      "occurred_at": "2026-11-01T12:00:00Z", "producer": "balancer", "key": "agent-1",
      "body": {"agent_id": "agent-1", "task_id": "task-1", "attempt": 1, "capability": "python"}}"""

    event = decode(raw)

    assert event.version == 2
    assert event.body.agent_id == "agent-1"
    assert event.body.propensity is None
