"""Wires the router to the real Kafka, clock and metrics registry, and runs it."""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import faust

from services import kafka
from services.metrics import ProcessorMetrics
from services.router.app import SERVICE, create_app
from services.router.follower import LogFollower
from services.router.logic import Weights
from services.router.policies import policy
from services.router.state import RouterView
from services.settings import Settings

log = logging.getLogger("orchestrator.router")


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def weights_from(settings: Settings) -> Weights:
    return Weights(success=float(settings.router_weight_success), load=float(settings.router_weight_load),
                   duration=float(settings.router_weight_duration), cost=float(settings.router_weight_cost),
                   relationship=float(settings.router_weight_relationship),
                   preference=float(settings.router_weight_preference),
                   temperature=float(settings.router_temperature), top_k=int(settings.router_top_k))


def bootstrap(settings: Settings, *, metrics: ProcessorMetrics | None = None,
              clock: Callable[[], datetime] = utc_now) -> faust.App:
    metrics = metrics or ProcessorMetrics(SERVICE)
    datadir = Path(settings.router_data_dir) / settings.router_app
    datadir.mkdir(parents=True, exist_ok=True)  # Faust creates only the last level itself
    return create_app(
        app_id=settings.router_app,
        brokers=[f"kafka://{server.strip()}" for server in settings.kafka_bootstrap_servers.split(",")],
        topic_prefix=settings.topic_prefix, replication_factor=int(settings.replication_factor),
        datadir=datadir, follower=LogFollower(settings, RouterView(), metrics, SERVICE),
        weights=weights_from(settings), policy=policy(settings.router_policy), seed=int(settings.router_seed),
        retry_interval_s=float(settings.router_retry_interval_s), metrics=metrics, clock=clock)


def serve(settings: Settings) -> int:
    """Run until SIGTERM or SIGINT; Faust's worker stops the app cleanly on either."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    # Faust creates its own changelog topics, but not the catalog's.
    loop.run_until_complete(kafka.ensure_topics(settings))
    metrics = ProcessorMetrics(SERVICE)
    metrics.serve(int(settings.metrics_port))
    app = bootstrap(settings, metrics=metrics)
    log.info("router %s starting: %s", settings.router_app, weights_from(settings))
    worker = faust.Worker(app, loop=loop, loglevel=settings.log_level, override_logging=False,
                          redirect_stdouts=False, quiet=True)
    try:
        worker.execute_from_commandline()
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else 1
    return 0
