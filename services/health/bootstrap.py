"""Wires the health monitor to the real Kafka, clock and metrics registry, and runs it."""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

import faust

from services import kafka
from services.health.app import SERVICE, create_app
from services.health.logic import Policy
from services.metrics import ProcessorMetrics
from services.settings import Settings

log = logging.getLogger("orchestrator.health")


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def policy_from(settings: Settings) -> Policy:
    return Policy(heartbeat_interval=timedelta(seconds=float(settings.health_heartbeat_interval_s)),
                  degraded_after_missed=int(settings.health_degraded_after_missed),
                  unhealthy_after_missed=int(settings.health_unhealthy_after_missed),
                  load_window=timedelta(seconds=float(settings.health_load_window_s)))


def bootstrap(settings: Settings, *, metrics: ProcessorMetrics | None = None,
              clock: Callable[[], datetime] = utc_now) -> faust.App:
    datadir = Path(settings.health_data_dir) / settings.health_app
    datadir.mkdir(parents=True, exist_ok=True)  # Faust creates only the last level itself
    return create_app(
        app_id=settings.health_app,
        brokers=[f"kafka://{server.strip()}" for server in settings.kafka_bootstrap_servers.split(",")],
        topic_prefix=settings.topic_prefix, replication_factor=int(settings.replication_factor),
        datadir=datadir, policy=policy_from(settings), tick_interval_s=float(settings.health_tick_interval_s),
        metrics=metrics or ProcessorMetrics(SERVICE), clock=clock)


def serve(settings: Settings) -> int:
    """Run until SIGTERM or SIGINT; Faust's worker stops the app cleanly on either."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    # Faust creates its own changelog and repartition topics, but not the catalog's.
    loop.run_until_complete(kafka.ensure_topics(settings))
    metrics = ProcessorMetrics(SERVICE)
    metrics.serve(int(settings.metrics_port))
    app = bootstrap(settings, metrics=metrics)
    log.info("health monitor %s starting: %s", settings.health_app, policy_from(settings))
    worker = faust.Worker(app, loop=loop, loglevel=settings.log_level, override_logging=False,
                          redirect_stdouts=False, quiet=True)
    worker.spinner = None  # a terminal progress spinner; it writes escape codes even to a log file
    try:
        worker.execute_from_commandline()
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else 1
    return 0
