"""Faust's consumers fetch as the settings say; Faust itself passes no fetch options through."""

from __future__ import annotations

from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

from services.faust_worker import fetch_settings
from services.settings import Settings


class MadeByFaust:
    _fetch_max_wait_ms = 1500  # Faust's own choice
    _fetch_min_bytes = 1


def test_every_consumer_faust_makes_takes_the_configured_wait_and_size_and_a_second_call_replaces_the_first(
    monkeypatch,
):
    monkeypatch.setattr(AIOKafkaConsumerThread, "_create_worker_consumer", lambda self, transport: MadeByFaust())

    fetch_settings(Settings.from_env({"FAUST_FETCH_MIN_BYTES": "65536", "FAUST_FETCH_MAX_WAIT_MS": "20"}))
    tuned = AIOKafkaConsumerThread._create_worker_consumer(None, None)
    fetch_settings(Settings.from_env({}))
    default = AIOKafkaConsumerThread._create_worker_consumer(None, None)

    assert (tuned._fetch_max_wait_ms, tuned._fetch_min_bytes) == (20, 65536)
    assert (default._fetch_max_wait_ms, default._fetch_min_bytes) == (100, 1)
    assert AIOKafkaConsumerThread._create_worker_consumer.faust_default.__name__ == "<lambda>"
