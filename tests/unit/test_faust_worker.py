"""A Faust worker creating its topics at start asks again while a broker of the cluster is away,
instead of ending on the first `NodeNotReadyError`."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka.errors import NodeNotReadyError, TopicAuthorizationFailedError
from faust.transport.drivers.aiokafka import Transport

from services.faust_worker import topic_creation_retried


class Client:
    def __init__(self) -> None:
        self.metadata_updates = 0

    def force_metadata_update(self) -> None:
        self.metadata_updates += 1


def test_a_topic_creation_refused_by_a_broker_away_is_asked_again_with_fresh_metadata(monkeypatch):
    # Given Faust's creation, which fails twice as a broker being away makes it fail
    asked = []

    async def faust_creates(self, owner, client, topic, partitions, replication, **kwargs):
        asked.append(topic)
        if len(asked) < 3:
            raise NodeNotReadyError("the broker taken for the controller is away")

    monkeypatch.setattr(Transport, "_really_create_topic", faust_creates)
    topic_creation_retried()
    client = Client()

    # When the worker declares its leader topic
    asyncio.run(Transport._really_create_topic(None, None, client, "app-__assignor-__leader", 1, 3))

    # Then it was asked until it succeeded, each time after fresh metadata
    assert asked == ["app-__assignor-__leader"] * 3
    assert client.metadata_updates == 2


def test_other_errors_still_end_the_start_and_a_second_hook_does_not_wrap_the_first(monkeypatch):
    async def refused(self, owner, client, topic, partitions, replication, **kwargs):
        raise TopicAuthorizationFailedError()

    monkeypatch.setattr(Transport, "_really_create_topic", refused)
    topic_creation_retried()
    topic_creation_retried()
    assert Transport._really_create_topic.faust_default is refused
    with pytest.raises(TopicAuthorizationFailedError):
        asyncio.run(Transport._really_create_topic(None, None, Client(), "t", 1, 3))
