"""Running a Faust processor: the same start-up and shutdown for every one of them."""
from __future__ import annotations

import asyncio
import logging
from typing import Awaitable, Callable, Sequence

import faust

from services import kafka
from services.metrics import ProcessorMetrics
from services.settings import Settings

log = logging.getLogger("orchestrator")


def faust_brokers(settings: Settings) -> list[str]:
    return [f"kafka://{server.strip()}" for server in settings.kafka_bootstrap_servers.split(",")]


def faust_credentials(settings: Settings) -> faust.SASLCredentials | None:
    """The secure profile's SASL credentials and TLS context for a Faust app (None in plaintext)."""
    options = kafka.connection_options(settings)
    if options["security_protocol"] == "PLAINTEXT":
        return None
    return faust.SASLCredentials(username=options["sasl_plain_username"], password=options["sasl_plain_password"],
                                 mechanism=options["sasl_mechanism"], ssl_context=options["ssl_context"])


# Faust has the broker hold a fetch up to 1.5 s while no data is there. aiokafka keeps one fetch
# in flight per broker and leaves out partitions whose records are still buffered, so after a
# busy response the next fetch may name only idle partitions (agents, changelogs) and wait out
# the 1.5 s while records pile up on the busy ones: measured, a second or more per hop at
# 20 tasks/s. A shorter wait bounds that delay; each idle processor then fetches ten times a
# second (measured: about 1 % of a core idle, against 5 % at 10 ms and under 1 % at 1.5 s).
FETCH_MAX_WAIT_MS = 100


def short_fetch_wait() -> None:
    """Make every Faust consumer of this process ask for at most FETCH_MAX_WAIT_MS of waiting."""
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread
    create = AIOKafkaConsumerThread._create_worker_consumer
    if getattr(create, "short_fetch_wait", False):
        return

    def create_worker_consumer(self, transport):
        consumer = create(self, transport)
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS  # read when the consumer starts its fetcher
        return consumer

    create_worker_consumer.short_fetch_wait = True
    AIOKafkaConsumerThread._create_worker_consumer = create_worker_consumer


def run_worker(settings: Settings, service: str, make_app: Callable[[ProcessorMetrics], faust.App], *,
               started: str, prepare: Sequence[Callable[[Settings], Awaitable]] = ()) -> int:
    """Run until SIGTERM or SIGINT, on either of which Faust's worker stops the app cleanly."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    # Faust creates its own changelog and repartition topics, but subscribes only to topics
    # that already exist: the catalog's, and any a processor keeps for itself.
    for ensure in (kafka.ensure_topics, *prepare):
        loop.run_until_complete(ensure(settings))
    metrics = ProcessorMetrics(service)
    metrics.serve(int(settings.metrics_port))
    short_fetch_wait()
    app = make_app(metrics)
    # Set here rather than in each create_app: every processor is started through this function,
    # and Faust opens no connection before the worker starts.
    app.conf.broker_credentials = faust_credentials(settings)
    log.info("%s starting: %s", service, started)
    worker = faust.Worker(app, loop=loop, loglevel=settings.log_level, override_logging=False,
                          redirect_stdouts=False, quiet=True)
    worker.spinner = None  # a terminal progress spinner; it writes escape codes even to a log file
    try:
        worker.execute_from_commandline()
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else 1
    return 0
