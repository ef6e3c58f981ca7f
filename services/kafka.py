"""Kafka plumbing shared by services and the CLI: clients, topic catalog upkeep, publishing."""

from __future__ import annotations

import asyncio
import logging
import ssl
from dataclasses import dataclass
from functools import lru_cache

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import (
    KafkaConnectionError,
    LeaderNotAvailableError,
    NodeNotReadyError,
    NotControllerError,
    RequestTimedOutError,
    UnknownTopicOrPartitionError,
)
from aiokafka.helpers import create_ssl_context
from aiokafka.partitioner import murmur2

from events.codec import encode, type_header
from events.envelope import Envelope
from events.topics import PARTITIONS, TOPICS, TopicSpec, topic_for_event, topic_name
from services.settings import Settings

TOPIC_AUTHORIZATION_FAILED = 29
log = logging.getLogger("orchestrator.kafka")


class KafkaUnavailable(RuntimeError):
    pass


def connection_options(settings: Settings) -> dict:
    """How every client of this process reaches the brokers: address, and in the secure profile
    SASL credentials over TLS with the broker's certificate and host name checked."""
    options = {
        "bootstrap_servers": settings.kafka_bootstrap_servers,
        "security_protocol": settings.kafka_security_protocol,
    }
    if settings.kafka_security_protocol == "SASL_SSL":
        options.update(
            sasl_mechanism=settings.kafka_sasl_mechanism,
            sasl_plain_username=settings.kafka_sasl_username,
            sasl_plain_password=settings.kafka_sasl_secret,
            ssl_context=ssl_context(settings.kafka_ssl_cafile),
        )
    return options


@lru_cache(maxsize=8)
def ssl_context(cafile: str = "") -> ssl.SSLContext:
    # create_ssl_context requires a certificate and checks the host name; one context per CA
    # file is enough for every client of the process.
    return create_ssl_context(cafile=cafile or None)


def admin_client(settings: Settings, **options) -> AIOKafkaAdminClient:
    return AIOKafkaAdminClient(**connection_options(settings), **options)


def producer(settings: Settings, **options) -> AIOKafkaProducer:
    # acks=all + idempotence: a retried send never duplicates or reorders within a partition.
    options = {"acks": "all", "enable_idempotence": True, "linger_ms": settings.kafka_linger_ms, **options}
    return AIOKafkaProducer(**connection_options(settings), **options)


def consumer(settings: Settings, *topics: str, **options) -> AIOKafkaConsumer:
    # read_committed: records of an aborted transaction (an agent's report that was retried)
    # are never seen, so every reader sees each report once.
    options = {
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "isolation_level": "read_committed",
        **options,
    }
    return AIOKafkaConsumer(*topics, **connection_options(settings), **options)


PARTITION_FETCH_BYTES = 4 * 1024 * 1024  # per partition and fetch, for the readers that take batches


def batch_fetches(settings: Settings, max_wait_ms: float | None = None) -> dict:
    """Consumer options for fetches that wait for company: BATCH_FETCH_MIN_BYTES, or `max_wait_ms`
    (BATCH_FETCH_MAX_WAIT_MS by default), whichever comes first, and up to 4 MiB per partition.

    A fetch names every partition the consumer holds, so one per record would cost more than the
    record; a reader off the routing path can wait as long as it batches its work anyway."""
    wait = settings.batch_fetch_max_wait_ms if max_wait_ms is None else max(1, round(max_wait_ms))
    return {
        "fetch_max_wait_ms": wait,
        "fetch_min_bytes": settings.batch_fetch_min_bytes,
        "max_partition_fetch_bytes": PARTITION_FETCH_BYTES,
    }


def prompt_fetches(settings: Settings) -> dict:
    """Consumer options for a reader that decides one record at a time on the routing path and whose
    upstream already sends in batches (the router's submissions, the balancer's inbox): its fetch is
    answered at the first record, and waits PROMPT_FETCH_MAX_WAIT_MS while nothing comes.

    Measured at 167 tasks/s: the route and decide hops' median fell from 7 ms to 3 ms, for about
    5 % more CPU in the router; the balancer's forwarder, which reads every input, stays batched."""
    return {
        "fetch_max_wait_ms": settings.prompt_fetch_max_wait_ms,
        "fetch_min_bytes": 1,
        "max_partition_fetch_bytes": PARTITION_FETCH_BYTES,
    }


class _LastError(logging.Handler):
    """aiokafka logs why it could not connect (a refused login, an untrusted certificate) and
    raises only "Unable to bootstrap": keep the reason for the error message."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.message: str | None = None

    def emit(self, record: logging.LogRecord) -> None:
        self.message = record.getMessage()


async def start(client, settings: Settings, what: str = "Kafka") -> None:
    reason = _LastError()
    logging.getLogger("aiokafka").addHandler(reason)
    try:
        await client.start()
    except KafkaConnectionError as error:
        if settings.kafka_security_protocol == "SASL_SSL":
            hint = (
                f"check KAFKA_SASL_USERNAME={settings.kafka_sasl_username}, its password and KAFKA_SSL_CAFILE, "
                "or start the secure stack with `make up SECURE=1`"
            )
        else:
            hint = "start the local stack with `make up` or point the variable at a broker"
        raise KafkaUnavailable(
            f"cannot reach {what} at KAFKA_BOOTSTRAP_SERVERS={settings.kafka_bootstrap_servers} "
            f"over {settings.kafka_security_protocol} ({reason.message or error}); "
            f"{hint}"
        ) from error
    finally:
        logging.getLogger("aiokafka").removeHandler(reason)


async def publish(
    kafka_producer: AIOKafkaProducer,
    settings: Settings,
    event: Envelope,
    headers: list[tuple[str, bytes]] | None = None,
):
    topic = topic_name(topic_for_event(event.event_type), settings.topic_prefix)
    return await kafka_producer.send_and_wait(
        topic, encode(event), key=event.key.encode(), headers=[type_header(event), *(headers or ())]
    )


# --- the topic catalog on the broker ------------------------------------------------


@dataclass(frozen=True)
class TopicCheck:
    name: str
    action: str  # created | ok | updated | mismatch | unauthorized
    detail: str = ""


def desired_configs(spec: TopicSpec) -> dict[str, str]:
    return {
        "cleanup.policy": spec.cleanup_policy,
        "retention.ms": str(spec.retention_ms),
        "message.timestamp.type": spec.timestamp_type,
    }


async def ensure_topics(settings: Settings, timeout_s: float = 30.0) -> list[TopicCheck]:
    """Create missing catalog topics, fix drifted retention/cleanup/timestamp type, report partition drift."""
    admin = admin_client(settings)
    await start(admin, settings, "the Kafka admin API")
    try:
        return await asyncio.wait_for(retrying(lambda: _ensure(admin, settings)), timeout_s)
    except asyncio.TimeoutError as error:
        raise KafkaUnavailable(
            f"the brokers at KAFKA_BOOTSTRAP_SERVERS={settings.kafka_bootstrap_servers} did not describe "
            f"the topic catalog within {timeout_s:.0f}s (a broker away; see the warnings above)"
        ) from error
    finally:
        await admin.close()


# What a broker of a cluster being away (killed, restarting, between leaders) answers for a while.
TRANSIENT = (
    NodeNotReadyError,
    KafkaConnectionError,
    RequestTimedOutError,
    NotControllerError,
    LeaderNotAvailableError,
    UnknownTopicOrPartitionError,
)


async def retrying(call, wait_s: float = 0.5):
    """`call()` again while it fails the way a cluster with a broker away does: the admin client sends
    a request to a broker of its choosing, which may be the one down. `asyncio.wait_for` bounds it."""
    while True:
        try:
            return await call()
        except TRANSIENT as error:
            log.warning("Kafka admin request failed (%s); asking again", error)
            await asyncio.sleep(wait_s)


async def _ensure(admin: AIOKafkaAdminClient, settings: Settings) -> list[TopicCheck]:
    names = {topic_name(spec, settings.topic_prefix): spec for spec in TOPICS}
    existing = set(await admin.list_topics())
    missing = [n for n in names if n not in existing]
    results: list[TopicCheck] = []
    if missing:
        response = await admin.create_topics(
            [
                NewTopic(n, names[n].partitions, settings.replication_factor, topic_configs=desired_configs(names[n]))
                for n in missing
            ]
        )
        hidden = set()
        for name, code, *rest in response.topic_errors:
            if code == TOPIC_AUTHORIZATION_FAILED:
                # With ACLs a principal sees only its own topics; the others are the admin's to create.
                hidden.add(name)
            # 36 = TOPIC_ALREADY_EXISTS: another process created it first; that is fine.
            elif code not in (0, 36):
                raise RuntimeError(f"could not create topic {name}: error {code} {rest}")
        results += [TopicCheck(n, "unauthorized", "not visible to this principal") for n in sorted(hidden)]
        missing = [n for n in missing if n not in hidden]
        results += [TopicCheck(n, "created") for n in missing]
        if missing:
            await _until_ready(admin, settings, {n: names[n].partitions for n in missing})
    present = [n for n in names if n in existing]
    if present:
        described = await admin.describe_topics(present)
        partitions = {d["topic"]: len(d["partitions"]) for d in described}
        configs = await _topic_configs(admin, present)
        for name in present:
            spec = names[name]
            if partitions.get(name) != spec.partitions:
                results.append(
                    TopicCheck(name, "mismatch", f"{partitions.get(name)} partitions, catalog says {spec.partitions}")
                )
                continue
            drift = {k: v for k, v in desired_configs(spec).items() if configs[name].get(k) != v}
            if drift:
                await admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, name, desired_configs(spec))])
                results.append(TopicCheck(name, "updated", ", ".join(f"{k}={v}" for k, v in drift.items())))
            else:
                results.append(TopicCheck(name, "ok"))
    return sorted(results, key=lambda c: c.name)


async def ensure_own_topics(settings: Settings, wanted: list[NewTopic], timeout_s: float = 30.0) -> list[str]:
    """Create those of a processor's own topics (outside the catalog) that are missing, and wait
    until each new partition answers, as `ensure_topics` does for the catalog. The names created."""
    admin = admin_client(settings)
    await start(admin, settings, "the Kafka admin API")
    try:
        return await asyncio.wait_for(retrying(lambda: _ensure_own(admin, settings, wanted)), timeout_s)
    finally:
        await admin.close()


async def _ensure_own(admin: AIOKafkaAdminClient, settings: Settings, wanted: list[NewTopic]) -> list[str]:
    existing = set(await admin.list_topics())
    missing = [topic for topic in wanted if topic.name not in existing]
    if not missing:
        return []
    response = await admin.create_topics(missing)
    for name, code, *rest in response.topic_errors:
        if code not in (0, 36):  # 36 = TOPIC_ALREADY_EXISTS: another copy was first
            raise RuntimeError(f"could not create topic {name}: error {code} {rest}")
    await _until_ready(admin, settings, {t.name: t.num_partitions for t in missing})
    return [topic.name for topic in missing]


async def delete_topics(settings: Settings, only: list[str] | None = None) -> list[str]:
    """Delete every topic under the settings' prefix (a test's or a benchmark's own), or only
    those named; the names deleted."""
    admin = admin_client(settings)
    await start(admin, settings, "the Kafka admin API")
    try:
        ours = [
            name
            for name in await admin.list_topics()
            if name.startswith(f"{settings.topic_prefix}.") and (only is None or name in only)
        ]
        if ours:
            await admin.delete_topics(ours)
        return ours
    finally:
        await admin.close()


async def _until_ready(admin: AIOKafkaAdminClient, settings: Settings, partitions: dict[str, int]) -> None:
    """New topics, once each of their partitions has a leader that answers."""
    await _until_led(admin, list(partitions))
    await _until_answering(settings, partitions)


async def _until_answering(settings: Settings, partitions: dict[str, int]) -> None:
    """A leader named in the metadata may not yet act as one: until the broker has applied the
    change, reading a partition's offsets fails with NotLeaderForPartition. A consumer asks for
    the offsets of all its new partitions in one request, so one such partition stalls every
    other one it reads: wait until each new partition answers."""
    probe = consumer(settings)
    await start(probe, settings)
    try:
        await probe.end_offsets([TopicPartition(name, p) for name, count in partitions.items() for p in range(count)])
    finally:
        await probe.stop()


async def _until_led(admin: AIOKafkaAdminClient, names: list[str]) -> None:
    """New partitions take a moment to get a leader; until then producers get retriable errors."""
    while True:
        described = await admin.describe_topics(names)
        if all(
            d["error_code"] == 0 and d["partitions"] and all(p["leader"] >= 0 for p in d["partitions"])
            for d in described
        ):
            return
        await asyncio.sleep(0.05)


async def _topic_configs(admin: AIOKafkaAdminClient, names: list[str]) -> dict[str, dict[str, str]]:
    responses = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, n) for n in names])
    configs: dict[str, dict[str, str]] = {}
    for response in responses:
        for _code, _msg, _type, name, entries in response.resources:
            configs[name] = {entry[0]: entry[1] for entry in entries}
    return configs


def partition_of(key: bytes, partitions: int = PARTITIONS) -> int:
    """The partition Kafka's default (murmur2) partitioner puts `key` in.

    Every producer of a key must agree on this, whatever its language: with librdkafka
    clients such as kcat, set `topic.partitioner=murmur2_random`.
    """
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def partition_for_key(key: str, partitions: int) -> int:
    return partition_of(key.encode(), partitions)


def partitions(settings: Settings, specs) -> list[TopicPartition]:
    """Every partition of the given catalog topics (`ensure_topics` keeps the broker in line)."""
    return [
        TopicPartition(topic_name(spec, settings.topic_prefix), p) for spec in specs for p in range(spec.partitions)
    ]


async def end_offsets(settings: Settings, specs) -> dict[TopicPartition, int]:
    """High-water mark of every partition of the given catalog topics."""
    probe = consumer(settings)
    await start(probe, settings)
    try:
        return await probe.end_offsets(partitions(settings, specs))
    finally:
        await probe.stop()
