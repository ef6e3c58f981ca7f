import re
from datetime import datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from events.envelope import UUID_PATTERN, Envelope, make_event
from events.examples import example_body, example_event
from events.tasks import TaskAssigned, TaskStarted


def test_make_event_takes_type_version_and_key_from_the_body():
    body = example_body("TaskAssigned")

    event = make_event(body, producer="balancer")

    assert (event.event_type, event.version, event.key) == ("TaskAssigned", 2, body.agent_id)
    assert event.body is body
    assert isinstance(event, Envelope)


def test_make_event_stamps_a_fresh_uuid_and_the_current_utc_time():
    before = datetime.now(timezone.utc)

    first, second = (make_event(example_body("TaskStarted"), producer="agent:coder-1") for _ in range(2))

    assert re.fullmatch(UUID_PATTERN, first.event_id)
    assert first.event_id != second.event_id
    assert first.occurred_at.tzinfo == timezone.utc
    assert before <= first.occurred_at <= datetime.now(timezone.utc)
    assert first.correlation_id is first.causation_id is None


def test_an_event_caused_by_a_root_event_is_correlated_to_it():
    cause = make_event(example_body("TaskSubmitted"), producer="client:cli")

    effect = make_event(example_body("TaskRouted"), producer="router", cause=cause)

    assert effect.causation_id == cause.event_id
    assert effect.correlation_id == cause.event_id


def test_the_correlation_id_is_carried_down_the_chain():
    cause = example_event("TaskRouted")

    effect = make_event(example_body("TaskAssigned"), producer="balancer", cause=cause)

    assert effect.causation_id == cause.event_id
    assert effect.correlation_id == cause.correlation_id


def test_occurred_at_is_normalized_to_utc():
    in_paris = datetime(2025, 1, 15, 10, 30, tzinfo=timezone(timedelta(hours=1)))

    event = make_event(example_body("TaskStarted"), producer="agent:coder-1", occurred_at=in_paris)

    assert event.occurred_at == in_paris
    assert event.occurred_at.utcoffset() == timedelta(0)


def test_a_naive_occurred_at_is_refused():
    with pytest.raises(ValidationError, match="timezone"):
        make_event(example_body("TaskStarted"), producer="agent:coder-1", occurred_at=datetime(2025, 1, 15))


def test_an_envelope_must_agree_with_its_body():
    fields = example_event("TaskStarted").model_dump()

    with pytest.raises(ValidationError, match="envelope says TaskStarted v2 but the body is TaskStarted v1"):
        Envelope[TaskStarted].model_validate({**fields, "version": 2})
    with pytest.raises(ValidationError, match="differs from body.task_id"):
        Envelope[TaskStarted].model_validate({**fields, "key": "task-9999"})


def test_events_are_immutable():
    event = example_event("TaskAssigned")

    with pytest.raises(ValidationError):
        event.key = "someone-else"
    with pytest.raises(ValidationError):
        event.body.attempt = 2
    assert isinstance(event.body, TaskAssigned)
