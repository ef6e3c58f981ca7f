"""Wires the learner to the real Kafka and metrics registry, and runs it."""
from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import faust

from services import kafka
from services.learner.app import SERVICE, create_app
from services.learner.follower import LearnerFollower
from services.learner.view import LearnerView
from services.metrics import ProcessorMetrics
from services.settings import Settings

log = logging.getLogger("orchestrator.learner")


def bootstrap(settings: Settings, *, metrics: ProcessorMetrics | None = None) -> faust.App:
    metrics = metrics or ProcessorMetrics(SERVICE)
    datadir = Path(settings.learner_data_dir) / settings.learner_app
    datadir.mkdir(parents=True, exist_ok=True)  # Faust creates only the last level itself
    view = LearnerView(publish_every=int(settings.learner_publish_every))
    return create_app(
        app_id=settings.learner_app,
        brokers=[f"kafka://{server.strip()}" for server in settings.kafka_bootstrap_servers.split(",")],
        topic_prefix=settings.topic_prefix, replication_factor=int(settings.replication_factor),
        datadir=datadir, follower=LearnerFollower(settings, view, metrics, SERVICE), metrics=metrics)


def serve(settings: Settings) -> int:
    """Run until SIGTERM or SIGINT; Faust's worker stops the app cleanly on either."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    # Faust creates its own changelog topics, but not the catalog's.
    loop.run_until_complete(kafka.ensure_topics(settings))
    metrics = ProcessorMetrics(SERVICE)
    metrics.serve(int(settings.metrics_port))
    app = bootstrap(settings, metrics=metrics)
    log.info("learner %s starting: a model every %s outcomes", settings.learner_app, settings.learner_publish_every)
    worker = faust.Worker(app, loop=loop, loglevel=settings.log_level, override_logging=False,
                          redirect_stdouts=False, quiet=True)
    worker.spinner = None  # a terminal progress spinner; it writes escape codes even to a log file
    try:
        worker.execute_from_commandline()
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else 1
    return 0
