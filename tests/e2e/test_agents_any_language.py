"""An agent taking part with plain Kafka and the JSON Schemas only: kcat (librdkafka), no SDK."""

from __future__ import annotations

import subprocess
import uuid
from datetime import datetime, timezone
from pathlib import Path

import orjson
import pytest

from events.topics import TOPICS
from services import kafka
from services.deadletter.reinject import read_parked
from services.identity.signing import Signer
from tests import factories as f
from tests.e2e.helpers import drop_schema, fetch, publish_all, publish_raw, running_projector, wait_for
from tests.signing import agent_key

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
AGENT = "kcat-agent-1"


@pytest.fixture(autouse=True)
async def clean_schema(settings):
    await kafka.ensure_topics(settings)
    yield
    await drop_schema(settings, settings.db_schema)


def message(event_type: str, body: dict, *, key: str, producer: str = AGENT) -> bytes:
    """What a client in any language writes: the schema's envelope, filled in by hand."""
    example = orjson.loads((ROOT / "schemas" / f"{event_type}.schema.json").read_bytes())["examples"][0]
    envelope = {
        **example,
        "event_id": str(uuid.uuid4()),
        "key": key,
        "producer": producer,
        "occurred_at": datetime.now(timezone.utc).isoformat(),
        "body": body,
        "correlation_id": None,
        "causation_id": None,
    }
    return orjson.dumps(envelope)


def librdkafka_config(settings) -> dict[str, str]:
    """librdkafka's names for what services.kafka.connection_options gives the Python clients."""
    config = {"bootstrap.servers": settings.kafka_bootstrap_servers}
    if settings.kafka_security_protocol == "SASL_SSL":
        config.update(
            {
                "security.protocol": "SASL_SSL",
                "sasl.mechanisms": settings.kafka_sasl_mechanism,
                "sasl.username": settings.kafka_sasl_username,
                "sasl.password": settings.kafka_sasl_secret,
                "ssl.endpoint.identification.algorithm": "https",
            }
        )
        if settings.kafka_ssl_cafile:
            config["ssl.ca.location"] = settings.kafka_ssl_cafile
    return config


def through_kcat(settings) -> bool:
    # Debian's kcat is built on librdkafka 2.0.2, whose SCRAM exchange Kafka 4 brokers refuse
    # (fixed in librdkafka 2.6.1). Over SASL_SSL the same C client is driven through the
    # librdkafka that confluent-kafka ships instead.
    return settings.kafka_security_protocol == "PLAINTEXT"


def kcat_produce(
    settings, topic: str, key: str, value: bytes, event_type: str | None = None, signer: Signer | None = None
) -> None:
    # murmur2_random: the partitioner of the Java client and of aiokafka, so keys land
    # where every other producer puts them. The `event_type` header is optional; the signature
    # headers (docs/agents.md, the signing rule) are text, as any client can write them.
    config = {**librdkafka_config(settings), "partitioner": "murmur2_random"}
    headers = [("event_type", event_type.encode())] if event_type else []
    headers += signer.headers(value) if signer else []
    if through_kcat(settings):
        options = [arg for name, setting in config.items() for arg in ("-X", f"{name}={setting}")]
        header = [arg for name, text in headers for arg in ("-H", f"{name}={text.decode()}")]
        subprocess.run(
            ["kcat", "-P", *options, *header, "-t", settings.topic(topic), "-k", key],
            input=value,
            check=True,
            timeout=30,
        )
        return
    from confluent_kafka import Producer

    producer = Producer(config)
    producer.produce(
        settings.topic(topic),
        value=value,
        key=key.encode(),
        headers=headers or None,
    )
    assert producer.flush(30) == 0, "librdkafka could not deliver the message"


def kcat_consume_partition(settings, topic: str, partition: int) -> list[tuple[str, dict]]:
    config = librdkafka_config(settings)
    if through_kcat(settings):
        options = [arg for name, setting in config.items() for arg in ("-X", f"{name}={setting}")]
        out = subprocess.run(
            [
                "kcat",
                "-C",
                *options,
                "-t",
                settings.topic(topic),
                "-p",
                str(partition),
                "-o",
                "beginning",
                "-e",
                "-q",
                "-f",
                "%k\t%s\n",
            ],
            capture_output=True,
            check=True,
            timeout=30,
        ).stdout
        return [(k.decode(), orjson.loads(v)) for k, v in (line.split(b"\t", 1) for line in out.splitlines() if line)]
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    consumer = Consumer(
        {
            **config,
            "group.id": f"{settings.topic_prefix}.any-language",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
    )
    consumer.assign([TopicPartition(settings.topic(topic), partition, OFFSET_BEGINNING)])
    records = []
    try:
        while True:
            message = consumer.poll(10)
            assert message is not None, "librdkafka read nothing within 10 s"
            if message.error():
                assert message.error().code() == message.error()._PARTITION_EOF, message.error()
                return records
            records.append((message.key().decode(), orjson.loads(message.value())))
    finally:
        consumer.close()


async def test_an_agent_takes_part_with_kcat_alone(settings):
    assignments = next(t for t in TOPICS if t.name == "assignments")
    my_partition = int(
        subprocess.run(
            ["python3", "-m", "services.cli", "topics", "partition", AGENT],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    assert my_partition == kafka.partition_for_key(AGENT, assignments.partitions)

    # Where identities are verified, its key, enrolled by the operator; it signs by the signing rule.
    signer = await agent_key(settings, AGENT)
    async with running_projector(settings):
        # Registered without the event_type header, as an agent written before it would;
        # the heartbeat and the outcome name their type in it.
        kcat_produce(
            settings,
            "agents",
            AGENT,
            message(
                "AgentRegistered",
                {
                    "agent_id": AGENT,
                    "display_name": "Shell agent",
                    "capacity": 1,
                    "capabilities": [{"name": "bash", "proficiency": 0.7}],
                },
                key=AGENT,
            ),
            signer=signer,
        )
        kcat_produce(
            settings,
            "heartbeats",
            AGENT,
            message("AgentHeartbeat", {"agent_id": AGENT, "in_flight": 0, "queue_depth": 0}, key=AGENT),
            event_type="AgentHeartbeat",
            signer=signer,
        )
        # What the balancer would do: assign a task to the agent.
        await publish_all(settings, [f.submitted("sh-task-1", capability="bash"), f.assigned("sh-task-1", AGENT)])

        mine = await wait_for(lambda: _my_assignments(settings, my_partition), what="the agent's assignment")
        assert [body["task_id"] for body in mine] == ["sh-task-1"]

        kcat_produce(
            settings,
            "task-outcomes",
            "sh-task-1",
            message(
                "TaskCompleted",
                {
                    "task_id": "sh-task-1",
                    "agent_id": AGENT,
                    "attempt": mine[0]["attempt"],
                    "result_summary": "done in bash",
                    "duration_ms": 12.0,
                },
                key="sh-task-1",
            ),
            event_type="TaskCompleted",
            signer=signer,
        )

        tasks = await wait_for(
            lambda: fetch(settings, "SELECT * FROM tasks WHERE status = 'completed'"), what="the completed task"
        )
        agents = await fetch(settings, "SELECT * FROM agents")
        heartbeats = await fetch(settings, "SELECT * FROM agent_heartbeats_latest")

    assert (tasks[0]["task_id"], tasks[0]["result_summary"]) == ("sh-task-1", "done in bash")
    assert (agents[0]["agent_id"], agents[0]["display_name"]) == (AGENT, "Shell agent")
    assert heartbeats[0]["agent_id"] == AGENT


async def _my_assignments(settings, partition: int):
    records = kcat_consume_partition(settings, "assignments", partition)
    return [envelope["body"] for key, envelope in records if key == AGENT]


async def test_an_invalid_registration_is_dead_lettered_with_its_reason_and_nothing_applied(settings):
    bad = message(
        "AgentRegistered",
        {
            "agent_id": "bad-agent",
            "display_name": "Bad",
            "capacity": -1,
            "surprise": True,
            "capabilities": [{"name": "sql", "proficiency": 1.5}, {"name": "sql", "proficiency": 0.5}],
        },
        key="bad-agent",
    )
    # Signed where identities are verified, so that what parks it is its content, not its origin.
    signer = await agent_key(settings, "bad-agent")
    async with running_projector(settings):
        await publish_raw(settings, "agents", b"bad-agent", bad, headers=signer.headers(bad) if signer else None)
        await publish_all(settings, [f.registered("good-agent")])
        await wait_for(
            lambda: fetch(settings, "SELECT 1 FROM agents WHERE agent_id = 'good-agent'"), what="the good registration"
        )

    [parked] = await read_parked(settings)
    assert parked.error_class == "InvalidEvent"
    for reason in ("body.capacity", "body.surprise", "proficiency"):
        assert reason in parked.error_message
    assert await fetch(settings, "SELECT * FROM agents WHERE agent_id = 'bad-agent'") == []
    assert await fetch(settings, "SELECT * FROM agent_capabilities WHERE agent_id = 'bad-agent'") == []
