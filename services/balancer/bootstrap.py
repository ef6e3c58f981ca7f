"""Wires the balancer to the real Kafka and metrics registry, and runs it."""
from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from pathlib import Path

import faust

from services import kafka
from services.balancer.app import SERVICE, create_app
from services.balancer.history import KafkaInboxHistory, ensure_balancer_topics, inbox_topic
from services.balancer.logic import Limits
from services.metrics import ProcessorMetrics
from services.settings import Settings

log = logging.getLogger("orchestrator.balancer")


def limits_from(settings: Settings) -> Limits:
    return Limits(max_attempts=int(settings.balancer_max_attempts),
                  start_timeout=timedelta(seconds=float(settings.balancer_start_timeout_s)),
                  top_k=int(settings.balancer_top_k))


def bootstrap(settings: Settings, *, metrics: ProcessorMetrics | None = None) -> faust.App:
    datadir = Path(settings.balancer_data_dir) / settings.balancer_app
    datadir.mkdir(parents=True, exist_ok=True)  # Faust creates only the last level itself
    return create_app(
        app_id=settings.balancer_app,
        brokers=[f"kafka://{server.strip()}" for server in settings.kafka_bootstrap_servers.split(",")],
        topic_prefix=settings.topic_prefix, replication_factor=int(settings.replication_factor),
        datadir=datadir, inbox_topic=inbox_topic(settings), history=KafkaInboxHistory(settings),
        limits=limits_from(settings), tick_interval_s=float(settings.balancer_tick_interval_s),
        snapshot_every=int(settings.balancer_snapshot_every),
        session_timeout_s=float(settings.balancer_session_timeout_s), metrics=metrics or ProcessorMetrics(SERVICE))


def serve(settings: Settings) -> int:
    """Run until SIGTERM or SIGINT; Faust's worker stops the app cleanly on either."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    # Faust subscribes to topics that must already exist: the catalog's and the balancer's own.
    loop.run_until_complete(kafka.ensure_topics(settings))
    loop.run_until_complete(ensure_balancer_topics(settings))
    metrics = ProcessorMetrics(SERVICE)
    metrics.serve(int(settings.metrics_port))
    app = bootstrap(settings, metrics=metrics)
    log.info("balancer %s starting: %s", settings.balancer_app, limits_from(settings))
    worker = faust.Worker(app, loop=loop, loglevel=settings.log_level, override_logging=False,
                          redirect_stdouts=False, quiet=True)
    try:
        worker.execute_from_commandline()
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else 1
    return 0
