from datetime import timedelta
from types import SimpleNamespace

import pytest
from aiokafka.partitioner import DefaultPartitioner

from events.errors import MalformedEvent
from services.deadletter.park import H_ATTEMPT, H_OFFSET, H_PROCESSOR, H_TOPIC, ConsumedRecord, dead_letter_headers
from services.health.bootstrap import policy_from
from services.health.logic import Policy
from services.kafka import partition_of
from services.settings import ConfigError, Settings


def faust_message(headers):
    return SimpleNamespace(
        topic="p.heartbeats", partition=3, offset=17, key=b"agent-1", value=b"{oops", headers=headers
    )


@pytest.mark.parametrize("headers", [[("trace", b"t-1")], {"trace": b"t-1"}])
def test_a_faust_message_gets_the_same_dead_letter_headers_as_the_projector_writes(headers):
    record = ConsumedRecord.of(faust_message(headers))

    parked = dict(dead_letter_headers(record, MalformedEvent("not valid JSON"), "health"))

    assert parked["trace"] == b"t-1"
    assert (parked[H_TOPIC], parked[H_OFFSET], parked[H_ATTEMPT], parked[H_PROCESSOR]) == (
        b"p.heartbeats",
        b"17",
        b"1",
        b"health",
    )


def test_table_keys_are_placed_where_kafka_clients_put_the_agents_events():
    partitioner = DefaultPartitioner()
    for agent_id in ("agent-1", "agent-2", "coder-17", "a"):
        key = agent_id.encode()
        assert partition_of(key) == partitioner(key, list(range(6)), list(range(6)))


def test_the_policy_comes_from_settings_with_the_documented_defaults():
    assert policy_from(Settings.from_env({})) == Policy(
        heartbeat_interval=timedelta(seconds=5),
        degraded_after_missed=2,
        unhealthy_after_missed=4,
        load_window=timedelta(seconds=60),
    )
    assert Settings.from_env({}, topic_prefix="p").health_app == "p.health"


@pytest.mark.parametrize(
    "variable, value, message",
    [
        ("HEALTH_HEARTBEAT_INTERVAL_S", "0", "HEALTH_HEARTBEAT_INTERVAL_S must be a positive number"),
        ("HEALTH_LOAD_WINDOW_S", "soon", "HEALTH_LOAD_WINDOW_S must be a positive number"),
        ("HEALTH_DEGRADED_AFTER_MISSED", "0", "HEALTH_DEGRADED_AFTER_MISSED must be a positive integer"),
        ("HEALTH_DEGRADED_AFTER_MISSED", "4", "must be less than HEALTH_UNHEALTHY_AFTER_MISSED"),
    ],
)
def test_a_bad_health_setting_is_named(variable, value, message):
    with pytest.raises(ConfigError, match=message):
        Settings.from_env({variable: value})
