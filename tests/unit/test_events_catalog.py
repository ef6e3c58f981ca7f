from collections import Counter

import orjson
import pytest

from events.catalog import EVENT_TYPES, body_class
from events.errors import UnknownEventType
from events.topics import (
    DEAD_LETTER,
    EVENT_TOPICS,
    TOPICS,
    belongs,
    catalog_as_json_objects,
    misplaced,
    topic_for_event,
    topic_name,
)


def test_every_event_type_lives_in_exactly_one_topic():
    carried = Counter(event for topic in TOPICS for event in topic.events)

    assert set(carried) == set(EVENT_TYPES)
    assert all(count == 1 for count in carried.values())


@pytest.mark.parametrize("topic", EVENT_TOPICS, ids=lambda t: t.name)
def test_a_topic_is_keyed_by_the_key_field_of_every_body_it_carries(topic):
    assert {body_class(event).key_field for event in topic.events} == {topic.key}


def test_event_types_are_registered_under_their_own_names():
    assert all(name == cls.event_type for name, cls in EVENT_TYPES.items())


def test_topic_names_are_unique_and_all_partition_counts_match():
    assert len({t.name for t in TOPICS}) == len(TOPICS)
    assert {t.partitions for t in TOPICS} == {6}
    assert {t.cleanup_policy for t in TOPICS} == {"delete"}


def test_only_heartbeats_expire():
    expiring = {t.name: t.retention_ms for t in TOPICS if t.retention_ms != -1}

    assert expiring == {"heartbeats": 7 * 24 * 3600 * 1000}


def test_agents_write_outcomes_to_a_topic_apart_from_decisions():
    assert topic_for_event("TaskCompleted").name == "task-outcomes"
    assert topic_for_event("TaskRouted").name == "tasks"
    assert topic_for_event("TaskAssigned").key == "agent_id"


def test_the_dead_letter_topic_carries_no_event_type_of_its_own():
    assert DEAD_LETTER.dead_letter and DEAD_LETTER.events == ()
    assert DEAD_LETTER not in EVENT_TOPICS
    assert [t for t in TOPICS if t.dead_letter] == [DEAD_LETTER]


def test_full_topic_names_carry_the_prefix():
    assert topic_name("tasks", "test-42") == "test-42.tasks"
    assert topic_name(DEAD_LETTER, "orchestrator") == "orchestrator.dead-letter"


def test_the_catalog_exports_as_plain_json():
    objects = catalog_as_json_objects("test-42")

    assert orjson.loads(orjson.dumps(objects)) == objects
    assert [o["name"] for o in objects] == [f"test-42.{t.name}" for t in TOPICS]
    required = {"name", "events", "key", "partitions", "cleanup_policy", "retention_ms", "dead_letter", "description"}
    assert all(required <= set(o) for o in objects)


def test_unknown_event_types_have_no_class_and_no_topic():
    with pytest.raises(UnknownEventType):
        body_class("Nope")
    with pytest.raises(UnknownEventType):
        topic_for_event("Nope")


def test_a_health_verdict_is_accepted_on_the_health_topic_only():
    assert belongs("AgentHealthChanged", "orchestrator.health")
    assert belongs("AgentLoadSummarized", "orchestrator.health")
    # the agents topic is one every agent may write: a verdict found there is a forgery
    assert not belongs("AgentHealthChanged", "orchestrator.agents")
    assert not belongs("AgentLoadSummarized", "orchestrator.agents")


@pytest.mark.parametrize("event_type", sorted(EVENT_TYPES))
def test_every_event_type_belongs_on_its_own_topic_and_on_no_other(event_type):
    home = topic_for_event(event_type)
    assert [t.name for t in TOPICS if belongs(event_type, topic_name(t, "p.q"))] == [home.name]


def test_a_misplaced_event_is_refused_with_where_it_belongs():
    error = misplaced("AgentHealthChanged", "p.agents")
    assert error.event_type == "AgentHealthChanged"
    assert str(error) == "AgentHealthChanged is not accepted on p.agents: only p.health carries it"
    assert misplaced("AgentHealthChanged", "p.health") is None


def test_logical_topic_names_hold_no_dot_so_any_prefix_leaves_them_recognisable():
    assert not any("." in t.name for t in TOPICS)
