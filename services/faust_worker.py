"""Running a Faust processor: the same start-up and shutdown for every one of them."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Awaitable, Callable, Sequence

import faust
from aiokafka.admin import NewTopic
from mode.utils.times import want_seconds

from events.topics import PARTITIONS
from services import kafka
from services.metrics import ProcessorMetrics
from services.settings import Settings

log = logging.getLogger("orchestrator")


@dataclass(frozen=True)
class ProcessorSite:
    """Where a processor's Faust app runs: its app id (also its consumer group and the prefix of
    its own topics), the brokers, the prefix of the catalog's topics, the replication of the
    topics it creates, and the directory it keeps its data in."""

    app_id: str
    brokers: list[str]
    topic_prefix: str
    replication_factor: int
    datadir: Path


def processor_site(settings: Settings, app_id: str, data_dir: str) -> ProcessorSite:
    """The site of the processor `app_id`, its data directory created below `data_dir`."""
    datadir = Path(data_dir) / app_id
    datadir.mkdir(parents=True, exist_ok=True)  # Faust creates only the last level itself
    return ProcessorSite(
        app_id=app_id,
        brokers=faust_brokers(settings),
        topic_prefix=settings.topic_prefix,
        replication_factor=settings.replication_factor,
        datadir=datadir,
    )


def processor_app(site: ProcessorSite, **options) -> faust.App:
    """A processor's Faust app: tables in memory (rebuilt from their changelogs at start), no web
    server, and its own topics partitioned as the catalog's."""
    return faust.App(
        site.app_id,
        broker=site.brokers,
        store="memory://",
        datadir=str(site.datadir),
        web_enabled=False,
        topic_partitions=PARTITIONS,
        topic_replication_factor=site.replication_factor,
        **options,
    )


def faust_brokers(settings: Settings) -> list[str]:
    return [f"kafka://{server.strip()}" for server in settings.kafka_bootstrap_servers.split(",")]


def faust_credentials(settings: Settings) -> faust.SASLCredentials | None:
    """The secure profile's SASL credentials and TLS context for a Faust app (None in plaintext)."""
    options = kafka.connection_options(settings)
    if options["security_protocol"] == "PLAINTEXT":
        return None
    return faust.SASLCredentials(
        username=options["sasl_plain_username"],
        password=options["sasl_plain_password"],
        mechanism=options["sasl_mechanism"],
        ssl_context=options["ssl_context"],
    )


# Faust has the broker hold a fetch up to 1.5 s while no data is there. aiokafka keeps one fetch
# in flight per broker and leaves out partitions whose records are still buffered, so after a
# busy response the next fetch may name only idle partitions (agents, changelogs) and wait out
# the 1.5 s while records pile up on the busy ones: measured, a second or more per hop at
# 20 tasks/s. A shorter wait bounds that delay; at the default 100 ms each idle processor fetches
# ten times a second (measured: about 1 % of a core idle, against 5 % at 10 ms and under 1 % at 1.5 s).
# A fetch that waits for more than one byte answers with more records at once: fewer requests per
# event, for up to the wait on each hop when traffic is light (measured in the README).
def fetch_settings(settings: Settings) -> None:
    """Make every Faust consumer of this process fetch as the settings say, committed records only."""
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

    create = (
        getattr(AIOKafkaConsumerThread._create_worker_consumer, "faust_default", None)
        or AIOKafkaConsumerThread._create_worker_consumer
    )
    max_wait_ms, min_bytes = settings.faust_fetch_max_wait_ms, settings.faust_fetch_min_bytes

    def create_worker_consumer(self, transport):
        consumer = create(self, transport)
        # Private fields, read when the consumer starts its fetcher: Faust passes no fetch options through.
        consumer._fetch_max_wait_ms = max_wait_ms
        consumer._fetch_min_bytes = min_bytes
        # Faust reads uncommitted records unless the app itself runs exactly-once: an agent's
        # report from a transaction it aborted would count. Every processor reads committed only.
        consumer._isolation_level = "read_committed"
        return consumer

    create_worker_consumer.faust_default = create
    AIOKafkaConsumerThread._create_worker_consumer = create_worker_consumer


def topic_creation_retried(timeout_s: float = 30.0) -> None:
    """Make Faust ask again when creating a topic fails the way a cluster with a broker away does.

    A worker declares its topics as it starts (its leader election's topic, its changelogs) through
    the broker it takes for the controller, which may be the one down: a single `NodeNotReadyError`
    would end the worker. Each attempt after the first starts from fresh metadata."""
    from faust.transport.drivers.aiokafka import Transport

    create = getattr(Transport._really_create_topic, "faust_default", None) or Transport._really_create_topic

    async def really_create_topic(self, owner, client, topic, *args, **kwargs):
        async def once():
            try:
                return await create(self, owner, client, topic, *args, **kwargs)
            except kafka.TRANSIENT:
                client.force_metadata_update()
                raise

        return await asyncio.wait_for(kafka.retrying(once), timeout_s)

    really_create_topic.faust_default = create
    Transport._really_create_topic = really_create_topic


def internal_topics(app: faust.App) -> list[NewTopic]:
    """The topics Faust would create for an app (table changelogs, internal topics its agents read),
    with the partitions and cleanup Faust would give them.

    Faust creates them when the worker starts but does not wait for their partitions to answer, and a
    consumer that asks a new partition's offsets too early stalls on every partition it reads.
    Created beforehand by `kafka.ensure_own_topics`, they are ready; Faust then finds them there."""
    channels = [table.changelog_topic for table in app.tables.values()]
    channels += [agent.channel for agent in app.agents.values() if getattr(agent.channel, "internal", False)]
    wanted = {}
    for channel in channels:
        config = dict(channel.config or {})
        policy = [name for name, on in (("compact", channel.compacting), ("delete", channel.deleting)) if on]
        if policy:
            config["cleanup.policy"] = ",".join(policy)
        if channel.retention:
            config["retention.ms"] = int(want_seconds(channel.retention) * 1000)
        for name in channel.topics:
            wanted[name] = NewTopic(
                name,
                channel.partitions or app.conf.topic_partitions,
                channel.replicas or app.conf.topic_replication_factor,
                topic_configs={k: str(v) for k, v in config.items()},
            )
    return list(wanted.values())


def run_worker(
    settings: Settings,
    service: str,
    make_app: Callable[[ProcessorMetrics], faust.App],
    *,
    started: str,
    prepare: Sequence[Callable[[Settings], Awaitable]] = (),
) -> int:
    """Run until SIGTERM or SIGINT, on either of which Faust's worker stops the app cleanly."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    # Faust creates its own changelog and repartition topics, but subscribes only to topics
    # that already exist: the catalog's, and any a processor keeps for itself.
    for ensure in (kafka.ensure_topics, *prepare):
        loop.run_until_complete(ensure(settings))
    metrics = ProcessorMetrics(service)
    metrics.serve(settings.metrics_port)
    fetch_settings(settings)
    topic_creation_retried()
    app = make_app(metrics)
    loop.run_until_complete(kafka.ensure_own_topics(settings, internal_topics(app)))
    # Set here rather than in each create_app: every processor is started through this function,
    # and Faust opens no connection before the worker starts.
    app.conf.broker_credentials = faust_credentials(settings)
    # Faust's own default is a minute: that long, a killed copy would hold its partitions.
    app.conf.broker_session_timeout = settings.group_session_timeout_s
    log.info("%s starting: %s", service, started)
    worker = faust.Worker(
        app, loop=loop, loglevel=settings.log_level, override_logging=False, redirect_stdouts=False, quiet=True
    )
    worker.spinner = None  # a terminal progress spinner; it writes escape codes even to a log file
    try:
        worker.execute_from_commandline()
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else 1
    return 0
