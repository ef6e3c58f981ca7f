"""Wires the health monitor to the real Kafka, clock and metrics registry, and runs it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta, timezone

import faust

from services.faust_worker import processor_site, run_worker
from services.health.app import SERVICE, create_app
from services.health.logic import Policy
from services.identity.gate import IdentityGate
from services.metrics import ProcessorMetrics
from services.settings import Settings


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def policy_from(settings: Settings) -> Policy:
    return Policy(
        heartbeat_interval=timedelta(seconds=settings.health.heartbeat_interval_s),
        degraded_after_missed=settings.health.degraded_after_missed,
        unhealthy_after_missed=settings.health.unhealthy_after_missed,
        load_window=timedelta(seconds=settings.health.load_window_s),
    )


def bootstrap(
    settings: Settings, *, metrics: ProcessorMetrics | None = None, clock: Callable[[], datetime] = utc_now
) -> faust.App:
    site = processor_site(settings, settings.health_app, settings.health.data_dir)
    return create_app(
        site=site,
        policy=policy_from(settings),
        tick_interval_s=settings.health.tick_interval_s,
        metrics=metrics or ProcessorMetrics(SERVICE),
        clock=clock,
        identity=IdentityGate(settings, outcomes=False),
    )


def serve(settings: Settings) -> int:
    return run_worker(
        settings,
        SERVICE,
        lambda metrics: bootstrap(settings, metrics=metrics),
        started=f"health monitor {settings.health_app}: {policy_from(settings)}",
    )
